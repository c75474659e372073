"""The worker entry point: ``celery -A tasks.worker worker`` or ``automl worker``."""

from __future__ import annotations

from automl.settings import Settings
from tasks.celery_app import make_celery

celery = make_celery(Settings())
