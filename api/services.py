"""Per-app service objects (settings, store, Celery, model cache and resolver, drift monitor), built by the
factory."""

from __future__ import annotations

from dataclasses import dataclass

from celery import Celery
from flask import current_app

from api.keys import KeyRing, RateLimits, Slots
from automl.serving.cache import ModelCache
from automl.serving.drift import DriftMonitor
from automl.serving.warmup import Warmup
from automl.settings import Settings
from automl.store import Store
from automl.usecases.models import ModelResolver


@dataclass
class Services:
    settings: Settings
    store: Store
    celery: Celery
    models: ModelCache
    warmup: Warmup
    keys: KeyRing
    limits: RateLimits
    slots: Slots  # per-key limits on streams, downloads and batch scoring held open at once
    resolver: ModelResolver  # model id or alias -> the caller's loaded model
    drift: DriftMonitor  # counts served inputs for drift reports


def services() -> Services:
    found: Services = current_app.extensions["automl"]
    return found
