"""The worker entry point: ``celery -A tasks.worker worker`` or ``automl worker``."""

from __future__ import annotations

import logging
import time
from typing import Any

from celery import signals

from automl.observability import configure_logging
from automl.settings import Settings
from tasks.celery_app import POOL_READY, make_celery
from tasks.search import training_runtime

log = logging.getLogger(__name__)

settings = Settings()
celery = make_celery(settings)


@signals.setup_logging.connect
def _configure_logging(**_: Any) -> None:
    """Our format (text, or JSON with job, lane and trial ids) instead of Celery's."""
    configure_logging(settings.log_level, settings.log_format)


@signals.worker_process_init.connect
def _load_training_runtime(**_: Any) -> None:
    """Each prefork pool process loads TensorFlow, Keras and Keras Tuner as it starts, sized to its share
    of the cores, rather than when its first trial arrives: a job's time budget runs from the moment its
    first step is claimed, so a fresh worker's first job (and a job whose pool process was replaced
    after passing its memory limit) lost the import, 4-7 s on two cores, from its trials.

    Celery sends this signal in each prefork pool process after the fork (the worker's parent never
    imports TensorFlow: DESIGN.md, TensorFlow and fork do not mix), and once in a ``--pool solo`` worker,
    which never forks. Celery waits ``POOL_PROCESS_START_S`` for a pool process to start
    (``tasks.celery_app``). A failure here is logged and left to the first task, which imports again and
    fails the job with the reason."""
    started = time.monotonic()
    try:
        training_runtime(settings)
        from automl.search.runner import freeze_what_lives_on  # Keras, Keras Tuner and the hypermodels

        freeze_what_lives_on()  # what the first trial step would do: the imports out of the collector's walks
    except Exception:
        log.exception("could not load TensorFlow as this pool process started; its first task loads it")
        return
    log.info("%s (TensorFlow, Keras and Keras Tuner loaded in %.1f s)", POOL_READY, time.monotonic() - started)
