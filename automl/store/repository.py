"""Storage calls for the metadata store. Every write of job progress goes through here.

Functions take a ``Session`` (the caller owns the transaction) and return records or plain
values; no HTTP, Celery or TensorFlow here.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.orm import Session

from automl.errors import NotFound
from automl.store.records import (
    DatasetRecord,
    EpochRecord,
    JobRecord,
    JobState,
    ModelRecord,
    TrialRecord,
    TrialState,
    utcnow,
)


def get_dataset(session: Session, dataset_id: str) -> DatasetRecord:
    record = session.get(DatasetRecord, dataset_id)
    if record is None:
        raise NotFound(f"No dataset with id '{dataset_id}'.")
    return record


def list_datasets(session: Session, limit: int = 100, offset: int = 0) -> list[DatasetRecord]:
    query = select(DatasetRecord).order_by(DatasetRecord.created_at.desc()).limit(limit).offset(offset)
    return list(session.scalars(query))


def get_job(session: Session, job_id: str, for_update: bool = False) -> JobRecord:
    record = session.get(JobRecord, job_id, with_for_update=for_update)
    if record is None:
        raise NotFound(f"No job with id '{job_id}'.")
    return record


def list_jobs(session: Session, limit: int = 100, offset: int = 0) -> list[JobRecord]:
    query = select(JobRecord).order_by(JobRecord.created_at.desc()).limit(limit).offset(offset)
    return list(session.scalars(query))


def get_model(session: Session, model_id: str) -> ModelRecord:
    record = session.get(ModelRecord, model_id)
    if record is None:
        raise NotFound(f"No model with id '{model_id}'.")
    return record


def list_models(session: Session, limit: int = 100, offset: int = 0) -> list[ModelRecord]:
    query = select(ModelRecord).order_by(ModelRecord.created_at.desc()).limit(limit).offset(offset)
    return list(session.scalars(query))


def list_trials(session: Session, job_id: str) -> list[TrialRecord]:
    return list(session.scalars(select(TrialRecord).where(TrialRecord.job_id == job_id).order_by(TrialRecord.number)))


def get_trial(session: Session, job_id: str, trial_id: str) -> TrialRecord:
    record = session.get(TrialRecord, (job_id, trial_id))
    if record is None:
        raise NotFound(f"Job '{job_id}' has no trial '{trial_id}'.")
    return record


def trial_history(session: Session, job_id: str, trial_id: str) -> list[EpochRecord]:
    query = (
        select(EpochRecord)
        .where(EpochRecord.job_id == job_id, EpochRecord.trial_id == trial_id)
        .order_by(EpochRecord.execution, EpochRecord.epoch)
    )
    return list(session.scalars(query))


# --- leases: at most one worker advances a job at any moment -----------------------------


def acquire_lease(session: Session, job_id: str, owner: str, ttl_s: int) -> bool:
    """Atomically claim ``job_id`` unless another owner holds an unexpired lease."""
    now = utcnow()
    result = session.execute(
        update(JobRecord)
        .where(
            JobRecord.id == job_id,
            JobRecord.state.in_([JobState.queued.value, JobState.running.value]),
            or_(
                JobRecord.lease_owner.is_(None),
                JobRecord.lease_owner == owner,
                JobRecord.lease_expires_at < now,
            ),
        )
        .values(lease_owner=owner, lease_expires_at=now + timedelta(seconds=ttl_s))
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def renew_lease(session: Session, job_id: str, owner: str, ttl_s: int) -> bool:
    result = session.execute(
        update(JobRecord)
        .where(JobRecord.id == job_id, JobRecord.lease_owner == owner)
        .values(lease_expires_at=utcnow() + timedelta(seconds=ttl_s))
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def release_lease(session: Session, job_id: str, owner: str) -> None:
    session.execute(
        update(JobRecord)
        .where(JobRecord.id == job_id, JobRecord.lease_owner == owner)
        .values(lease_owner=None, lease_expires_at=None)
        .execution_options(synchronize_session=False)
    )


# --- progress --------------------------------------------------------------------------


def mark_running(session: Session, job_id: str) -> None:
    job = get_job(session, job_id)
    if job.state == JobState.queued.value:
        job.state = JobState.running.value
        job.started_at = job.started_at or utcnow()


def start_trial(session: Session, job_id: str, trial_id: str, number: int, hyperparameters: dict[str, Any]) -> None:
    """Record a trial as running; a retried trial restarts from epoch 0, so its epochs go."""
    session.execute(delete(EpochRecord).where(EpochRecord.job_id == job_id, EpochRecord.trial_id == trial_id))
    trial = session.get(TrialRecord, (job_id, trial_id))
    if trial is None:
        trial = TrialRecord(job_id=job_id, trial_id=trial_id, number=number, hyperparameters=hyperparameters)
        session.add(trial)
    trial.state = TrialState.running.value
    trial.hyperparameters = hyperparameters
    trial.epochs_done = 0
    trial.score = None
    trial.started_at = utcnow()
    trial.finished_at = None


def record_epoch(
    session: Session, job_id: str, trial_id: str, epoch: int, metrics: dict[str, Any], execution: int = 0
) -> None:
    session.merge(EpochRecord(job_id=job_id, trial_id=trial_id, execution=execution, epoch=epoch, metrics=metrics))
    session.execute(
        update(TrialRecord)
        .where(TrialRecord.job_id == job_id, TrialRecord.trial_id == trial_id)
        .values(epochs_done=epoch + 1)
        .execution_options(synchronize_session=False)
    )


def finish_trial(
    session: Session,
    job_id: str,
    trial_id: str,
    state: str,
    score: float | None,
    best_epoch: int | None,
    message: str | None,
) -> None:
    trial = get_trial(session, job_id, trial_id)
    trial.state = state
    trial.score = score
    trial.best_epoch = best_epoch
    trial.message = message
    trial.finished_at = utcnow()
    session.flush()
    refresh_job_progress(session, job_id)


def refresh_job_progress(session: Session, job_id: str) -> None:
    """Recompute trials_done and the best score from the trial records (never drifts)."""
    job = get_job(session, job_id)
    finished = [TrialState.completed.value, TrialState.failed.value]
    job.trials_done = session.scalar(
        select(func.count()).where(TrialRecord.job_id == job_id, TrialRecord.state.in_(finished))
    ) or 0
    order = TrialRecord.score.asc() if job.objective_direction == "min" else TrialRecord.score.desc()
    best = session.scalars(
        select(TrialRecord)
        .where(TrialRecord.job_id == job_id, TrialRecord.state == TrialState.completed.value,
               TrialRecord.score.is_not(None))
        .order_by(order)
        .limit(1)
    ).first()
    job.best_score = best.score if best else None
    job.best_trial_id = best.trial_id if best else None


def finish_job(
    session: Session,
    job_id: str,
    state: JobState,
    error: str | None = None,
    model_id: str | None = None,
) -> None:
    job = get_job(session, job_id)
    job.state = state.value
    job.error = error
    job.model_id = model_id or job.model_id
    job.finished_at = utcnow()
    job.lease_owner = None
    job.lease_expires_at = None


def add_attempt(session: Session, job_id: str) -> int:
    job = get_job(session, job_id)
    job.attempts += 1
    return job.attempts
