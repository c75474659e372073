"""Builds the Celery application from ``Settings`` (no work at import time)."""

from __future__ import annotations

from celery import Celery

from automl.settings import Settings

ADVANCE_JOB = "automl.advance_job"
QUEUE = "automl"


def make_celery(settings: Settings) -> Celery:
    app = Celery("automl", broker=settings.celery_broker_url, include=["tasks.search"])
    transport_options: dict[str, object] = {}
    if settings.celery_broker_url.startswith(("redis://", "rediss://")):
        transport_options = {"visibility_timeout": settings.broker_visibility_timeout_s}
    elif settings.celery_broker_url.startswith("sqla+sqlite"):
        # kombu's SQLAlchemy transport passes these to create_engine; SQLite is shared with
        # the API process, so wait for locks instead of failing.
        transport_options = {"connect_args": {"timeout": 30}}
    app.conf.update(
        task_default_queue=QUEUE,
        task_ignore_result=True,
        result_backend=None,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        worker_max_tasks_per_child=settings.worker_max_tasks_per_child or None,
        worker_hijack_root_logger=False,
        broker_transport_options=transport_options,
        broker_connection_retry_on_startup=True,
        task_serializer="json",
        accept_content=["json"],
        timezone="UTC",
    )
    app.conf.automl_settings = settings
    return app


def send_advance(app: Celery, job_id: str) -> None:
    """Queue the next step of a job (by task name: callers need not import the task)."""
    app.send_task(ADVANCE_JOB, args=[job_id], queue=QUEUE)
