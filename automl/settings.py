"""All service settings in one typed place, read from ``AUTOML_*`` environment variables.

Defaults are the embedded mode: SQLite for metadata, a local folder for artifacts and a
SQLite-backed Celery broker, so the service runs on one machine with no servers at all.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

if TYPE_CHECKING:
    from automl.datasets.limits import UploadLimits


class Settings(BaseSettings):
    """Service configuration. Every field maps to ``AUTOML_<FIELD>`` (see the README table)."""

    model_config = SettingsConfigDict(env_prefix="AUTOML_", extra="ignore", frozen=True)

    data_dir: Path = Field(default=Path("var"), description="Artifacts, datasets and SQLite files.")
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; default sqlite:///<data_dir>/automl.db."
    )
    broker_url: str | None = Field(
        default=None, description="Celery broker; default kombu's SQLAlchemy transport on SQLite."
    )
    broker_visibility_timeout_s: int = Field(default=7200, ge=60)
    max_upload_bytes: int = Field(default=512 * 1024 * 1024, ge=1024)
    max_archive_members: int = Field(default=100_000, ge=1, description="Files a dataset zip may hold.")
    max_archive_bytes: int = Field(
        default=8 * 1024**3, ge=1024, description="Bytes a dataset zip may inflate to, counted as they are read."
    )
    max_compression_ratio: float = Field(
        default=200, ge=1, description="Largest inflated/compressed ratio of a zip member (zip bombs)."
    )
    max_image_pixels: int = Field(
        default=40_000_000, ge=1, description="Largest width x height of an uploaded image (decompression bombs)."
    )
    max_columns: int = Field(default=2000, ge=2, description="Columns a CSV or Parquet upload may have.")
    max_field_chars: int = Field(
        default=100_000, ge=1, description="Characters one CSV/Parquet cell may hold (longer cells: 422)."
    )
    max_rows: int = Field(default=20_000_000, ge=1, description="Rows a CSV or Parquet upload may have.")
    max_table_bytes: int = Field(
        default=4 * 1024**3, ge=1024,
        description="Largest uncompressed size of a Parquet upload, read from its footer before any data "
                    "(a small, highly compressed file can hold far more than it weighs).",
    )
    max_json_bytes: int = Field(
        default=16 * 1024 * 1024, ge=1024,
        description="Largest JSON request body (predictions, job requests); files go as multipart uploads, "
                    "up to AUTOML_MAX_UPLOAD_BYTES.",
    )
    rate_limit_upload: str = Field(
        default="30/minute", description="Dataset uploads per API key (limits syntax, e.g. '10/minute;100/day'; "
                                         "empty: unlimited)."
    )
    rate_limit_jobs: str = Field(default="60/minute", description="Job submissions per API key.")
    rate_limit_predict: str = Field(
        default="1000/second", description="Prediction requests (predict, predict_proba, TF Serving) per API key."
    )
    rate_limit_storage_url: str | None = Field(
        default=None,
        description="Where request counts live: redis://... shares them between processes and machines; default "
                    "the broker when it is Redis, else memory:// (per serving process).",
    )
    quota_deployed_models: int = Field(
        default=20, ge=0, description="Deployed models per team (each is loaded by every serving process); 0: no "
                                      "limit.")
    quota_active_jobs: int = Field(default=20, ge=0, description="Queued or running jobs per team; 0: no limit.")
    quota_parallel_trials: int = Field(
        default=16, ge=0, description="Trials a team's active jobs may run at once (their parallel_trials summed); "
                                      "0: no limit.")
    quota_stored_bytes: int = Field(
        default=100 * 1024**3, ge=0,
        description="Bytes a team's datasets, job folders and models may hold on disk, checked before an upload's "
                    "body is read and before a job starts; 0: no limit.")
    rate_limit_fail_open: bool = Field(
        default=True,
        description="When the rate-limit store is unreachable: serve requests uncounted (true; logged and counted in "
                    "automl_rate_limit_store_failures_total) or refuse them with 503 (false).",
    )
    retention_days_job_files: float = Field(
        default=0, ge=0, description="Remove a finished job's folder (tuner state, checkpoints, TensorBoard logs) "
                                     "this many days after it ended; its records and histories stay. 0: keep.")
    retention_days_models: float = Field(
        default=0, ge=0, description="Delete models that are not deployed, aliased or training this many days "
                                     "after they were created. 0: keep.")
    key_max_streams: int = Field(
        default=4, ge=0, description="Event streams one API key may hold open at once, per serving process (429 "
                                     "past it); 0: no limit.")
    key_max_downloads: int = Field(
        default=2, ge=0, description="Model and TensorBoard downloads one API key may run at once, per serving "
                                     "process; 0: no limit.")
    key_max_batch_scoring: int = Field(
        default=2, ge=0, description="Batch scorings (a CSV/Parquet file to predict) one API key may run at once, "
                                     "per serving process; 0: no limit.")
    batch_max_rows: int = Field(
        default=10_000_000, ge=1, description="Rows one batch-scoring file may hold (413 past it: split the file).")
    batch_max_s: float = Field(
        default=900, gt=0, description="Seconds one batch scoring may take (413 past it: split the file).")
    deployed_memory_mb: float = Field(
        default=2048, ge=0,
        description="Memory budget of each serving process for pinned (deployed) models, estimated from their "
                    "files; deployed models past it, in deployment order, are loaded on first use instead. 0: no "
                    "limit.")
    key_cache_s: float = Field(
        default=5, ge=0, description="How long a serving process trusts a key it has checked (a revoked key "
                                     "stops working within this long)."
    )
    backbone_weights_dir: Path | None = Field(
        default=None,
        description="Folder of Keras Applications weight files (no-top) for transfer learning; default "
                    "<data_dir>/backbones. Nothing is ever downloaded.",
    )
    default_max_trials: int = Field(default=10, ge=1)
    default_max_epochs: int | None = Field(
        default=None, ge=1,
        description="Epochs per trial when a job names none; unset: chosen from the dataset's rows (20-200, "
                    "about 4,000 optimisation steps).",
    )
    max_trials_limit: int = Field(default=500, ge=1)
    max_epochs_limit: int = Field(default=1000, ge=1)
    max_time_budget_s: int = Field(default=7 * 24 * 3600, ge=1, description="Largest time_budget_s a job may ask.")
    job_lease_s: int = Field(
        default=60, ge=2,
        description="A worker's claim on a running trial, renewed every quarter of it by a heartbeat; a "
                    "killed worker's trial moves to another worker this long after its last beat.",
    )
    reaper_interval_s: float = Field(
        default=10, gt=0, description="How often each worker looks for trials of dead workers and lost messages."
    )
    requeue_after_s: float = Field(
        default=120, gt=0,
        description="A queued step whose message has not been picked up for this long is queued again "
                    "(a broker restarted without persistence loses messages); duplicates are dropped.",
    )
    max_trial_attempts: int = Field(
        default=2, ge=1, description="Starts of a trial whose worker keeps dying before it is recorded as failed."
    )
    max_consecutive_failed_trials: int = Field(
        default=3, ge=1, description="Trials in a row that fail before the job fails."
    )
    max_parallel_trials: int = Field(default=8, ge=1, description="Largest parallel_trials a job may ask.")
    events_poll_s: float = Field(default=0.5, gt=0, description="How often an event stream looks for news.")
    events_stream_max_s: float = Field(
        default=300, gt=0, description="An event stream ends after this long; clients resume with Last-Event-ID."
    )
    model_cache_size: int = Field(
        default=8, ge=1, description="Models each serving process keeps loaded besides the deployed ones."
    )
    serving_threads: int = Field(
        default=1, ge=0,
        description="TensorFlow threads (intra- and inter-op) of each serving process. 1: each request's "
                    "small graph runs on its request thread, with no hand-offs between pools, which served "
                    "one-row predictions with 14 % less CPU per request here; the API server's processes and "
                    "threads give the parallelism. 0: TensorFlow's default (one per core), for processes "
                    "that mostly score large files.",
    )
    serving_xla: bool = Field(
        default=True,
        description="Run served models through XLA (measured here: about half the CPU per one-row call, and "
                    "about 140 MB more in each serving process). false: the plain TensorFlow function.",
    )
    deployed_refresh_s: float = Field(
        default=30, ge=0,
        description="How often each serving process picks up models deployed or undeployed through another "
                    "process (0: only at start).",
    )
    stale_files_s: float = Field(
        default=3600, gt=0,
        description="Staging folders and temporary files older than this are what a crash left behind: swept "
                    "when an API process starts and by the workers' reaper.",
    )
    drift_flush_s: float = Field(
        default=10, gt=0,
        description="How often each serving process adds what it counted of prediction inputs to the store "
                    "(drift reports see a process's counts this much later).",
    )
    drift_retention_days: float = Field(
        default=30, gt=0, description="Counts of prediction inputs older than this are dropped.",
    )
    worker_concurrency: int = Field(default=1, ge=1)
    worker_max_tasks_per_child: int = Field(
        default=0, ge=0,
        description="Replace a pool process after this many trials (0: only when it passes its memory limit).",
    )
    worker_max_memory_per_child_mb: int = Field(
        default=2048, ge=0,
        description="Replace a pool process after a trial once its resident memory passes this (Keras Tuner and "
                    "TensorFlow grow across trials); a process reused for the next trial skips the TensorFlow "
                    "import (about 3 s). 0: no limit.",
    )
    training_threads: int | None = Field(
        default=None, ge=1,
        description="TensorFlow threads per training process; unset: the machine's cores divided by "
                    "AUTOML_WORKER_CONCURRENCY, so parallel trials do not fight over cores.",
    )
    log_level: str = "INFO"
    log_format: Literal["text", "json"] = Field(
        default="text", description="json: one JSON object per line, with request, job and trial ids."
    )

    @property
    def threads_per_trial(self) -> int:
        import os

        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        return self.training_threads or max(1, cores // self.worker_concurrency)

    @field_validator("rate_limit_upload", "rate_limit_jobs", "rate_limit_predict")
    @classmethod
    def _parse_limits(cls, value: str) -> str:
        from limits import parse_many

        if value.strip():
            try:
                parse_many(value)
            except ValueError as exc:
                raise ValueError(f"'{value}' is not a rate limit like '30/minute' or '10/second;1000/day'") from exc
        return value.strip()

    @property
    def rate_limit_storage(self) -> str:
        if self.rate_limit_storage_url:
            return self.rate_limit_storage_url
        broker = self.broker_url or ""
        return broker if broker.startswith(("redis://", "rediss://")) else "memory://"

    @property
    def admin_key_file(self) -> Path:
        """Where the embedded mode keeps the admin key it created on first start (mode 0600)."""
        return self.resolved_data_dir / "admin-key"

    @cached_property
    def resolved_data_dir(self) -> Path:
        return self.data_dir.expanduser().resolve()

    @property
    def sqlalchemy_url(self) -> str:
        if self.database_url:
            url = self.database_url
            # Plain postgresql:// means psycopg2 to SQLAlchemy; we ship psycopg 3.
            if url.startswith("postgresql://") or url.startswith("postgres://"):
                url = "postgresql+psycopg://" + url.split("://", 1)[1]
            return url
        return f"sqlite:///{self.resolved_data_dir / 'automl.db'}"

    @property
    def celery_broker_url(self) -> str:
        return self.broker_url or f"sqla+sqlite:///{self.resolved_data_dir / 'broker.db'}"

    @property
    def datasets_dir(self) -> Path:
        return self.resolved_data_dir / "datasets"

    @property
    def jobs_dir(self) -> Path:
        return self.resolved_data_dir / "jobs"

    @property
    def models_dir(self) -> Path:
        return self.resolved_data_dir / "models"

    @property
    def backbones_dir(self) -> Path:
        return (self.backbone_weights_dir or self.resolved_data_dir / "backbones").expanduser().resolve()

    @property
    def upload_limits(self) -> UploadLimits:
        from automl.datasets.limits import UploadLimits  # pandas: only where uploads are read

        return UploadLimits(max_members=self.max_archive_members, max_total_bytes=self.max_archive_bytes,
                             max_ratio=self.max_compression_ratio, max_pixels=self.max_image_pixels,
                             max_columns=self.max_columns, max_field_chars=self.max_field_chars,
                             max_rows=self.max_rows, max_table_bytes=self.max_table_bytes)

    @property
    def tmp_dir(self) -> Path:
        return self.resolved_data_dir / "tmp"

    def ensure_dirs(self) -> None:
        for path in (self.datasets_dir, self.jobs_dir, self.models_dir, self.tmp_dir):
            path.mkdir(parents=True, exist_ok=True)
