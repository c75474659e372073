"""The best model so far: a trial's own weights as they are, and an interim model that is removed when
replaced unless an alias or a deployment still needs it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from automl.search import portfolio, runner
from automl.search.reporter import NullReporter
from automl.search.runner import run_trial_step
from tests.unit.test_tuners import ENTRIES, _spec


def test_a_trials_own_weights_alone_neither_ensembled_nor_refitted(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from dataclasses import replace

    monkeypatch.setattr(portfolio, "entries", lambda kind, task: ENTRIES)
    spec = replace(_spec(tmp_path, max_trials=2, max_epochs=3), ensemble_size=2)
    trials = [run_trial_step(spec, NullReporter()).trial_id for _ in range(2)]
    worst = runner.build_tuner(spec, runner.prepare(spec), NullReporter()).oracle.get_best_trials(2)[1].trial_id
    assert worst in trials
    interim = runner.train_final_model(replace(spec, calibrate=False), trial_id=worst)
    assert interim.best_trial_id == worst and [m.trial_id for m in interim.members] == [worst]
    assert not interim.refit and interim.importance is None and interim.ensemble is None
    # The same weights the trial kept: its saved test predictions, served (calibration off: it would sharpen
    # these 3-epoch models' probabilities).
    from automl.search import tuners
    tuner = runner.build_tuner(spec, runner.prepare(spec), NullReporter())
    kept = tuners.test_predictions(tuner, worst)
    data = runner.prepare(spec)
    assert np.allclose(runner._predict(interim.model, data.x_test, data), kept, atol=1e-5)
    with pytest.raises(runner.SearchFailed, match="Trial nope"):
        runner.train_final_model(spec, trial_id="nope")


def test_scores_closer_than_the_tolerance_are_tied_absolutely_for_classes_relatively_for_regression() -> None:
    from automl.search.objectives import tied

    assert tied(1.8e-9, 1e-12, "multiclass") and tied(0.0007, 0.0, "binary") and tied(0.9995, 1.0, "binary")
    assert not tied(0.002, 0.0, "binary") and not tied(0.5, 0.49, "multilabel")
    assert tied(1000.9, 1000.0, "regression") and not tied(1002.0, 1000.0, "regression")
    assert not tied(0.0015, 0.001, "regression")  # half again as large: not tied, however small the target


class _Trial:
    def __init__(self, trial_id: str, score: float | None) -> None:
        self.trial_id, self.score = trial_id, score


class _Oracle:
    """What ``tuners.ranked`` reads of a Keras Tuner oracle."""

    def __init__(self, scores: dict[str, float | None], start_order: list[str]) -> None:
        self.trials = {tid: _Trial(tid, score) for tid, score in scores.items()}
        self.start_order = start_order

    def get_best_trials(self, num_trials: int) -> list[_Trial]:
        scored = sorted((t for t in self.trials.values() if t.score is not None),
                        key=lambda t: (t.score != t.score, t.score))  # NaN last
        return scored[:num_trials]


def test_trials_tied_with_the_best_come_first_in_the_order_they_started() -> None:
    from automl.search.tuners import ranked

    # 3 started first: the portfolio's earlier entry, 0.0004 worse on validation than 1 (a tie).
    oracle = _Oracle({"0": 0.30, "1": 1e-9, "2": 0.0009, "3": 0.0004, "4": None, "5": float("nan")},
                     start_order=["3", "5", "0", "2", "1", "4"])
    assert [t.trial_id for t in ranked(oracle, "multiclass")] == ["3", "2", "1", "0"]
    # Regression errors are tied relative to their size: 101 is not tied with 100 (1 %), 100.05 is.
    oracle = _Oracle({"0": 100.05, "1": 100.0, "2": 101.0}, start_order=["2", "0", "1"])
    assert [t.trial_id for t in ranked(oracle, "regression")] == ["0", "1", "2"]
    assert ranked(_Oracle({"0": None}, ["0"]), "binary") == []


def test_the_final_model_takes_the_earliest_trial_tied_with_the_best(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from dataclasses import replace

    from automl.search import objectives

    monkeypatch.setattr(portfolio, "entries", lambda kind, task: ENTRIES)
    spec = replace(_spec(tmp_path, max_trials=3, max_epochs=2), ensemble_size=1, refit=False, calibrate=False)
    for _ in range(3):
        run_trial_step(spec, NullReporter())
    oracle = runner.build_tuner(spec, runner.prepare(spec), NullReporter()).oracle
    by_score = [t.trial_id for t in oracle.get_best_trials(3)]
    monkeypatch.setattr(objectives, "TIE_TOLERANCE", 0.0)
    assert runner.train_final_model(spec).best_trial_id == by_score[0]
    monkeypatch.setattr(objectives, "TIE_TOLERANCE", 1e9)  # every trial tied: the first started is served
    final = runner.train_final_model(spec)
    assert final.best_trial_id == oracle.start_order[0] and [m.trial_id for m in final.members] == [
        oracle.start_order[0]]


def test_on_few_validation_rows_the_final_model_blends_the_two_best_trials(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Iris's 24 validation rows: whatever the selection chose, the two best trials share 30 / 54 of the
    weight, and the served model is that blend."""
    from dataclasses import replace

    from automl.search import ensemble, tuners

    monkeypatch.setattr(portfolio, "entries", lambda kind, task: ENTRIES)
    spec = replace(_spec(tmp_path, max_trials=3, max_epochs=2), ensemble_size=3, refit=False, calibrate=False)
    for _ in range(3):
        run_trial_step(spec, NullReporter())
    data = runner.prepare(spec)
    tuner = runner.build_tuner(spec, data, NullReporter())
    best, second = (t.trial_id for t in tuners.ranked(tuner.oracle, spec.task)[:2])
    final = runner.train_final_model(spec)
    weights = {m.trial_id: m.weight for m in final.members}
    share = ensemble.prior_share(len(data.y_val))
    assert len(data.y_val) == 24 and final.ensemble is not None and final.ensemble["prior_share"] == round(share, 4)
    assert weights[best] >= share / 2 and weights[second] >= share / 2 and sum(weights.values()) == pytest.approx(1.0)
    blend = sum(w * np.asarray(tuners.validation_predictions(tuner, i), dtype="float64") for i, w in weights.items())
    assert np.allclose(runner._predict(final.model, data.x_val, data), blend, atol=1e-5)
    served = ensemble.loss(spec.objective, spec.task, data.y_val, blend)
    assert final.ensemble["served_validation_loss"] == pytest.approx(served, abs=1e-5)
    # Ensembles off: the best trial alone, however few the rows.
    alone = runner.train_final_model(replace(spec, ensemble_size=1))
    assert [m.trial_id for m in alone.members] == [best] and alone.ensemble is None


def test_a_replaced_interim_model_goes_unless_an_alias_or_a_deployment_needs_it(tmp_path: Path) -> None:
    from automl.settings import Settings
    from automl.store import Store, catalogue
    from automl.store.records import AliasRecord, ModelRecord, utcnow
    from tests.seed import seed_team, tiny_model

    store = Store(Settings(data_dir=tmp_path / "var").sqlalchemy_url)
    store.migrate()
    owned = seed_team(store, "alpha", tiny_model(tmp_path / "models"), tmp_path)

    def interim(model_id: str) -> None:
        with store.session() as session:
            session.add(ModelRecord(id=model_id, team="alpha", job_id=owned.job, dataset_id=owned.dataset,
                                    task="binary", target="label", interim=True, trial_id="0", state="ready",
                                    path=str(tmp_path / model_id)))

    for name in ("plain", "aliased", "deployed"):
        interim(name)
    with store.session() as session:
        catalogue.add_drift_counts(session, "plain", utcnow().replace(minute=0, second=0, microsecond=0), 3,
                                   {"size": {"rows": 3, "missing": 0, "bins": [3], "out_of_range": 0}})
        session.add(AliasRecord(team="alpha", name="keep-me", model_id="aliased"))
        session.get(ModelRecord, "deployed").deployed = True
    with store.session() as session:
        assert catalogue.retire_interim_model(session, "plain") == str(tmp_path / "plain")
        assert catalogue.retire_interim_model(session, "aliased") is None
        assert catalogue.retire_interim_model(session, "deployed") is None
        assert catalogue.retire_interim_model(session, owned.model) is None  # a final model is never retired
    with store.session() as session:
        assert session.get(ModelRecord, "plain") is None
        assert {m for m in ("aliased", "deployed", owned.model) if session.get(ModelRecord, m)} == {
            "aliased", "deployed", owned.model}
        assert catalogue.drift_counts_since(session, "plain", utcnow().replace(year=2000))[0] == 0
