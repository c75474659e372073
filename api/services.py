"""Per-app service objects (settings, store, Celery, model cache), built by the factory."""

from __future__ import annotations

from dataclasses import dataclass

from celery import Celery
from flask import current_app

from automl.serving.cache import ModelCache
from automl.serving.warmup import Warmup
from automl.settings import Settings
from automl.store import Store


@dataclass
class Services:
    settings: Settings
    store: Store
    celery: Celery
    models: ModelCache
    warmup: Warmup


def services() -> Services:
    found: Services = current_app.extensions["automl"]
    return found
