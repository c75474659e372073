"""Storage calls that coordinate workers: the job lease (one worker trains the final model), lanes
(one worker per parallel chain of trials, with generations), turns between teams, reviving lost
lanes, the oracle lock.

Functions take a ``Session`` (the caller owns the transaction) and return records or plain
values; no HTTP, Celery or TensorFlow here.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from automl.store.common import ACTIVE_STATES
from automl.store.records import (
    JobRecord,
    JobState,
    LaneRecord,
    TrialRecord,
    utcnow,
)
from automl.store.searches import WORKER_LOST, interrupt_trial

# What claim_lane answers.
ACQUIRED, STALE, BUSY, FINISHED = "acquired", "stale", "busy", "finished"


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


def claimable(session: Session, job_id: str, lane: int, generation: int) -> bool:
    """Whether ``claim_lane`` could take this step now (not an old copy, not running elsewhere)."""
    record = session.get(LaneRecord, (job_id, lane))
    if record is None or record.generation != generation:
        return False
    return record.owner is None or record.lease_expires_at is None or record.lease_expires_at <= utcnow()


def should_yield(session: Session, team: str, fresh_s: float) -> bool:
    """Whether a step of ``team`` should go back to the end of the queue to let another team take its turn.

    Teams take turns by the time their latest trial started (over their active jobs): a step yields
    when another team is waiting for a worker and was served less recently, or never. A team is
    waiting when it has a lane whose message was sent within ``fresh_s`` (a lost message never
    blocks anyone) and no step running now: a team being served is not owed a turn, and a lane that
    only waits for its job's other lanes (an idle Hyperband lane) must not keep a worker idle. The
    team served longest ago never yields, so some step always runs; with one team, nothing changes.
    """
    now = utcnow()
    live = or_(LaneRecord.owner.is_(None), LaneRecord.lease_expires_at < now)
    active_lanes = (select(JobRecord.team).join(LaneRecord, LaneRecord.job_id == JobRecord.id)
                    .where(JobRecord.state.in_(ACTIVE_STATES), JobRecord.team != team, LaneRecord.done.is_(False)))
    waiting = set(session.scalars(
        active_lanes.where(live, LaneRecord.sent_at >= now - timedelta(seconds=fresh_s)).distinct()))
    if not waiting:
        return False
    waiting -= set(session.scalars(active_lanes.where(~live).distinct()))  # served right now
    if not waiting:
        return False
    served = dict(session.execute(
        select(JobRecord.team, func.max(TrialRecord.started_at))
        .join(TrialRecord, TrialRecord.job_id == JobRecord.id)
        .where(JobRecord.state.in_(ACTIVE_STATES), JobRecord.team.in_([team, *waiting]))
        .group_by(JobRecord.team)).all())
    mine = served.get(team)
    if mine is None:
        return False  # never served: nobody is owed a turn before it
    return any(served.get(other) is None or served[other] < mine for other in waiting)


def yield_turn(session: Session, job_id: str, lane: int) -> None:
    """The lane's message is sent again (to the end of the queue): the reaper must not count it lost."""
    session.execute(update(LaneRecord).where(LaneRecord.job_id == job_id, LaneRecord.lane == lane)
                    .values(sent_at=utcnow()).execution_options(synchronize_session=False))


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
                    interrupt_trial(session, job_id, record.trial_id, WORKER_LOST)
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
