"""The one task of a search: advance a job by one trial, or finish it with its model.

Each message does a bounded piece of work and queues the next, so no task runs anywhere
near the broker's visibility timeout, and any worker can pick a job up where it stands.
A lease in the job record keeps two deliveries of the same step from running together.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from datetime import UTC, datetime
from functools import cache

from celery import shared_task

from automl.errors import AutomlError
from automl.jobs import search_spec
from automl.search.budget import EXHAUSTED, search_stop_reason
from automl.search.spec import SearchSpec
from automl.settings import Settings
from automl.store import Store, repository
from automl.store.records import JobState, ModelRecord, ModelState
from tasks.celery_app import ADVANCE_JOB, send_advance
from tasks.reporting import StoreReporter

log = logging.getLogger(__name__)


@cache
def _store(url: str) -> Store:
    return Store(url)


def _seconds_until(moment: datetime | None, ceiling: int) -> float:
    if moment is None:
        return 5.0
    remaining = (moment - datetime.now(UTC)).total_seconds()
    return float(min(max(remaining + 1.0, 5.0), ceiling))


def _owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@shared_task(name=ADVANCE_JOB, bind=True)
def advance_job(self, job_id: str) -> str:  # type: ignore[no-untyped-def]
    settings: Settings = self.app.conf.automl_settings
    store = _store(settings.sqlalchemy_url)
    owner = _owner()
    with store.session() as session:
        try:
            job = repository.get_job(session, job_id)
        except AutomlError:
            log.warning("job %s does not exist; dropping the message", job_id)
            return "missing"
        if JobState(job.state).finished:
            return job.state
        if not repository.acquire_lease(session, job_id, owner, settings.job_lease_s):
            # Another delivery holds the job. If its worker died (OOM, SIGKILL), the lease
            # expires and this message must carry the job on, so look again then.
            wait = _seconds_until(job.lease_expires_at, settings.job_lease_s)
            log.info("job %s is leased by %s; checking again in %.0fs", job_id, job.lease_owner, wait)
            raise self.retry(countdown=wait, max_retries=None)
        repository.mark_running(session, job_id)
        session.flush()
        spec = search_spec(job, repository.get_dataset(session, job.dataset_id), settings)
        stop_reason = search_stop_reason(spec.budget, job.best_score, job.trials_done, job.max_trials)

    try:
        if stop_reason is None:
            outcome, stop_reason = _run_trial(store, spec, job_id, owner, settings)
            if outcome == "lease_lost":
                return outcome
            if outcome == "next_trial":
                send_advance(self.app, job_id)
                return outcome
        _finalize(store, spec, job_id, settings, stop_reason)
        return JobState.succeeded.value
    except AutomlError as exc:
        log.warning("job %s failed: %s", job_id, exc.message)
        with store.session() as session:
            repository.finish_job(session, job_id, JobState.failed, error=exc.message)
        return JobState.failed.value
    except Exception as exc:
        log.exception("job %s failed unexpectedly", job_id)
        with store.session() as session:
            repository.finish_job(
                session, job_id, JobState.failed,
                error=f"Internal error while training ({type(exc).__name__}: {exc}). The worker log has details.",
            )
        return JobState.failed.value


def _run_trial(store: Store, spec: SearchSpec, job_id: str, owner: str, settings: Settings) -> tuple[str, str | None]:
    """Run one trial; say what comes next (``next_trial``, ``finalize``, ``lease_lost``) and why it ends."""
    from automl.search.runner import run_one_trial

    reporter = StoreReporter(store, job_id, owner, settings.job_lease_s)
    result = run_one_trial(spec, reporter)
    with store.session() as session:
        repository.refresh_job_progress(session, job_id)
        job = repository.get_job(session, job_id)
        if reporter.lease_lost:
            log.warning("job %s: lease lost mid-trial; the new holder continues", job_id)
            return "lease_lost", None
        reason = search_stop_reason(spec.budget, job.best_score, job.trials_done, job.max_trials)
        if reason is None and result.exhausted:
            reason = EXHAUSTED
        if reason is not None:
            return "finalize", reason
        repository.release_lease(session, job_id, owner)
    return "next_trial", None


def _finalize(store: Store, spec: SearchSpec, job_id: str, settings: Settings, stop_reason: str | None) -> None:
    """Take the best trial's model (or refit it), score it on the test split, register it as ready."""
    from automl.registry import save_model
    from automl.search.runner import train_final_model

    with store.session() as session:
        job = repository.get_job(session, job_id)
        model = session.get(ModelRecord, job.model_id) if job.model_id else None
        if model is None:
            model = ModelRecord(id=uuid.uuid4().hex, job_id=job_id, dataset_id=job.dataset_id,
                                task=spec.task, target=job.target, classes=spec.classes, targets=job.targets)
            session.add(model)
            job.model_id = model.id
        model.state = ModelState.training.value
        model_id = model.id
        job.stop_reason = stop_reason
    try:
        trained = train_final_model(spec)
        metadata = {
            "model_id": model_id,
            "job_id": job_id,
            "task": spec.task,
            "target": spec.target,
            "targets": spec.targets,
            "classes": spec.classes,
            "features": trained.features,
            "input_schema": trained.input_schema,
            "hyperparameters": trained.hyperparameters,
            "validation_metrics": trained.validation_metrics,
            "test_metrics": trained.test_metrics,
            "confusion_matrix": trained.confusion_matrix,
            "refit": spec.refit,
            "supports_uncertainty": trained.supports_uncertainty,
        }
        path = save_model(trained.model, metadata, settings.models_dir, model_id)
    except BaseException as exc:
        with store.session() as session:
            failed = repository.get_model(session, model_id)
            failed.state = ModelState.failed.value
            failed.error = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
        raise
    with store.session() as session:
        model = repository.get_model(session, model_id)
        model.input_schema = trained.input_schema
        model.hyperparameters = trained.hyperparameters
        model.validation_metrics = trained.validation_metrics
        model.test_metrics = trained.test_metrics
        model.confusion_matrix = trained.confusion_matrix
        model.refit = spec.refit
        model.supports_uncertainty = trained.supports_uncertainty
        model.history = trained.history if trained.history is not None else [
            {"epoch": e.epoch, "execution": e.execution, **e.metrics}
            for e in repository.trial_history(session, job_id, trained.best_trial_id)
        ]
        model.split_sizes = trained.split_sizes
        model.path = str(path)
        model.state = ModelState.ready.value
        repository.finish_job(session, job_id, JobState.succeeded, model_id=model_id)
