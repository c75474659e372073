"""The worker entry point: ``celery -A tasks.worker worker`` or ``automl worker``."""

from __future__ import annotations

from typing import Any

from celery import signals

from automl.observability import configure_logging
from automl.settings import Settings
from tasks.celery_app import make_celery

settings = Settings()
celery = make_celery(settings)


@signals.setup_logging.connect
def _configure_logging(**_: Any) -> None:
    """Our format (text, or JSON with job, lane and trial ids) instead of Celery's."""
    configure_logging(settings.log_level, settings.log_format)
