"""The Keras Tuner adapter: the portfolio goes first (projected into a narrowed space), no
configuration is trained twice, and the Keras Tuner internals the service relies on still exist."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import keras_tuner as kt
import numpy as np
import pytest
from sklearn.datasets import load_iris

from automl.datasets.ingest import ingest_file
from automl.search import portfolio, runner, tuners
from automl.search.reporter import NullReporter
from automl.search.runner import run_trial_step
from automl.search.spec import SearchSpec


class Started(NullReporter):
    def __init__(self) -> None:
        self.hyperparameters: list[dict[str, Any]] = []

    def trial_started(self, trial_id: str, number: int, hyperparameters: dict[str, Any]) -> None:
        self.hyperparameters.append(hyperparameters)


def _spec(tmp_path: Path, tuner: str = "random", max_trials: int = 3, max_epochs: int = 1,
          **overrides: dict[str, Any]) -> SearchSpec:
    csv = tmp_path / "iris.csv"
    load_iris(as_frame=True).frame.to_csv(csv, index=False)
    ingested = ingest_file(csv, "iris.csv", tmp_path / "datasets")
    return SearchSpec(
        job_id="j", dataset_path=ingested.path, column_types={c["name"]: c["type"] for c in ingested.columns},
        targets=["target"], task="multiclass", classes=[0, 1, 2], tuner=tuner, objective="val_log_loss",
        direction="min", max_trials=max_trials, max_epochs=max_epochs, patience=1, seed=1, work_dir=tmp_path / "job",
        overrides={"units": {"fixed": 16}, **overrides},
    )


ENTRIES = [
    {"num_layers": 3, "activation": "selu", "numeric_transform": "quantile", "dropout": 0.15},
    {"num_layers": 1, "activation": "gelu", "numeric_embedding": "periodic", "embedding_units": 4},
]


@pytest.mark.parametrize("tuner", ["random", "bayesian", "hyperband"])
def test_portfolio_entries_are_the_first_trials(tuner: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(portfolio, "entries", lambda kind, task: ENTRIES)
    # Hyperband at 3 epochs: a first bracket of 3 configurations trained for 1 epoch each.
    spec = _spec(tmp_path, tuner, max_trials=3, max_epochs=3 if tuner == "hyperband" else 1)
    reporter = Started()
    for _ in range(3):
        run_trial_step(spec, reporter)
    first, second, third = reporter.hyperparameters[:3]
    assert {k: first[k] for k in ENTRIES[0]} == ENTRIES[0]
    assert {k: second[k] for k in ENTRIES[1]} == ENTRIES[1]
    # Names an entry leaves out take their defaults (the batch size the data implies).
    assert first["optimizer"] == "adam" and first["batch_size"] == 32
    assert third not in (first, second)


def test_a_job_without_the_portfolio_lets_the_tuner_propose_from_the_first_trial(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(portfolio, "entries", lambda kind, task: ENTRIES)
    spec = dataclasses.replace(_spec(tmp_path, "random", max_trials=2), portfolio=False)
    reporter = Started()
    for _ in range(2):
        run_trial_step(spec, reporter)
    for trial, entry in zip(reporter.hyperparameters, ENTRIES, strict=True):
        assert {k: trial.get(k) for k in entry} != entry


def test_entries_are_projected_into_a_narrowed_space(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(portfolio, "entries", lambda kind, task: ENTRIES)
    spec = _spec(tmp_path, max_trials=2, num_layers={"min": 2, "max": 2, "step": None, "sampling": "linear"},
                 activation={"values": ["relu", "elu"]}, dropout={"min": 0.0, "max": 0.1, "step": 0.05,
                                                                   "sampling": "linear"})
    reporter = Started()
    run_trial_step(spec, reporter)
    first = reporter.hyperparameters[0]
    assert first["num_layers"] == 2  # 3 is outside [2, 2]
    assert first["activation"] == "relu"  # selu is excluded: the hyperparameter's default
    assert first["dropout"] == pytest.approx(0.1)  # 0.15 clipped into [0, 0.1]
    assert first["numeric_transform"] == "quantile"  # what the job leaves open stays as the entry says


def test_project_value_rules() -> None:
    from keras_tuner.engine import hyperparameters as hps

    choice = hps.Choice("l2", [0.0, 1e-4, 1e-2], default=0.0)
    assert tuners._project_value(choice, 2e-3) == 1e-4  # the nearest allowed value
    assert tuners._project_value(choice, 1e-2) == 1e-2
    words = hps.Choice("activation", ["relu", "elu"], default="elu")
    assert tuners._project_value(words, "selu") == "elu"  # an excluded category: the default
    backbone = hps.Choice("backbone", ["none"], default="none")
    assert tuners._project_value(backbone, "resnet50") is None  # an entry for an excluded backbone is skipped
    assert tuners._project_value(hps.Int("num_layers", 1, 4, default=2), 9) == 4
    assert tuners._project_value(hps.Float("dropout", 0.0, 0.5, step=0.05), 0.33) == pytest.approx(0.35)
    assert tuners._project_value(hps.Fixed("units", 16), 256) == 16


def test_no_configuration_is_trained_twice(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A space with two configurations: two trials, then the search is exhausted (random search would
    otherwise draw the same values again, and the portfolio repeats one of them)."""
    monkeypatch.setattr(portfolio, "entries", lambda kind, task: [{"batch_norm": True}, {"batch_norm": True}])
    fixed = {name: {"fixed": value} for name, value in portfolio.full_assignment({}, "multiclass").items()
             if name not in ("batch_norm", "units")}
    spec = _spec(tmp_path, max_trials=5, **fixed)
    reporter = Started()
    outcomes = [run_trial_step(spec, reporter).outcome for _ in range(3)]
    assert outcomes == ["trial_ended", "trial_ended", "exhausted"]
    assert sorted(h["batch_norm"] for h in reporter.hyperparameters) == [False, True]


def test_a_bayesian_proposal_that_repeats_a_trial_is_replaced(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(portfolio, "entries", lambda kind, task: [])
    spec = _spec(tmp_path, "bayesian", max_trials=4)
    reporter = Started()
    for _ in range(3):  # the initial points
        run_trial_step(spec, reporter)
    repeated = dict(reporter.hyperparameters[0])

    def propose_a_repeat(self: Any, trial_id: str) -> dict[str, Any]:
        values = {hp.name: repeated.get(hp.name, hp.default) for hp in self.hyperparameters.space}
        return {"status": kt.engine.trial.TrialStatus.RUNNING, "values": values}

    monkeypatch.setattr(kt.oracles.BayesianOptimizationOracle, "populate_space", propose_a_repeat)
    run_trial_step(spec, reporter)
    assert reporter.hyperparameters[3] not in reporter.hyperparameters[:3]


def test_each_trial_keeps_its_best_weights_and_validation_predictions(tmp_path: Path) -> None:
    spec = _spec(tmp_path, max_trials=1)
    run_trial_step(spec, NullReporter())
    from automl.search.data import prepare

    data = prepare(spec)
    tuner = runner.build_tuner(spec, data, NullReporter())
    predictions = tuners.validation_predictions(tuner, "0")
    assert predictions is not None and predictions.shape == (len(data.y_val), 3)
    record = tuners.fit_record(tuner, "0")
    assert record["epochs"] == 1 and record["seconds"] > 0
    assert (tmp_path / "job" / "tensorboard" / "trial_0" / "validation").is_dir()


def test_keras_tuner_internals_the_adapter_relies_on() -> None:
    """If a Keras Tuner upgrade renames any of these, this fails before a search does."""
    oracle = kt.oracles.RandomSearchOracle(objective=kt.Objective("val_loss", "min"), max_trials=1)
    assert isinstance(oracle._retry_queue, list) and isinstance(oracle.ongoing_trials, dict)
    assert callable(oracle._random_values) and callable(oracle._get_trial_dir)
    assert callable(kt.oracles.GridSearchOracle._get_next_combination)
    assert callable(kt.Tuner._try_build) and callable(kt.Tuner._get_checkpoint_fname)
    assert callable(kt.Tuner._deepcopy_callbacks)
    from keras_tuner.src.engine import tuner_utils

    for name in ("TunerCallback", "convert_to_metrics_dict", "get_best_step", "validate_trial_results"):
        assert hasattr(tuner_utils, name), name
    assert callable(kt.Hyperband._build_hypermodel)  # loads a promoted trial's weights


def test_the_final_model_refits_only_what_the_budget_leaves_time_for(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from dataclasses import replace
    from datetime import UTC, datetime, timedelta

    monkeypatch.setattr(portfolio, "entries", lambda kind, task: ENTRIES)
    spec = replace(_spec(tmp_path, max_trials=2, max_epochs=3), ensemble_size=2)
    for _ in range(2):
        run_trial_step(spec, NullReporter())
    unlimited = runner.train_final_model(spec)
    assert unlimited.refit and all(m.refit for m in unlimited.members) and unlimited.refit_rows == 150
    rushed = runner.train_final_model(replace(spec, deadline=datetime.now(UTC) + timedelta(seconds=1)))
    assert not rushed.refit and rushed.refit_rows is None  # no time left: the trials' own weights
    assert rushed.test_metrics == unlimited.test_metrics  # measured before any refit, either way


def test_a_retrained_member_is_served_beside_its_trials_own_weights(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from dataclasses import replace

    from automl.search.data import prepare

    monkeypatch.setattr(portfolio, "entries", lambda kind, task: ENTRIES)
    spec = replace(_spec(tmp_path, max_trials=1, max_epochs=3), ensemble_size=1, refit=False, calibrate=False,
                   retrainings=1)
    run_trial_step(spec, NullReporter())
    own = runner.train_final_model(spec)
    refitted = runner.train_final_model(replace(spec, refit=True))
    assert [m.refit for m in refitted.members] == [True] and refitted.members[0].weight == 1.0
    assert refitted.members[0].retrainings == 1
    data = prepare(spec)
    x = data.pipeline(data.x_test, None, 64)
    served = refitted.model.predict(x, verbose=0)
    retraining = refitted.model.get_layer("member_0").predict(x, verbose=0)
    trials_own = refitted.model.get_layer("member_1").predict(x, verbose=0)
    np.testing.assert_allclose(trials_own, own.model.predict(x, verbose=0), atol=1e-6)  # the trial's weights
    assert np.abs(retraining - trials_own).max() > 1e-3  # a network of its own, trained on every row
    np.testing.assert_allclose(served, (retraining + trials_own) / 2, atol=1e-6)
    np.testing.assert_allclose(served.sum(axis=1), 1.0, atol=1e-5)  # still probabilities


def test_only_table_models_serve_a_retraining_beside_its_trial() -> None:
    members = [runner.Member("a", 0.75, {}, 3, refit=True), runner.Member("b", 0.25, {}, 3, refit=False)]
    retrained, own = ["a retrained", "b as trained"], ["a as trained", "b as trained"]
    assert runner.served_members(members, retrained, own, "tabular") == [
        (0, "a retrained", 0.375), (0, "a as trained", 0.375), (1, "b as trained", 0.25)]
    assert runner.served_members(members, retrained, own, "image") == [(0, "a retrained", 0.75),
                                                                        (1, "b as trained", 0.25)]
    # More retrainings of a member (other seeds): each of them and its trial's weights in equal shares.
    more = {0: ["a seed 2", "a seed 3"]}
    assert runner.served_members(members, retrained, own, "tabular", more) == [
        (0, "a retrained", 0.1875), (0, "a seed 2", 0.1875), (0, "a seed 3", 0.1875), (0, "a as trained", 0.1875),
        (1, "b as trained", 0.25)]
    assert runner.served_members(members, retrained, own, "image", more) == [(0, "a retrained", 0.75),
                                                                              (1, "b as trained", 0.25)]


def test_a_member_retrained_with_several_seeds_is_served_as_their_mean_with_its_trial(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from dataclasses import replace

    from automl.search.data import prepare

    monkeypatch.setattr(portfolio, "entries", lambda kind, task: ENTRIES)
    spec = replace(_spec(tmp_path, max_trials=1, max_epochs=3), ensemble_size=1, calibrate=False, retrainings=3)
    run_trial_step(spec, NullReporter())
    own = runner.train_final_model(replace(spec, refit=False))
    bagged = runner.train_final_model(spec)
    assert bagged.members[0].retrainings == 3 and bagged.card()["members"][0]["retrainings"] == 3
    assert bagged.test_metrics == own.test_metrics  # measured before any retraining
    data = prepare(spec)
    x = data.pipeline(data.x_test, None, 64)
    nets = [bagged.model.get_layer(f"member_{i}").predict(x, verbose=0) for i in range(4)]
    np.testing.assert_allclose(nets[3], own.model.predict(x, verbose=0), atol=1e-6)  # the trial's own weights
    for i in range(3):
        for j in range(i + 1, 4):
            assert np.abs(nets[i] - nets[j]).max() > 1e-3  # each retraining a network of its own (its own seed)
    np.testing.assert_allclose(bagged.model.predict(x, verbose=0), np.mean(nets, axis=0), atol=1e-6)

    # Each retraining after a member's first takes the time left, as the first does: here time for one more.
    answers = iter([True, True, False])
    monkeypatch.setattr(runner._Clock, "allows", lambda self, seconds: next(answers, False))
    rushed = runner.train_final_model(spec)
    assert rushed.members[0].retrainings == 2 and rushed.refit
    monkeypatch.undo()
    # Never more networks in all than MAX_NETWORKS (here 3: the trial's weights and two retrainings).
    monkeypatch.setattr(portfolio, "entries", lambda kind, task: ENTRIES)
    monkeypatch.setattr(runner, "MAX_NETWORKS", 3)
    assert runner.train_final_model(spec).members[0].retrainings == 2


def test_a_member_without_time_to_be_retrained_is_fine_tuned_on_every_row(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from dataclasses import replace
    from datetime import UTC, datetime, timedelta

    from automl.search.data import prepare

    monkeypatch.setattr(portfolio, "entries", lambda kind, task: ENTRIES)
    spec = replace(_spec(tmp_path, max_trials=1, max_epochs=3), ensemble_size=1, refit=False)
    run_trial_step(spec, NullReporter())
    own = runner.train_final_model(spec)
    # A retraining that would take hours, an hour left: the trial's weights go on over every row instead.
    monkeypatch.setattr(runner, "_fit_estimate", lambda record, epochs, rows_ratio: 1e6)
    rushed = runner.train_final_model(replace(spec, refit=True, deadline=datetime.now(UTC) + timedelta(hours=1)))
    member = rushed.members[0]
    assert (member.refit, member.fine_tune_passes) == (False, runner.FINE_TUNE_PASSES)
    assert rushed.refit and rushed.refit_rows == 150
    assert rushed.card()["members"][0]["fine_tune_passes"] == runner.FINE_TUNE_PASSES
    assert rushed.history is None  # the card's history stays the trial's epochs
    assert rushed.test_metrics == own.test_metrics  # measured before, on the trial's own weights
    data = prepare(spec)
    x = data.pipeline(data.x_test, None, 64)
    # The same trial's weights, moved by the passes over every row (the test rows included).
    moved = np.abs(rushed.model.predict(x, verbose=0) - own.model.predict(x, verbose=0)).max()
    assert 0 < moved < 0.5


def test_fine_tune_passes_follow_the_trials_own_pace_and_the_time_left() -> None:
    from types import SimpleNamespace

    # 10 epochs in 13 s (3 s of it tracing), 2 passes per epoch: a pass over 1.5x the rows takes 0.75 s.
    record, data = {"seconds": 13.0, "epochs": 10}, SimpleNamespace(passes_per_epoch=2)
    passes = runner._fine_tune_passes
    assert passes(record, data, 1.5, 10.0) == 9  # (10 - 3 s tracing) / 0.75
    assert passes(record, data, 1.5, 1000.0) == runner.FINE_TUNE_PASSES
    assert passes(record, data, 1.5, 6.0) == 0  # 4 passes are not worth it
    assert passes({}, data, 1.5, 1000.0) == 0  # no record of the trial's pace
    assert passes(record, data, 1.5, None) == 0  # no budget: a full retraining always fits
    # A trial faster than its tracing allowance has no measured pace: not a free pass past the deadline.
    quick = {"seconds": 2.0, "epochs": 10}
    assert passes(quick, data, 1.5, 1000.0) == runner.FINE_TUNE_PASSES
    assert passes(quick, data, 1.5, 2.0) == 0
    assert passes(quick, data, 1.5, -1.0) == 0


def test_a_fine_tune_leaves_the_lighter_members_retrainings_their_time_unless_it_outweighs_them() -> None:
    def passes_in(seconds: float) -> int:
        return int(seconds) if seconds >= 5 else 0

    share = runner._fine_tune_share
    assert share(0.6, 30.0, [(17.0, 0.4)], passes_in) == 13  # the lighter retraining's 17 s left aside
    assert share(0.6, 20.0, [(17.0, 0.4)], passes_in) == 20  # too few passes beside it: the heavier takes all
    assert share(0.5, 20.0, [(17.0, 0.5)], passes_in) == 0  # as heavy as the retraining it would displace
    assert share(0.3, 20.0, [(17.0, 0.2), (2.0, 0.2)], passes_in) == 0  # lighter than the two together
    assert share(0.3, 20.0, [(40.0, 0.5), (9.0, 0.2)], passes_in) == 11  # a retraining that cannot fit keeps nothing
    assert share(0.6, 20.0, [], passes_in) == 20


def test_the_final_step_trains_the_heaviest_member_first_and_does_not_starve_it_for_a_lighter_one(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from types import SimpleNamespace

    # The heavier member's trial took 33 s over 30 epochs, the lighter's 13 s over 10: retraining on every
    # row (100 rows against 70) would take about 46 s and 17 s, a pass 1.4 s, a fine-tune 3 s more to trace.
    records = {"heavy": {"seconds": 33.0, "epochs": 30}, "light": {"seconds": 13.0, "epochs": 10}}
    data = SimpleNamespace(split_sizes={"train": 70, "validation": 15, "test": 15}, passes_per_epoch=1)
    spec = SimpleNamespace(kind="tabular", retrainings=1)
    per_pass = 1.0 * 100 / 70

    class Clock:  # simulated seconds: each piece of work takes the time it was estimated to take
        def __init__(self, seconds: float) -> None:
            self.seconds = seconds

        def left(self) -> float:
            return self.seconds

        def allows(self, seconds: float) -> bool:
            return seconds <= self.seconds

    def run(left: float, weights: tuple[float, float]) -> list[tuple[Any, ...]]:
        clock, done = Clock(left), []
        chosen = [(SimpleNamespace(trial_id="heavy"), weights[0]), (SimpleNamespace(trial_id="light"), weights[1])]
        members = [runner.Member(t.trial_id, w, {}, int(records[t.trial_id]["epochs"]), False) for t, w in chosen]

        def refit(spec: Any, tuner: Any, trial: Any, epochs: int, data: Any, number: int, run: str,
                  draw: int = 0) -> tuple[str, list[Any]]:
            clock.seconds -= runner._fit_estimate(records[trial.trial_id], epochs, 100 / 70)
            done.append(("retrained", trial.trial_id))
            return f"{trial.trial_id} retrained", []

        def fine_tune(spec: Any, tuner: Any, trial: Any, model: Any, passes: int, data: Any, number: int,
                      run: str) -> None:
            clock.seconds -= runner.TRACE_S + passes * per_pass
            assert model == f"{trial.trial_id} as trained"  # the trial's own weights, never a retraining
            done.append(("fine-tuned", trial.trial_id, passes))

        monkeypatch.setattr(runner, "_refit", refit)
        monkeypatch.setattr(runner, "_fine_tune", fine_tune)
        monkeypatch.setattr(runner.tuners, "fit_record", lambda tuner, trial_id: records[trial_id])
        models = ["heavy as trained", "light as trained"]
        runner._train_on_every_row(spec, None, chosen, members, models, list(models), data, clock)
        for number, member in enumerate(members):  # what the card will say matches what was done
            tuned = [d[2] for d in done if d[:2] == ("fine-tuned", member.trial_id)]
            assert member.fine_tune_passes == (tuned[0] if tuned else 0)
            assert member.refit == (("retrained", member.trial_id) in done)
            assert models[number] == f"{member.trial_id} {'retrained' if member.refit else 'as trained'}"
        return done

    # 20 s left: the lighter member's retraining (17 s) would leave the heavier one too little for a fine-tune.
    assert run(20.0, (0.6, 0.4)) == [("fine-tuned", "heavy", 11)]
    # Equal weights: the retraining, which takes the time, is worth as much.
    assert run(20.0, (0.5, 0.5)) == [("retrained", "light")]
    # 40 s left: the heavier member's fine-tune leaves the lighter one's retraining its 17 s.
    assert run(40.0, (0.6, 0.4)) == [("fine-tuned", "heavy", 13), ("retrained", "light")]
    # An hour: both retrained, heaviest first, then (no more retrainings asked for) the time left fine-tunes
    # their trials' own weights, which are served beside the retrainings.
    assert run(3600.0, (0.6, 0.4)) == [("retrained", "heavy"), ("retrained", "light"),
                                       ("fine-tuned", "heavy", runner.FINE_TUNE_PASSES),
                                       ("fine-tuned", "light", runner.FINE_TUNE_PASSES)]
    # 70 s: both retrained (63 s), and the 7 s left are too few for a fine-tune's 5 passes beside its tracing.
    assert run(70.0, (0.6, 0.4)) == [("retrained", "heavy"), ("retrained", "light")]


def test_a_hyperband_trial_cut_short_by_its_round_trains_on_before_it_is_served(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from dataclasses import replace

    monkeypatch.setattr(portfolio, "entries", lambda kind, task: ENTRIES)
    spec = replace(_spec(tmp_path, "hyperband", max_trials=3, max_epochs=9), patience=100, refit=False,
                   ensemble_size=0)
    run_trial_step(spec, NullReporter())  # the first bracket's first trial: 1 epoch of 9
    trained = runner.train_final_model(spec)
    assert trained.members[0].epochs > 1  # trained on to max_epochs with early stopping, not served at 1 epoch


def _drive(oracle: Any, tmp_path: Path, trials: int) -> list[float]:
    """Run ``oracle`` on a known objective, min (x - 0.3)² + (y - 0.7)², without training anything;
    each proposal's distance to the optimum, in order."""
    import keras_tuner as kt

    hps = kt.HyperParameters()
    hps.Float("x", 0.0, 1.0)
    hps.Float("y", 0.0, 1.0)
    oracle.portfolio, oracle.kind = [], "tabular"
    oracle._set_project_dir(str(tmp_path), oracle.__class__.__name__)
    oracle.update_space(hps)
    distances = []
    for i in range(trials):
        trial = oracle.create_trial(f"tuner{i}")
        x, y = trial.hyperparameters.get("x"), trial.hyperparameters.get("y")
        distances.append(float(np.hypot(x - 0.3, y - 0.7)))
        oracle.update_trial(trial.trial_id, {"val_loss": (x - 0.3) ** 2 + (y - 0.7) ** 2})
        trial.status = kt.engine.trial.TrialStatus.COMPLETED
        oracle.end_trial(trial)
    return distances


def test_bayesian_search_converges_where_random_search_does_not(tmp_path: Path) -> None:
    """After its initial points the Gaussian process proposes near the optimum of a smooth objective;
    random search, with the same seed and trial count, keeps sampling the whole square."""
    import keras_tuner as kt

    objective = kt.Objective("val_loss", "min")
    bayesian = tuners.PortfolioBayesianOracle(objective=objective, max_trials=20, num_initial_points=3, seed=1)
    random = tuners.PortfolioRandomSearchOracle(objective=objective, max_trials=20, seed=1)
    guided = _drive(bayesian, tmp_path / "b", 20)[-6:]
    drawn = _drive(random, tmp_path / "r", 20)[-6:]
    assert float(np.median(guided)) < 0.1, guided
    assert float(np.median(guided)) < float(np.median(drawn)) / 2, (guided, drawn)


def test_a_trial_short_of_time_anneals_by_its_deadline_and_its_refit_follows_the_same_curve(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from dataclasses import replace
    from datetime import UTC, datetime, timedelta

    from automl.hypermodels.base import SearchHyperModel
    from automl.search.data import prepare

    monkeypatch.setattr(portfolio, "entries", lambda kind, task: [{"lr_schedule": "cosine", "learning_rate": 0.01}])
    spec = replace(_spec(tmp_path, max_trials=1, max_epochs=6), patience=100, ensemble_size=1,
                   deadline=datetime.now(UTC) + timedelta(hours=1), budget_s=3600)
    # As if no time were left after the epoch now starting: from the third epoch on (the first two time an
    # epoch) the rate anneals to its floor at once.
    monkeypatch.setattr(tuners.ReportingMixin, "_time_left", lambda self: 0.0)
    run_trial_step(spec, NullReporter())
    record = tuners.fit_record(runner.build_tuner(spec, prepare(spec), NullReporter()), "0")
    assert record["epochs"] == 6 and record["anneal"] == [2, 3]

    asked: list[Any] = []
    fit = SearchHyperModel.fit

    def spy(self: SearchHyperModel, *args: Any, **kwargs: Any) -> Any:
        asked.append(kwargs.get("anneal"))
        return fit(self, *args, **kwargs)

    monkeypatch.setattr(SearchHyperModel, "fit", spy)
    trained = runner.train_final_model(spec)
    assert trained.refit and asked == [[2, 3]] * spec.retrainings  # each retraining (its own seed), same curve
    # A job without a time budget: the plain cosine curve, whatever the clock says.
    (tmp_path / "plain").mkdir()
    plain = replace(_spec(tmp_path / "plain", max_trials=1, max_epochs=6), patience=100)
    run_trial_step(plain, NullReporter())
    assert tuners.fit_record(runner.build_tuner(plain, prepare(plain), NullReporter()), "0")["anneal"] is None
