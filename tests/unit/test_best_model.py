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
