"""Storage calls for the metadata store. Every write of job progress goes through here.

Functions take a ``Session`` (the caller owns the transaction) and return records or plain
values; no HTTP, Celery or TensorFlow here.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.orm import Session

from automl.access import Scope
from automl.errors import Conflict, NotFound
from automl.store.records import (
    AliasRecord,
    ApiKeyRecord,
    DatasetRecord,
    EpochRecord,
    EventRecord,
    JobRecord,
    JobState,
    LaneRecord,
    ModelRecord,
    ModelState,
    TrialRecord,
    TrialState,
    utcnow,
)


def _visible(record: Any, scope: Scope | None) -> bool:
    """Whether the caller may see ``record``: another team's resource is reported as missing."""
    return record is not None and (scope is None or scope.sees(record.team))


def _owned(query: Any, record_type: Any, scope: Scope | None) -> Any:
    return query if scope is None or scope.admin else query.where(record_type.team == scope.team)


def get_dataset(session: Session, dataset_id: str, scope: Scope | None = None) -> DatasetRecord:
    record = session.get(DatasetRecord, dataset_id)
    if not _visible(record, scope):
        raise NotFound(f"No dataset with id '{dataset_id}'.")
    return record  # type: ignore[return-value]


def list_datasets(session: Session, limit: int = 100, offset: int = 0,
                  scope: Scope | None = None) -> list[DatasetRecord]:
    query = select(DatasetRecord).order_by(DatasetRecord.created_at.desc()).limit(limit).offset(offset)
    return list(session.scalars(_owned(query, DatasetRecord, scope)))


def get_job(session: Session, job_id: str, for_update: bool = False, scope: Scope | None = None) -> JobRecord:
    record = session.get(JobRecord, job_id, with_for_update=for_update)
    if not _visible(record, scope):
        raise NotFound(f"No job with id '{job_id}'.")
    return record  # type: ignore[return-value]


def list_jobs(session: Session, limit: int = 100, offset: int = 0, scope: Scope | None = None) -> list[JobRecord]:
    query = select(JobRecord).order_by(JobRecord.created_at.desc()).limit(limit).offset(offset)
    return list(session.scalars(_owned(query, JobRecord, scope)))


def get_model(session: Session, model_id: str, scope: Scope | None = None) -> ModelRecord:
    record = session.get(ModelRecord, model_id)
    if not _visible(record, scope):
        raise NotFound(f"No model with id '{model_id}'.")
    return record  # type: ignore[return-value]


def list_models(session: Session, limit: int = 100, offset: int = 0,
                deployed: bool | None = None, scope: Scope | None = None) -> list[ModelRecord]:
    query = select(ModelRecord).order_by(ModelRecord.created_at.desc()).limit(limit).offset(offset)
    if deployed is not None:
        query = query.where(ModelRecord.deployed.is_(deployed))
    return list(session.scalars(_owned(query, ModelRecord, scope)))


def deployed_models(session: Session) -> list[ModelRecord]:
    """Ready models marked deployed, oldest deployment first (the order serving processes load them)."""
    query = (select(ModelRecord)
             .where(ModelRecord.deployed.is_(True), ModelRecord.state == ModelState.ready.value)
             .order_by(ModelRecord.deployed_at))
    return list(session.scalars(query))


def set_deployed(session: Session, record: ModelRecord, deployed: bool) -> ModelRecord:
    if record.deployed != deployed:
        record.deployed = deployed
        record.deployed_at = utcnow() if deployed else None
        session.flush()
    return record


# --- aliases: names are per team ---------------------------------------------------------


def find_alias(session: Session, name: str, scope: Scope | None = None) -> AliasRecord | None:
    """The caller's alias ``name``. An admin (or an internal caller) also finds another team's
    alias when its name is unique across teams; the caller's own team wins a tie."""
    query = select(AliasRecord).where(AliasRecord.name == name).order_by(AliasRecord.team)
    found = list(session.scalars(_owned(query, AliasRecord, scope)))
    own = [a for a in found if scope is not None and a.team == scope.team]
    if own:
        return own[0]
    if len(found) > 1:
        teams = ", ".join(a.team for a in found)
        raise Conflict(f"Alias '{name}' exists in several teams ({teams}); use the model id instead.")
    return found[0] if found else None


def get_alias(session: Session, name: str, scope: Scope | None = None) -> AliasRecord:
    record = find_alias(session, name, scope)
    if record is None:
        raise NotFound(f"No alias named '{name}'.")
    return record


def list_aliases(session: Session, scope: Scope | None = None) -> list[AliasRecord]:
    query = select(AliasRecord).order_by(AliasRecord.name, AliasRecord.team)
    return list(session.scalars(_owned(query, AliasRecord, scope)))


def set_alias(session: Session, team: str, name: str, model_id: str) -> tuple[AliasRecord, bool]:
    """Point ``team``'s alias ``name`` at ``model_id``; True when the alias is new."""
    record = session.get(AliasRecord, (team, name), with_for_update=True)
    created = record is None
    if record is None:
        record = AliasRecord(team=team, name=name, model_id=model_id)
        session.add(record)
    record.model_id = model_id
    record.updated_at = utcnow()
    session.flush()
    return record, created


def delete_alias(session: Session, name: str, scope: Scope | None = None) -> None:
    session.delete(get_alias(session, name, scope))


def resolve_model(session: Session, name: str, scope: Scope | None = None) -> ModelRecord:
    """A model by id, or by an alias pointing at it; another team's is reported as missing."""
    record = session.get(ModelRecord, name)
    if _visible(record, scope):
        return record  # type: ignore[return-value]
    alias = find_alias(session, name, scope)
    model = session.get(ModelRecord, alias.model_id) if alias is not None else None
    if not _visible(model, scope):
        raise NotFound(f"No model with id or alias '{name}'.")
    return model  # type: ignore[return-value]


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


# --- the job lease: at most one worker trains a job's final model -----------------------


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


# --- lanes: at most one worker runs each of a job's parallel chains of trials -----------

ACQUIRED, STALE, BUSY, FINISHED = "acquired", "stale", "busy", "finished"
ACTIVE_STATES = (JobState.queued.value, JobState.running.value)


def create_lanes(session: Session, job_id: str, count: int) -> None:
    for lane in range(count):
        session.add(LaneRecord(job_id=job_id, lane=lane, generation=0, done=False, release_requested=False))


def get_lane(session: Session, job_id: str, lane: int) -> LaneRecord | None:
    return session.get(LaneRecord, (job_id, lane))


def list_lanes(session: Session, job_id: str) -> list[LaneRecord]:
    return list(session.scalars(select(LaneRecord).where(LaneRecord.job_id == job_id).order_by(LaneRecord.lane)))


def claim_lane(session: Session, job_id: str, lane: int, generation: int, owner: str, ttl_s: int) -> str:
    """Mark the job running and take the lane's lease for one step.

    ``finished``: the job is over; ``stale``: the message is an old copy (the lane has moved on);
    ``busy``: a live worker runs this step already (a redelivered duplicate); else ``acquired``.
    The job row is written first, which orders this against a concurrent cancel of a queued job.
    """
    now = utcnow()
    started = session.execute(
        update(JobRecord)
        .where(JobRecord.id == job_id, JobRecord.state.in_(ACTIVE_STATES))
        .values(state=JobState.running.value, started_at=func.coalesce(JobRecord.started_at, now))
        .execution_options(synchronize_session=False)
    )
    if not started.rowcount:  # type: ignore[attr-defined]
        return FINISHED
    record = session.get(LaneRecord, (job_id, lane), with_for_update=True)
    if record is None or record.generation != generation:
        return STALE
    if (record.owner not in (None, owner) and record.lease_expires_at is not None
            and record.lease_expires_at > now):
        return BUSY
    record.owner = owner
    record.lease_expires_at = now + timedelta(seconds=ttl_s)
    record.release_requested = False
    return ACQUIRED


def renew_lane(session: Session, job_id: str, lane: int, owner: str, ttl_s: int) -> bool:
    result = session.execute(
        update(LaneRecord)
        .where(LaneRecord.job_id == job_id, LaneRecord.lane == lane, LaneRecord.owner == owner)
        .values(lease_expires_at=utcnow() + timedelta(seconds=ttl_s))
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def set_lane_trial(session: Session, job_id: str, lane: int, trial_id: str | None) -> None:
    session.execute(
        update(LaneRecord)
        .where(LaneRecord.job_id == job_id, LaneRecord.lane == lane)
        .values(trial_id=trial_id)
        .execution_options(synchronize_session=False)
    )


def release_lane(session: Session, job_id: str, lane: int, owner: str, advance: bool, done: bool = False) -> int:
    """Give the lane up. ``advance``: this step is complete, so the next message gets a new generation."""
    record = session.get(LaneRecord, (job_id, lane), with_for_update=True)
    if record is None or record.owner != owner:
        return -1
    record.owner = None
    record.lease_expires_at = None
    record.trial_id = None
    record.release_requested = False
    record.done = record.done or done
    if advance:
        record.generation += 1
    record.sent_at = utcnow()
    return record.generation


def running_elsewhere(session: Session, job_id: str, lane: int) -> set[str]:
    """Trials that other lanes' live workers are running now (not to be handed out again)."""
    query = select(LaneRecord.trial_id).where(
        LaneRecord.job_id == job_id,
        LaneRecord.lane != lane,
        LaneRecord.owner.is_not(None),
        LaneRecord.lease_expires_at > utcnow(),
        LaneRecord.trial_id.is_not(None),
    )
    return {t for t in session.scalars(query) if t}


def all_lanes_done(session: Session, job_id: str) -> bool:
    pending = session.scalar(
        select(func.count()).where(LaneRecord.job_id == job_id, LaneRecord.done.is_(False))
    )
    return not pending


def request_release(session: Session, owner_prefix: str) -> int:
    """A worker is shutting down: its lanes stop at the next epoch boundary and hand their step back."""
    result = session.execute(
        update(LaneRecord)
        .where(LaneRecord.owner.startswith(owner_prefix, autoescape=True))
        .values(release_requested=True)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def lanes_to_revive(session: Session, requeue_after_s: float, revive_idle: bool = True) -> list[tuple[str, int, int]]:
    """Steps whose message is gone: the worker died (lease expired), or, with ``revive_idle``, a
    queued message was lost (a broker restarted without persistence). Each is claimed here
    (compare-and-set on ``sent_at``) so that of several workers' reapers only one re-sends it;
    a duplicate would be dropped anyway.
    """
    now = utcnow()
    idle_since = now - timedelta(seconds=requeue_after_s)
    rows = session.execute(
        select(LaneRecord, JobRecord.lease_owner, JobRecord.lease_expires_at)
        .join(JobRecord, JobRecord.id == LaneRecord.job_id)
        .where(JobRecord.state.in_(ACTIVE_STATES))
    ).all()
    by_job: dict[str, list[Any]] = {}
    for row in rows:
        by_job.setdefault(row[0].job_id, []).append(row)
    revive: list[tuple[str, int, int]] = []
    for job_id, lanes in by_job.items():
        finalizing = all(row[0].done for row in lanes)
        for record, job_owner, job_expires in lanes:
            if finalizing:
                # Every lane is done: the final training must run; revive it through lane 0.
                if record.lane != 0:
                    continue
                dead = job_owner is not None and job_expires is not None and job_expires < now
                if not (dead or (revive_idle and job_owner is None and record.sent_at < idle_since)):
                    continue
                if dead:
                    release_lease(session, job_id, job_owner)
            elif record.done:
                continue
            elif record.owner is not None:
                if record.lease_expires_at is None or record.lease_expires_at >= now:
                    continue
            elif not revive_idle or record.sent_at >= idle_since:
                continue
            claimed = session.execute(
                update(LaneRecord)
                .where(LaneRecord.job_id == job_id, LaneRecord.lane == record.lane,
                       LaneRecord.generation == record.generation, LaneRecord.sent_at == record.sent_at)
                .values(sent_at=now, owner=None, lease_expires_at=None, trial_id=None)
                .execution_options(synchronize_session=False)
            )
            if claimed.rowcount:  # type: ignore[attr-defined]
                if record.trial_id:
                    interrupt_trial(session, job_id, record.trial_id)
                revive.append((job_id, record.lane, record.generation))
    return revive


def unmark_sent(session: Session, job_id: str, lane: int) -> None:
    """The re-send failed: let the next sweep try again."""
    session.execute(
        update(LaneRecord)
        .where(LaneRecord.job_id == job_id, LaneRecord.lane == lane)
        .values(sent_at=datetime(1970, 1, 1, tzinfo=UTC))
        .execution_options(synchronize_session=False)
    )


def lock_oracle(session: Session, job_id: str) -> None:
    """Serialise access to the job's tuner state across workers until this transaction ends.

    A write (not a read lock) so it works the same on PostgreSQL (row lock) and SQLite (the
    database write lock, taken at once instead of failing on a later upgrade).
    """
    session.execute(
        update(JobRecord)
        .where(JobRecord.id == job_id)
        .values(oracle_version=JobRecord.oracle_version + 1)
        .execution_options(synchronize_session=False)
    )


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


def interrupt_trial(session: Session, job_id: str, trial_id: str, counts_as_attempt: bool = True) -> None:
    """The trial's worker let go (or died) before it finished; it waits to be run again.

    A hand-back on shutdown does not count as an attempt: only crashes bring a trial closer
    to being given up.
    """
    trial = session.get(TrialRecord, (job_id, trial_id))
    if trial is None or trial.state != TrialState.running.value:
        return
    trial.state = TrialState.interrupted.value
    if not counts_as_attempt:
        trial.attempts = max((trial.attempts or 1) - 1, 0)


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
    return {str(owner): _aware(expires) for owner, expires in rows if expires is not None}


def trial_durations(session: Session) -> list[float]:
    """Seconds from start to end of every finished trial."""
    rows = session.execute(
        select(TrialRecord.started_at, TrialRecord.finished_at)
        .where(TrialRecord.started_at.is_not(None), TrialRecord.finished_at.is_not(None))
    )
    return [(_aware(end) - _aware(start)).total_seconds() for start, end in rows if start and end]


def _aware(value: datetime) -> datetime:
    """Aggregates may come back without the column type's UTC tagging on some backends."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


# --- API keys -----------------------------------------------------------------------------


def add_key(session: Session, key_id: str, digest: str, team: str, admin: bool, name: str | None) -> ApiKeyRecord:
    record = ApiKeyRecord(id=key_id, digest=digest, team=team, admin=admin, name=name)
    session.add(record)
    session.flush()
    return record


def get_key(session: Session, key_id: str) -> ApiKeyRecord | None:
    return session.get(ApiKeyRecord, key_id)


def list_keys(session: Session, team: str | None = None, revoked: bool = False) -> list[ApiKeyRecord]:
    query = select(ApiKeyRecord).order_by(ApiKeyRecord.team, ApiKeyRecord.created_at)
    if team is not None:
        query = query.where(ApiKeyRecord.team == team)
    if not revoked:
        query = query.where(ApiKeyRecord.revoked_at.is_(None))
    return list(session.scalars(query))


def revoke_key(session: Session, key_id: str) -> ApiKeyRecord:
    record = session.get(ApiKeyRecord, key_id)
    if record is None:
        raise NotFound(f"No API key with id '{key_id}'.")
    if record.revoked_at is None:
        record.revoked_at = utcnow()
    return record


def count_keys(session: Session) -> int:
    return int(session.scalar(select(func.count()).select_from(ApiKeyRecord)) or 0)


def touch_key(session: Session, key_id: str) -> None:
    session.execute(update(ApiKeyRecord).where(ApiKeyRecord.id == key_id).values(last_used_at=utcnow())
                    .execution_options(synchronize_session=False))
