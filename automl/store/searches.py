"""Storage calls for jobs as the API and the dashboard see them: the job record, its trials and
per-epoch history, events, progress written by the workers, and the figures /metrics reads.

Functions take a ``Session`` (the caller owns the transaction) and return records or plain
values; no HTTP, Celery or TensorFlow here.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from automl.access import Scope
from automl.errors import NotFound
from automl.search import objectives
from automl.store.common import ACTIVE_STATES, aware, owned, visible
from automl.store.records import (
    EpochRecord,
    EventRecord,
    JobRecord,
    JobState,
    LaneRecord,
    TrialRecord,
    TrialState,
    utcnow,
)


def get_job(session: Session, job_id: str, for_update: bool = False, scope: Scope | None = None) -> JobRecord:
    record = session.get(JobRecord, job_id, with_for_update=for_update)
    if not visible(record, scope):
        raise NotFound(f"No job with id '{job_id}'.")
    return record  # type: ignore[return-value]


def list_jobs(session: Session, limit: int = 100, offset: int = 0, scope: Scope | None = None) -> list[JobRecord]:
    query = select(JobRecord).order_by(JobRecord.created_at.desc()).limit(limit).offset(offset)
    return list(session.scalars(owned(query, JobRecord, scope)))


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


def find_job_by_idempotency_key(session: Session, key: str) -> JobRecord | None:
    return session.scalars(select(JobRecord).where(JobRecord.idempotency_key == key)).first()


# --- events: what /events streams -------------------------------------------------------


def add_event(session: Session, job_id: str, kind: str, data: dict[str, Any]) -> None:
    session.add(EventRecord(job_id=job_id, kind=kind, data=data))


def events_after(session: Session, job_id: str, after_id: int, limit: int = 500) -> list[EventRecord]:
    query = (
        select(EventRecord)
        .where(EventRecord.job_id == job_id, EventRecord.id > after_id)
        .order_by(EventRecord.id)
        .limit(limit)
    )
    return list(session.scalars(query))


# --- progress --------------------------------------------------------------------------


def mark_running(session: Session, job_id: str) -> None:
    job = get_job(session, job_id)
    if job.state == JobState.queued.value:
        job.state = JobState.running.value
        job.started_at = job.started_at or utcnow()


def start_trial(
    session: Session,
    job_id: str,
    trial_id: str,
    number: int,
    hyperparameters: dict[str, Any],
    lane: int | None = None,
    worker: str | None = None,
) -> int:
    """Record a trial as running and count the attempt; a retried trial restarts from epoch 0,
    so its epochs go. Returns the attempt number (1 for a first run)."""
    session.execute(delete(EpochRecord).where(EpochRecord.job_id == job_id, EpochRecord.trial_id == trial_id))
    trial = session.get(TrialRecord, (job_id, trial_id))
    if trial is None:
        trial = TrialRecord(job_id=job_id, trial_id=trial_id, number=number, hyperparameters=hyperparameters,
                            attempts=0)
        session.add(trial)
    trial.attempts = (trial.attempts or 0) + 1
    trial.lane = lane
    trial.worker = worker
    trial.message = None
    trial.state = TrialState.running.value
    trial.hyperparameters = hyperparameters
    trial.epochs_done = 0
    trial.score = None
    trial.started_at = utcnow()
    trial.finished_at = None
    return trial.attempts


# Why a trial attempt was interrupted (a ``trial_interrupted`` event's ``reason``; the README's event table):
WORKER_LOST = "worker lost"  # the process training it died mid-trial
LEASE_LOST = "lease lost"  # its live worker found the job's lease gone and let go
WORKER_SHUTDOWN = "worker shutdown"  # its worker was stopping and handed it back


def interrupt_trial(session: Session, job_id: str, trial_id: str, reason: str, counts_as_attempt: bool = True) -> None:
    """The trial's worker let go (or died) before it finished; it waits to be run again, from epoch 0.
    The job's events say so, with ``reason``, so that a reader of the stream knows the epochs since the
    trial's last ``trial_started`` are void. Nothing happens to a trial that is not running (already
    interrupted, or never started): each unfinished attempt gets one marker.

    A hand-back on shutdown does not count as an attempt: only crashes bring a trial closer
    to being given up.
    """
    trial = session.get(TrialRecord, (job_id, trial_id))
    if trial is None or trial.state != TrialState.running.value:
        return
    trial.state = TrialState.interrupted.value
    if not counts_as_attempt:
        trial.attempts = max((trial.attempts or 1) - 1, 0)
    add_event(session, job_id, "trial_interrupted", {"trial_id": trial_id, "reason": reason})


def trial_attempts(session: Session, job_id: str) -> dict[str, int]:
    rows = session.execute(select(TrialRecord.trial_id, TrialRecord.attempts).where(TrialRecord.job_id == job_id))
    return {trial_id: attempts for trial_id, attempts in rows}


def failure_streak(session: Session, job_id: str) -> tuple[int, str | None]:
    """How many trials in a row (by finishing time) failed at the end of the search, and the last error."""
    finished = session.scalars(
        select(TrialRecord)
        .where(TrialRecord.job_id == job_id, TrialRecord.finished_at.is_not(None),
               TrialRecord.state != TrialState.running.value)
        .order_by(TrialRecord.finished_at.desc())
    )
    streak, message = 0, None
    for trial in finished:
        if trial.state != TrialState.failed.value:
            break
        streak += 1
        message = message or trial.message
    return streak, message


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
    best = next((t for t in leaderboard(session, job)
                 if t.state == TrialState.completed.value and t.score is not None and math.isfinite(t.score)), None)
    job.best_score = best.score if best else None
    job.best_trial_id = best.trial_id if best else None


def leaderboard(session: Session, job: JobRecord) -> list[TrialRecord]:
    """A job's trials, best first as the search ranks them (``objectives.ties_first``: scores within the tie
    tolerance of the best go to the earliest trial), then the trials without a score in the order they started."""
    trials = list_trials(session, job.id)
    scored = [t for t in trials if t.score is not None and math.isfinite(t.score)]
    scored.sort(key=lambda t: (t.score if job.objective_direction == "min" else -(t.score or 0.0), t.number))
    ranked = objectives.ties_first(scored, lambda t: float(t.score or 0.0), lambda t: t.number, job.task)
    return ranked + [t for t in trials if t not in ranked]


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


def cancel_queued_job(session: Session, job_id: str) -> bool:
    """Cancel a job no worker has started (compare-and-set against a worker claiming it)."""
    result = session.execute(
        update(JobRecord)
        .where(JobRecord.id == job_id, JobRecord.state == JobState.queued.value)
        .values(state=JobState.cancelled.value, cancel_requested=True, stop_reason="cancelled", finished_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def request_cancel(session: Session, job_id: str) -> None:
    session.execute(
        update(JobRecord)
        .where(JobRecord.id == job_id, JobRecord.state.in_(ACTIVE_STATES))
        .values(cancel_requested=True)
        .execution_options(synchronize_session=False)
    )


def add_attempt(session: Session, job_id: str) -> int:
    job = get_job(session, job_id)
    job.attempts += 1
    return job.attempts


# --- metrics ------------------------------------------------------------------------------


def count_jobs_by_state(session: Session) -> dict[str, int]:
    rows = session.execute(select(JobRecord.state, func.count()).group_by(JobRecord.state))
    return {state: int(count) for state, count in rows}


def held_leases(session: Session) -> dict[str, datetime]:
    """Each worker (lease owner) holding a lane, and when its latest lease expires."""
    rows = session.execute(
        select(LaneRecord.owner, func.max(LaneRecord.lease_expires_at))
        .where(LaneRecord.owner.is_not(None), LaneRecord.lease_expires_at.is_not(None))
        .group_by(LaneRecord.owner)
    )
    return {str(owner): aware(expires) for owner, expires in rows if expires is not None}


def trial_durations(session: Session) -> list[float]:
    """Seconds from start to end of every finished trial."""
    rows = session.execute(
        select(TrialRecord.started_at, TrialRecord.finished_at)
        .where(TrialRecord.started_at.is_not(None), TrialRecord.finished_at.is_not(None))
    )
    return [(aware(end) - aware(start)).total_seconds() for start, end in rows if start and end]


def delete_job_records(session: Session, job_id: str) -> None:
    """The job's own records: epochs, events, trials, lanes and the job (its models are the caller's)."""
    for record in (EpochRecord, EventRecord, TrialRecord, LaneRecord):
        session.execute(delete(record).where(record.job_id == job_id))
    session.execute(delete(JobRecord).where(JobRecord.id == job_id))
