"""Optional retention, applied by the workers' reaper (``RETENTION_EVERY_S``):

- ``AUTOML_RETENTION_DAYS_JOB_FILES``: a finished job's folder (tuner state, checkpoints, splits,
  TensorBoard logs) is removed this many days after the job ended. Its records stay: the job, its
  trials and every per-epoch history remain queryable; only the TensorBoard download goes.
- ``AUTOML_RETENTION_DAYS_MODELS``: a model that is not deployed, not aliased and not training is
  deleted (record and files, as ``DELETE /api/v1/models/{id}`` would) this many days after it was
  created.

0 (the default) keeps everything. Files are removed only inside the service's own folders.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select

from automl.settings import Settings
from automl.store import Store, catalogue
from automl.store.records import JobRecord, JobState, ModelRecord, ModelState, utcnow
from automl.usecases.deletion import remove_inside

log = logging.getLogger(__name__)

RETENTION_EVERY_S = 3600.0
FINISHED = [state.value for state in JobState if state.finished]


@dataclass
class Retained:
    job_folders: list[str] = field(default_factory=list)  # job ids whose folder went
    models: list[str] = field(default_factory=list)  # model ids deleted


def apply_retention(store: Store, settings: Settings, now: datetime | None = None) -> Retained:
    now = now or utcnow()
    done = Retained()
    if settings.retention_days_job_files:
        cutoff = now - timedelta(days=settings.retention_days_job_files)
        with store.session() as session:
            ended = list(session.scalars(select(JobRecord.id).where(JobRecord.state.in_(FINISHED),
                                                                    JobRecord.finished_at < cutoff)))
        root = settings.jobs_dir.resolve()
        for job_id in ended:
            if (settings.jobs_dir / job_id).exists():
                remove_inside(settings.jobs_dir / job_id, root)
                done.job_folders.append(job_id)
    if settings.retention_days_models:
        cutoff = now - timedelta(days=settings.retention_days_models)
        with store.session() as session:
            old = list(session.scalars(select(ModelRecord.id).where(
                ModelRecord.created_at < cutoff, ModelRecord.deployed.is_(False),
                ModelRecord.state != ModelState.training.value)))
        for model_id in old:
            with store.session() as session:  # one model per transaction: a deploy in between wins
                record = session.get(ModelRecord, model_id)
                if record is None or catalogue.why_model_is_kept(session, record):
                    continue
                path = catalogue.delete_model_record(session, record)
            remove_inside(path, settings.models_dir.resolve())
            done.models.append(model_id)
    if done.job_folders or done.models:
        log.info("retention: removed %d finished job folder(s) and %d model(s)", len(done.job_folders),
                 len(done.models))
    return done
