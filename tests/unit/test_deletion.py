"""Deletion in process: in-use models, jobs and datasets are refused with what to do first; deleted
ones leave no record and no file; a path outside the service's folders is never removed; other
serving processes drop a deleted model at their next refresh."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pandas as pd

from api import create_app
from automl.settings import Settings
from automl.store.records import DatasetRecord, EpochRecord, JobRecord, ModelRecord, TrialRecord
from tests.conftest import make_key
from tests.seed import ROW, SHARED_ALIAS, seed_team, tiny_model


def _service(tmp_path: Path) -> tuple[Any, Any, Any]:
    app = create_app(Settings(data_dir=tmp_path / "var"))
    settings = app.extensions["automl"].settings
    store = app.extensions["automl"].store
    owned = seed_team(store, "alpha", tiny_model(settings.models_dir, "alpha-model"), tmp_path)
    mine = app.test_client()
    mine.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {make_key(store, 'alpha')}"
    return app, mine, owned


def test_a_model_in_use_is_refused_then_deleted_whole(tmp_path: Path) -> None:
    app, mine, owned = _service(tmp_path)
    store, settings = app.extensions["automl"].store, app.extensions["automl"].settings
    theirs = app.test_client()
    theirs.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {make_key(store, 'beta')}"
    model = f"/api/v1/models/{owned.model}"
    assert mine.post(f"{model}/predict", json={"instances": [ROW]}).status_code == 200  # loaded in this process
    aliased = mine.delete(model)
    assert aliased.status_code == 409 and f"'{owned.alias}'" in aliased.get_json()["message"]
    assert f"'{SHARED_ALIAS}'" in aliased.get_json()["message"]
    for alias in (owned.alias, SHARED_ALIAS):
        assert mine.delete(f"/api/v1/aliases/{alias}").status_code == 204
    assert theirs.delete(model).status_code == 404  # another team's: as if it did not exist
    assert mine.delete(f"/api/v1/models/{owned.alias}").status_code == 404  # ids only, not aliases
    assert mine.delete(model).status_code == 204
    assert mine.get(model).status_code == 404
    assert mine.post(f"{model}/predict", json={"instances": [ROW]}).status_code == 404  # not served from memory
    assert not (settings.models_dir / owned.model).exists()
    with store.session() as session:
        assert session.get(JobRecord, owned.job).model_id is None  # the job stays, without its model


def test_a_job_goes_with_its_trials_files_and_models(tmp_path: Path) -> None:
    app, mine, owned = _service(tmp_path)
    store, settings = app.extensions["automl"].store, app.extensions["automl"].settings
    tuner_file = settings.jobs_dir / owned.job / "tuner" / "oracle.json"
    tuner_file.parent.mkdir(parents=True)
    tuner_file.write_text("{}")
    held = mine.delete(f"/api/v1/jobs/{owned.job}")
    assert held.status_code == 409 and f"'{owned.alias}'" in held.get_json()["message"]
    for alias in (owned.alias, SHARED_ALIAS):
        mine.delete(f"/api/v1/aliases/{alias}")
    assert mine.delete(f"/api/v1/jobs/{owned.job}").status_code == 204
    assert mine.get(f"/api/v1/jobs/{owned.job}").status_code == 404
    assert not (settings.jobs_dir / owned.job).exists() and not (settings.models_dir / owned.model).exists()
    with store.session() as session:
        assert session.get(ModelRecord, owned.model) is None
        assert session.query(TrialRecord).filter_by(job_id=owned.job).count() == 0
        assert session.query(EpochRecord).filter_by(job_id=owned.job).count() == 0
        assert session.get(DatasetRecord, owned.dataset) is not None  # nothing else is touched


def test_a_queued_job_is_cancelled_and_deleted_at_once_a_running_one_is_cancelled_first(tmp_path: Path) -> None:
    app, mine, owned = _service(tmp_path)
    store = app.extensions["automl"].store
    with store.session() as session:
        for job_id, state in (("queued-job", "queued"), ("running-job", "running")):
            session.add(JobRecord(id=job_id, team="alpha", dataset_id=owned.dataset, target="label", task="binary",
                                  requested_task="auto", tuner="random", objective="val_loss",
                                  objective_direction="min", max_trials=1, max_epochs=1, patience=1, seed=0,
                                  state=state))
    assert mine.delete("/api/v1/jobs/queued-job").status_code == 204
    running = mine.delete("/api/v1/jobs/running-job")
    assert running.status_code == 202 and running.get_json()["delete_requested"] is True
    view = mine.get("/api/v1/jobs/running-job").get_json()
    assert view["cancel_requested"] is True and view["delete_requested"] is True  # the worker deletes it once ended


def test_a_dataset_goes_once_nothing_was_trained_on_it(tmp_path: Path) -> None:
    app, mine, owned = _service(tmp_path)
    settings = app.extensions["automl"].settings
    used = mine.delete(f"/api/v1/datasets/{owned.dataset}")
    assert used.status_code == 409 and f"job '{owned.job}'" in used.get_json()["message"]
    csv = pd.DataFrame({"x": range(20), "y": [0, 1] * 10}).to_csv(index=False).encode()
    uploaded = mine.post("/api/v1/datasets", data={"file": (io.BytesIO(csv), "d.csv")},
                         content_type="multipart/form-data").get_json()
    folder = settings.datasets_dir / uploaded["id"]
    assert folder.is_dir()
    assert mine.delete(f"/api/v1/datasets/{uploaded['id']}").status_code == 204
    assert not folder.exists() and mine.get(f"/api/v1/datasets/{uploaded['id']}").status_code == 404


def test_nothing_outside_the_services_folders_is_ever_removed(tmp_path: Path) -> None:
    app, mine, owned = _service(tmp_path)
    store = app.extensions["automl"].store
    outside = tmp_path / "not-ours"
    outside.mkdir()
    (outside / "keep.txt").write_text("precious")
    with store.session() as session:
        session.add(ModelRecord(id="stray", team="alpha", job_id=owned.job, dataset_id=owned.dataset, task="binary",
                                target="label", state="ready", path=str(outside)))
    assert mine.delete("/api/v1/models/stray").status_code == 204
    assert (outside / "keep.txt").read_text() == "precious"


def test_other_processes_drop_a_deleted_model_at_their_next_refresh(tmp_path: Path) -> None:
    app, mine, owned = _service(tmp_path)
    other = create_app(app.extensions["automl"].settings)  # a second serving process on the same store
    services = other.extensions["automl"]
    services.resolver.predictor(owned.model, _scope("alpha"))
    assert owned.model in services.models
    for alias in (owned.alias, SHARED_ALIAS):
        mine.delete(f"/api/v1/aliases/{alias}")
    assert mine.delete(f"/api/v1/models/{owned.model}").status_code == 204
    assert owned.model in services.models  # until it refreshes
    services.warmup.refresh()
    assert owned.model not in services.models


def _scope(team: str) -> Any:
    from automl.access import Scope

    return Scope(team)
