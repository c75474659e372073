"""Builds the Celery application from ``Settings`` (no work at import time)."""

from __future__ import annotations

import fcntl
import sqlite3
from pathlib import Path

from celery import Celery
from kombu.transport import sqlalchemy as kombu_sqlalchemy

from automl.settings import Settings

ADVANCE_JOB = "automl.advance_job"
QUEUE = "automl"
# A task is one trial (or the final training): it must end well before the broker would
# deliver its message a second time.
SOFT_LIMIT_MARGIN_S = 600
HARD_LIMIT_MARGIN_S = 300
# The embedded (SQLite) broker is polled; kombu's default of once a second left each trial step
# waiting half a second on average for its own next message. A quarter second costs an idle
# worker about 1 % of a core (0.4 % at 1 s, 2.7 % at 0.1 s). Redis pushes instead.
EMBEDDED_POLL_S = 0.25
# How long a prefork pool process may take to start before Celery kills it (its default, 4 s, is shorter
# than loading TensorFlow, which ``tasks.worker`` does as each pool process starts: 4-7 s on 2 cores).
POOL_PROCESS_START_S = 120.0
POOL_READY = "pool process ready to train"  # what ``tasks.worker`` logs once a pool process has TensorFlow


def make_celery(settings: Settings) -> Celery:
    app = Celery("automl", broker=settings.celery_broker_url, include=["tasks.search", "tasks.supervision"])
    transport_options: dict[str, object] = {}
    embedded_broker: Path | None = None
    if settings.celery_broker_url.startswith(("redis://", "rediss://")):
        transport_options = {"visibility_timeout": settings.broker_visibility_timeout_s}
    elif settings.celery_broker_url.startswith("sqla+sqlite"):
        # kombu's SQLAlchemy transport passes these to create_engine; SQLite is shared with
        # the API process, so wait for locks instead of failing.
        transport_options = {"connect_args": {"timeout": 30}}
        # Not a transport option here: this transport hands every option to create_engine.
        kombu_sqlalchemy.Transport.polling_interval = EMBEDDED_POLL_S
        embedded_broker = Path(settings.celery_broker_url.removeprefix("sqla+sqlite:///"))
    visibility = settings.broker_visibility_timeout_s
    app.conf.update(
        task_default_queue=QUEUE,
        task_ignore_result=True,
        result_backend=None,
        # Acknowledge after the work, and give the message back if the pool process dies.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_soft_time_limit=max(visibility - SOFT_LIMIT_MARGIN_S, visibility // 2),
        task_time_limit=max(visibility - HARD_LIMIT_MARGIN_S, visibility * 3 // 4),
        worker_max_tasks_per_child=settings.worker_max_tasks_per_child or None,
        worker_max_memory_per_child=settings.worker_max_memory_per_child_mb * 1024 or None,  # KiB
        worker_proc_alive_timeout=POOL_PROCESS_START_S,
        worker_hijack_root_logger=False,
        worker_cancel_long_running_tasks_on_connection_loss=False,
        broker_transport_options=transport_options,
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,  # a broker restart must not stop the worker
        task_serializer="json",
        accept_content=["json"],
        timezone="UTC",
    )
    app.conf.automl_settings = settings
    if embedded_broker is not None:
        prepare_embedded_broker(app, embedded_broker)
    return app


def prepare_embedded_broker(app: Celery, path: Path) -> None:
    """Make the embedded broker's file ready before this process uses it: write-ahead-log mode, and
    kombu's tables and the task queue's row created.

    kombu's SQLAlchemy transport creates its tables and a queue's row on first use by reading, then
    inserting; on a new file the API (queueing a job) and the worker (declaring its queue) did both at
    once, one insert failed on the queue name's uniqueness, and the job was refused as if the broker
    were down (a 503 on the first job after ``automl serve --with-worker``). Every process does it here,
    one at a time under a lock on a file beside the broker's; later ones find everything made.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        use_wal(path)
        with app.connection_for_write() as connection:
            channel = connection.default_channel
            try:
                channel.queue_declare(queue=QUEUE)
            finally:
                _close_sql_session(channel)


def use_wal(path: Path) -> None:
    """Put the embedded broker's SQLite file in write-ahead-log mode (a setting the file keeps).

    In SQLite's default rollback-journal mode one open read transaction blocks every writer: a
    worker publishing the next step waited 60 s on "database is locked" and then lost the
    message to the reaper. In WAL mode readers never block the writer."""
    connection = sqlite3.connect(path, timeout=30)
    try:
        connection.execute("PRAGMA journal_mode=WAL")
    finally:
        connection.close()


def send_advance(app: Celery, job_id: str, lane: int = 0, generation: int = 0, countdown: float | None = None) -> None:
    """Queue a lane's next step (by task name: callers need not import the task)."""
    app.send_task(ADVANCE_JOB, args=[job_id, lane, generation], queue=QUEUE, countdown=countdown,
                  retry=True, retry_policy={"max_retries": 3, "interval_start": 0.2, "interval_step": 0.5,
                                            "interval_max": 1.0})


def queue_depth(app: Celery, timeout_s: float = 2.0) -> int | None:
    """Messages waiting in the task queue, or None when the broker does not answer.

    kombu's Redis transport deletes a queue's list when it empties, and a passive declare of
    it then answers 404 NOT_FOUND, as RabbitMQ does for a queue never declared: both mean no
    message waits.
    """
    from kombu.exceptions import ChannelError

    try:
        with app.connection_for_read() as connection:
            connection.ensure_connection(max_retries=1, timeout=timeout_s)
            channel = connection.default_channel
            try:
                declared = channel.queue_declare(queue=QUEUE, passive=True)
            except ChannelError as exc:
                if "NOT_FOUND" in str(exc) or getattr(exc, "code", None) in (404, "404"):
                    return 0
                raise
            finally:
                _close_sql_session(channel)
            return int(declared.message_count)
    except Exception:
        return None


def _close_sql_session(channel: object) -> None:
    """kombu's SQLAlchemy transport (the embedded broker) opens a session per channel and never
    closes it: each depth check left one pooled connection checked out until a garbage collection,
    and an idle worker's reaper exhausted the pool (5 + 10) in minutes, killing the worker."""
    session = getattr(channel, "_session", None)
    if session is not None:
        session.close()


def broker_reachable(app: Celery, timeout_s: float = 2.0) -> bool:
    """Whether the broker accepts a connection now (one try, bounded by ``timeout_s``)."""
    try:
        with app.connection_for_write() as connection:
            connection.ensure_connection(max_retries=1, timeout=timeout_s)
            _ = connection.default_channel  # opening a channel talks to the server
            return True
    except Exception:
        return False
