"""Retention (``AUTOML_RETENTION_DAYS_*``): old finished jobs' folders and old unused models go, their
records and histories (jobs) stay; what is deployed, aliased, training, recent or unfinished stays."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from automl.settings import Settings
from automl.store import Store
from automl.store.records import EpochRecord, JobRecord, ModelRecord, utcnow
from automl.usecases.retention import apply_retention
from tests.seed import seed_team


def _model(store: Store, settings: Settings, job_id: str, model_id: str, age_days: float, **fields: object) -> Path:
    folder = settings.models_dir / model_id
    folder.mkdir(parents=True)
    (folder / "model.keras").write_bytes(b"x" * 100)
    with store.session() as session:
        session.add(ModelRecord(id=model_id, team="alpha", job_id=job_id, dataset_id="alpha-dataset", task="binary",
                                target="label", state=fields.pop("state", "ready"), path=str(folder),
                                created_at=utcnow() - timedelta(days=age_days), **fields))
    return folder


def test_retention_removes_only_what_is_old_and_unused(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "var", retention_days_job_files=7, retention_days_models=30)
    settings.ensure_dirs()
    store = Store(settings.sqlalchemy_url)
    store.migrate()
    owned = seed_team(store, "alpha", tmp_path / "shared-model", tmp_path)
    folders = {}
    for job_id, state, ended_days_ago in (("old-done", "succeeded", 8), ("recent-done", "failed", 6),
                                          ("old-running", "running", None)):
        with store.session() as session:
            session.add(JobRecord(id=job_id, team="alpha", dataset_id=owned.dataset, target="label", task="binary",
                                  requested_task="auto", tuner="random", objective="val_loss",
                                  objective_direction="min", max_trials=1, max_epochs=1, patience=1, seed=0,
                                  state=state, created_at=utcnow() - timedelta(days=20),
                                  finished_at=None if ended_days_ago is None
                                  else utcnow() - timedelta(days=ended_days_ago)))
            session.add(EpochRecord(job_id=job_id, trial_id="t", execution=0, epoch=0, metrics={"loss": 1.0}))
        folders[job_id] = settings.jobs_dir / job_id / "tuner"
        folders[job_id].mkdir(parents=True)
        (folders[job_id] / "oracle.json").write_text("{}")
    old_unused = _model(store, settings, "old-done", "old-unused", 31)
    old_deployed = _model(store, settings, "old-done", "old-deployed", 31, deployed=True)
    old_training = _model(store, settings, "old-running", "old-training", 31, state="training")
    recent = _model(store, settings, "old-done", "recent", 29)
    with store.session() as session:
        session.get(ModelRecord, owned.model).created_at = utcnow() - timedelta(days=90)  # type: ignore[union-attr]
        session.get(JobRecord, "old-done").model_id = "old-unused"  # type: ignore[union-attr]

    done = apply_retention(store, settings)

    assert done.job_folders == ["old-done"] and done.models == ["old-unused"]
    assert not (settings.jobs_dir / "old-done").exists()
    assert folders["recent-done"].is_dir() and folders["old-running"].is_dir()
    assert not old_unused.exists() and old_deployed.is_dir() and old_training.is_dir() and recent.is_dir()
    with store.session() as session:
        job = session.get(JobRecord, "old-done")
        assert job is not None and job.model_id is None  # the record stays, without the deleted model
        assert session.query(EpochRecord).filter_by(job_id="old-done").count() == 1  # its history too
        assert session.get(ModelRecord, "old-unused") is None
        assert session.get(ModelRecord, owned.model) is not None  # old, but aliased
    assert apply_retention(store, settings).models == []  # nothing more on a second pass

    keep_all = Settings(data_dir=tmp_path / "var")
    assert apply_retention(store, keep_all).models == [] and folders["recent-done"].is_dir()
