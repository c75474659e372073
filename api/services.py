"""Per-app service objects (settings, store, Celery, model cache), built by the factory."""

from __future__ import annotations

from dataclasses import dataclass, field

from celery import Celery
from flask import current_app

from api.keys import KeyRing, RateLimits
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
    keys: KeyRing
    limits: RateLimits
    # model id -> owning team, for the loaded-model fast path (a model's team never changes)
    model_owners: dict[str, str] = field(default_factory=dict)


def services() -> Services:
    found: Services = current_app.extensions["automl"]
    return found
