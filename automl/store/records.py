"""ORM records: the service's own source of truth for datasets, jobs, trials and models.

Job states are ours (``JobState``), never Celery's. Nothing here imports TensorFlow.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, DateTime, Float, ForeignKey, Integer, String, Text, false
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from automl.access import DEFAULT_TEAM


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite hands back naive ones)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


class JobState(enum.StrEnum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"

    @property
    def finished(self) -> bool:
        return self in (JobState.succeeded, JobState.failed, JobState.cancelled)


class TrialState(enum.StrEnum):
    running = "running"
    completed = "completed"
    failed = "failed"
    interrupted = "interrupted"  # its worker died or let go; it runs again from epoch 0


class DatasetRecord(Base):
    __tablename__ = "datasets"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    team: Mapped[str] = mapped_column(String(64), default=DEFAULT_TEAM, server_default=DEFAULT_TEAM, index=True)
    name: Mapped[str] = mapped_column(String(255))
    kind: Mapped[str] = mapped_column(String(16), default="tabular")
    source_format: Mapped[str] = mapped_column(String(16))
    path: Mapped[str] = mapped_column(Text)
    n_rows: Mapped[int] = mapped_column(Integer)
    n_columns: Mapped[int] = mapped_column(Integer)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    columns: Mapped[list[Any]] = mapped_column(JSON)  # image datasets: the label columns
    images: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)  # classes, sizes, unreadable files
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class JobRecord(Base):
    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    team: Mapped[str] = mapped_column(String(64), default=DEFAULT_TEAM, server_default=DEFAULT_TEAM, index=True)
    dataset_id: Mapped[str] = mapped_column(ForeignKey("datasets.id"), index=True)
    target: Mapped[str] = mapped_column(String(255))
    task: Mapped[str] = mapped_column(String(16))
    requested_task: Mapped[str] = mapped_column(String(16))
    tuner: Mapped[str] = mapped_column(String(16))
    objective: Mapped[str] = mapped_column(String(64))
    objective_direction: Mapped[str] = mapped_column(String(3))
    max_trials: Mapped[int] = mapped_column(Integer)
    max_epochs: Mapped[int] = mapped_column(Integer)
    patience: Mapped[int] = mapped_column(Integer)
    seed: Mapped[int] = mapped_column(Integer)
    classes: Mapped[list[Any] | None] = mapped_column(JSON, nullable=True)
    targets: Mapped[list[Any] | None] = mapped_column(JSON, nullable=True)  # multilabel: the label columns
    search_space: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)  # canonical overrides
    # The job's ``automl.search.options.SearchOptions``, as stored by ``options.stored``.
    options: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True, default=dict)
    time_budget_s: Mapped[int | None] = mapped_column(Integer, nullable=True)
    parallel_trials: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    image_size: Mapped[int | None] = mapped_column(Integer, nullable=True)  # image jobs: side length trained at
    # Set as soon as the search must end (budget spent, cancelled): every lane stops at its
    # next epoch boundary. ``cancel_requested`` also makes the final state ``cancelled``.
    stop_reason: Mapped[str | None] = mapped_column(String(32), nullable=True)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    delete_requested: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())  # once ended
    idempotency_key: Mapped[str | None] = mapped_column(String(255), nullable=True, unique=True)
    request_fingerprint: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # Bumped by every worker that takes the oracle lock: a write that serialises them.
    oracle_version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    state: Mapped[str] = mapped_column(String(16), default=JobState.queued.value, index=True)
    trials_done: Mapped[int] = mapped_column(Integer, default=0)
    best_score: Mapped[float | None] = mapped_column(Float, nullable=True)
    best_trial_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    model_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    # The best model so far: the best trial's own weights while the search runs, then the final model.
    best_model_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)  # final-model trainings started
    # The job lease guards the final training; trials are guarded by their lane's lease.
    lease_owner: Mapped[str | None] = mapped_column(String(128), nullable=True)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)

class TrialRecord(Base):
    __tablename__ = "trials"

    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id"), primary_key=True)
    trial_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    number: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16), default=TrialState.running.value)
    hyperparameters: Mapped[dict[str, Any]] = mapped_column(JSON)
    score: Mapped[float | None] = mapped_column(Float, nullable=True)
    best_epoch: Mapped[int | None] = mapped_column(Integer, nullable=True)
    epochs_done: Mapped[int] = mapped_column(Integer, default=0)
    message: Mapped[str | None] = mapped_column(Text, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")  # starts, retries included
    lane: Mapped[int | None] = mapped_column(Integer, nullable=True)
    worker: Mapped[str | None] = mapped_column(String(128), nullable=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class LaneRecord(Base):
    """One of a job's ``parallel_trials`` chains of steps: each step runs one trial.

    A step's message carries the lane's ``generation``; the step that finishes a trial bumps it
    before queueing the next, so a redelivered or re-sent copy of an old message is dropped.
    ``owner``/``lease_expires_at`` is the lease of the worker running the step, renewed by a
    heartbeat; ``sent_at`` is when the lane's current message was last queued.
    """

    __tablename__ = "job_lanes"

    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    lane: Mapped[int] = mapped_column(Integer, primary_key=True)
    generation: Mapped[int] = mapped_column(Integer, default=0)
    done: Mapped[bool] = mapped_column(Boolean, default=False)
    owner: Mapped[str | None] = mapped_column(String(128), nullable=True)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    trial_id: Mapped[str | None] = mapped_column(String(32), nullable=True)  # the trial it runs now
    release_requested: Mapped[bool] = mapped_column(Boolean, default=False)  # the worker is shutting down
    sent_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class EventRecord(Base):
    """A job's progress as a log (trial started, epoch ended, ...): what ``/events`` streams."""

    __tablename__ = "job_events"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
                                    autoincrement=True)
    job_id: Mapped[str] = mapped_column(String(32), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class EpochRecord(Base):
    """One epoch of one trial: written as it ends, so histories are readable mid-trial."""

    __tablename__ = "trial_epochs"

    job_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    trial_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    execution: Mapped[int] = mapped_column(Integer, primary_key=True)  # 0.. executions_per_trial-1
    epoch: Mapped[int] = mapped_column(Integer, primary_key=True)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ModelState(enum.StrEnum):
    training = "training"
    ready = "ready"
    failed = "failed"


class ModelRecord(Base):
    """A job's final model: ``training`` while it is fitted, then ``ready`` (servable)."""

    __tablename__ = "models"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    team: Mapped[str] = mapped_column(String(64), default=DEFAULT_TEAM, server_default=DEFAULT_TEAM, index=True)
    state: Mapped[str] = mapped_column(String(16), default=ModelState.training.value)
    kind: Mapped[str] = mapped_column(String(16), default="tabular", server_default="tabular")
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id"), index=True)
    dataset_id: Mapped[str] = mapped_column(ForeignKey("datasets.id"))
    task: Mapped[str] = mapped_column(String(16))
    target: Mapped[str] = mapped_column(String(255))
    classes: Mapped[list[Any] | None] = mapped_column(JSON, nullable=True)
    targets: Mapped[list[Any] | None] = mapped_column(JSON, nullable=True)
    input_schema: Mapped[list[Any]] = mapped_column(JSON, default=list)
    hyperparameters: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    validation_metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    test_metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    history: Mapped[list[Any]] = mapped_column(JSON, default=list)
    split_sizes: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    confusion_matrix: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    refit: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    refit_rows: Mapped[int | None] = mapped_column(Integer, nullable=True)  # rows the served model was retrained on
    # The ensemble's members (trial, weight, epochs, refit, hyperparameters); one for a single model.
    members: Mapped[list[Any] | None] = mapped_column(JSON, nullable=True)
    ensemble: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)  # how the members were chosen
    supports_uncertainty: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # A running search's best trial as it is (``jobs.best_model_id``), replaced as better trials arrive.
    interim: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    trial_id: Mapped[str | None] = mapped_column(String(32), nullable=True)  # an interim model's trial
    # What the job found about the model besides its score (``automl.insight``).
    importance: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    calibration: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    profile: Mapped[list[Any] | None] = mapped_column(JSON, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    path: Mapped[str | None] = mapped_column(Text, nullable=True)
    # Deployed models are loaded and warmed by every serving process at start (readiness waits).
    deployed: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false(), index=True)
    deployed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class DriftCountsRecord(Base):
    """Counts of a model's prediction inputs over its training profile's buckets in one hour, summed over
    every serving process's flushes (``automl.insight.drift``): the rows themselves are never kept."""

    __tablename__ = "drift_counts"

    model_id: Mapped[str] = mapped_column(ForeignKey("models.id"), primary_key=True)
    hour: Mapped[datetime] = mapped_column(UTCDateTime(), primary_key=True)  # the hour's start, UTC
    rows: Mapped[int] = mapped_column(Integer, default=0)
    counts: Mapped[dict[str, Any]] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


class AliasRecord(Base):
    """A stable name (``churn-prod``) pointing at a model; clients keep the URL when it moves.
    Each team has its own names."""

    __tablename__ = "aliases"

    team: Mapped[str] = mapped_column(String(64), primary_key=True, default=DEFAULT_TEAM)
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    model_id: Mapped[str] = mapped_column(ForeignKey("models.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ApiKeyRecord(Base):
    """An API key: only its SHA-256 digest is stored (``automl.access``)."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(8), primary_key=True)
    digest: Mapped[str] = mapped_column(String(64))
    team: Mapped[str] = mapped_column(String(64), index=True)
    role: Mapped[str] = mapped_column(String(16), default="write", server_default="write")  # access.Role
    name: Mapped[str | None] = mapped_column(String(255), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
