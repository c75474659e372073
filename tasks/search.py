"""The one task of a search: advance one lane of a job by one trial, or finish the job.

A job runs on ``parallel_trials`` lanes. Each message does a bounded piece of work (one
trial) and queues the lane's next step, so no task runs anywhere near the broker's
visibility timeout, jobs interleave fairly in the queue, and any worker can pick a lane up
where it stands. A lane's lease (renewed by a heartbeat thread) keeps two deliveries of the
same step from running together, and a generation number on every message makes stale
copies (redeliveries, re-sends by the reaper) drop out at once. The last lane to finish
trains the final model under the job's own lease.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import time
import uuid
from dataclasses import replace
from functools import cache
from typing import TYPE_CHECKING

from celery import Celery, shared_task
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from automl import observability
from automl.errors import AutomlError, SearchFailed
from automl.jobs import search_spec
from automl.search.budget import EXHAUSTED, MAX_TRIALS, search_stop_reason
from automl.search.spec import SearchSpec
from automl.settings import Settings
from automl.store import Store, catalogue, coordination, searches
from automl.store.records import JobRecord, JobState, ModelRecord, ModelState, TrialState
from tasks import supervision
from tasks.celery_app import ADVANCE_JOB, send_advance
from tasks.heartbeat import Heartbeat
from tasks.reporting import StoreReporter

if TYPE_CHECKING:
    from automl.search.runner import TrainedModel

log = logging.getLogger(__name__)

CANCELLED = "cancelled"
IDLE_RETRY_S = 5
YIELD_DELAY_S = 0.5  # a step that let another team go first is due again after this (no busy loop)


@cache
def _store(url: str) -> Store:
    return Store(url)


def _owner() -> str:
    """Who holds a lease: host, the worker's main process (for shutdown hand-over), this process."""
    return f"{socket.gethostname()}:{supervision.main_pid()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def _send(app: Celery, job_id: str, lane: int, generation: int, countdown: float | None = None) -> None:
    try:
        send_advance(app, job_id, lane, generation, countdown=countdown)
    except Exception as exc:  # the broker is down: the reaper queues the step again later
        log.error("job %s lane %d: could not queue the next step (%s); it will be re-sent", job_id, lane, exc)


@shared_task(name=ADVANCE_JOB, bind=True)
def advance_job(self, job_id: str, lane: int = 0, generation: int = 0) -> str:  # type: ignore[no-untyped-def]
    observability.job_id.set(job_id)  # every log line of this task carries the job and lane
    observability.lane.set(lane)
    observability.trial_id.set(None)
    settings: Settings = self.app.conf.automl_settings
    store = _store(settings.sqlalchemy_url)
    owner = _owner()
    with store.session() as session:
        try:
            job = searches.get_job(session, job_id)
        except AutomlError:
            log.warning("job %s does not exist; dropping the message", job_id)
            return "missing"
        yielded = (coordination.claimable(session, job_id, lane, generation)
                   and coordination.should_yield(session, job.team, settings.requeue_after_s))
        if yielded:
            coordination.yield_turn(session, job_id, lane)
    if yielded:  # another team's turn: this step goes to the end of the queue, unclaimed
        log.info("job %s lane %d: another team's turn; queued again", job_id, lane)
        _send(self.app, job_id, lane, generation, YIELD_DELAY_S)
        return "yielded"
    with store.session() as session:
        claim = coordination.claim_lane(session, job_id, lane, generation, owner, settings.job_lease_s)
        if claim != coordination.ACQUIRED:
            log.info("job %s lane %d generation %d: %s; dropping the message", job_id, lane, generation, claim)
            return claim
        lane_done = bool(coordination.get_lane(session, job_id, lane).done)  # type: ignore[union-attr]
        job = searches.get_job(session, job_id)  # as claimed: started_at, which the time budget counts from
        spec = search_spec(job, catalogue.get_dataset(session, job.dataset_id), settings)

    try:
        if lane_done:
            outcome = "lane_done"
        else:
            with Heartbeat(store, job_id, lane, owner, settings.job_lease_s) as heartbeat:
                outcome = _lane_step(store, spec, lane, owner, settings, heartbeat)
        if outcome in ("next_trial", "idle"):
            with store.session() as session:
                next_generation = coordination.release_lane(session, job_id, lane, owner, advance=True)
            if next_generation >= 0:
                _send(self.app, job_id, lane, next_generation, IDLE_RETRY_S if outcome == "idle" else None)
            return outcome
        if outcome in ("handed_over", "lease_lost"):
            with store.session() as session:
                current = coordination.release_lane(session, job_id, lane, owner, advance=False)
            if outcome == "handed_over" and current >= 0:
                _send(self.app, job_id, lane, current)  # another worker takes it now, not after a timeout
            return outcome
        with store.session() as session:
            coordination.release_lane(session, job_id, lane, owner, advance=False, done=True)
        ended = _finish(store, spec, job_id, owner, settings)
        if ended in (JobState.cancelled.value, JobState.succeeded.value):
            _delete_if_asked(store, settings, job_id)
        return ended
    except OperationalError as exc:
        # The metadata store blinked: leave the job as it is. The heartbeat has stopped, so the
        # lane's lease runs out and the reaper queues the step again.
        log.error("job %s lane %d: metadata store unavailable (%s); the step will be retried", job_id, lane, exc)
        return "database_unavailable"
    except AutomlError as exc:
        log.warning("job %s failed: %s", job_id, exc.message)
        _fail(store, job_id, exc.message)
        return JobState.failed.value
    except Exception as exc:
        log.exception("job %s failed unexpectedly", job_id)
        _fail(store, job_id,
              f"Internal error while training ({type(exc).__name__}: {exc}). The worker log has details.")
        return JobState.failed.value


def _fail(store: Store, job_id: str, message: str) -> None:
    with store.session() as session:
        searches.finish_job(session, job_id, JobState.failed, error=message)
        searches.add_event(session, job_id, "job_ended", {"state": JobState.failed.value, "error": message})


def _stop_reason(session: Session, job: JobRecord, spec: SearchSpec, settings: Settings) -> str | None:
    """Why no further trial may start on this lane (recorded on the job), or None.
    Raises ``SearchFailed`` after too many failed trials in a row."""
    if job.cancel_requested:
        return CANCELLED
    if job.stop_reason:
        return job.stop_reason
    streak, message = searches.failure_streak(session, job.id)
    if streak >= settings.max_consecutive_failed_trials:
        last = (message or "no message").strip().splitlines()[-1][:500]
        raise SearchFailed(f"{streak} trials in a row failed, so the search stopped. The last one failed with: {last}")
    reason = search_stop_reason(spec.budget, job.best_score, job.trials_done, job.max_trials)
    if reason:
        job.stop_reason = reason  # every other lane stops at its next epoch boundary too
    return reason


def training_runtime(settings: Settings) -> None:
    """TensorFlow is imported in the pool process (never the worker's parent, see DESIGN.md), sized
    to this process's share of the cores before its first operation. A prefork pool process has it
    already (``tasks.worker``: loaded as the process starts); then this only checks."""
    from automl.hypermodels.training import configure_threads

    configure_threads(settings.threads_per_trial)


def _lane_step(store: Store, spec: SearchSpec, lane: int, owner: str, settings: Settings,
               heartbeat: Heartbeat) -> str:
    """Run one trial on this lane; say what comes next."""
    training_runtime(settings)
    from automl.search.runner import run_trial_step

    job_id = spec.job_id
    with store.session() as session:
        job = searches.get_job(session, job_id)
        durations = [(t.finished_at - t.started_at).total_seconds() for t in searches.list_trials(session, job_id)
                     if t.state == TrialState.completed.value and t.finished_at and t.started_at]
        spec = replace(spec, trial_seconds=tuple(durations))
        if _stop_reason(session, job, spec, settings):
            return "lane_done"
    reporter = StoreReporter(store, job_id, owner, lane)
    result = run_trial_step(spec, reporter, lane, settings.max_trial_attempts)
    if heartbeat.lost:
        reporter.lease_lost = True
    if result.outcome == "handed_over":
        if result.trial_id:
            reporter.handed_back(result.trial_id)
        log.warning("job %s lane %d: trial %s handed back (%s)", job_id, lane, result.trial_id,
                    "lease lost" if reporter.lease_lost else "worker shutting down")
        return "lease_lost" if reporter.lease_lost else "handed_over"
    if result.outcome == "idle":
        return "idle"
    if result.outcome == "exhausted":
        return "lane_done"
    with store.session() as session:
        job = searches.get_job(session, job_id)
        # A budget spent inside this trial ends every lane at its next epoch boundary.
        if result.stop_reason and not job.stop_reason and not job.cancel_requested:
            job.stop_reason = result.stop_reason
        if _stop_reason(session, job, spec, settings):
            return "lane_done"  # the final model comes next: no need for an interim one
        new_best = job.best_trial_id == result.trial_id
    if new_best:
        _publish_best(store, spec, result.trial_id, settings)
    return "next_trial"


def _publish_best(store: Store, spec: SearchSpec, trial_id: str | None, settings: Settings) -> None:
    """The search's new best trial, as it is, becomes a servable interim model (``best_model_id``),
    replacing the previous one (kept when it is aliased or deployed). Never fails the job."""
    from automl.registry import save_model
    from automl.search.runner import train_final_model

    job_id = spec.job_id
    started = time.monotonic()
    try:
        trained = train_final_model(replace(spec, deadline=None), trial_id=trial_id)
        model_id = uuid.uuid4().hex
        path = save_model(trained.model, trained.metadata(spec, model_id), settings.models_dir, model_id)
    except Exception:
        log.exception("job %s: could not publish trial %s as the best model so far", job_id, trial_id)
        return
    unused: str | None = str(path)
    with store.session() as session:
        job = searches.get_job(session, job_id)
        # Another lane's better trial may have arrived meanwhile (it publishes itself), or the job ended.
        if job.best_trial_id == trial_id and not JobState(job.state).finished:
            record = ModelRecord(id=model_id, team=job.team, job_id=job_id, dataset_id=job.dataset_id, kind=spec.kind,
                                 task=spec.task, target=job.target, classes=spec.classes, targets=job.targets,
                                 interim=True, trial_id=trial_id, path=str(path), state=ModelState.ready.value)
            _write_card(session, record, trained, job_id)
            session.add(record)
            previous, job.best_model_id = job.best_model_id, model_id
            searches.add_event(session, job_id, "best_model", {"model_id": model_id, "trial_id": trial_id,
                                                               "score": job.best_score})
            unused = catalogue.retire_interim_model(session, previous) if previous else None
    if unused:
        shutil.rmtree(unused, ignore_errors=True)
    log.info("job %s: trial %s published as the best model so far in %.1f s", job_id, trial_id,
             time.monotonic() - started)


def _write_card(session: Session, record: ModelRecord, trained: TrainedModel, job_id: str) -> None:
    """The trained model's card into its record, and its training history: the refit's, else its best
    trial's epochs (a fine-tune's passes over every row, if any, are on the card's members)."""
    for name, value in trained.card().items():
        setattr(record, name, value)
    record.history = trained.history if trained.history is not None else [
        {"epoch": e.epoch, "execution": e.execution, **e.metrics}
        for e in searches.trial_history(session, job_id, trained.best_trial_id)
    ]


def _finish(store: Store, spec: SearchSpec, job_id: str, owner: str, settings: Settings) -> str:
    """When every lane is done, one worker (holding the job lease) produces the final model."""
    with store.session() as session:
        if not coordination.all_lanes_done(session, job_id):
            return "lane_done"
        if not coordination.acquire_lease(session, job_id, owner, settings.job_lease_s):
            return "lane_done"  # another worker is finishing the job
        attempts = searches.add_attempt(session, job_id)
        searches.refresh_job_progress(session, job_id)
        job = searches.get_job(session, job_id)
        cancelled = job.cancel_requested
        deleting = job.delete_requested  # no final model for a job about to be deleted
        stop_reason = CANCELLED if cancelled else job.stop_reason or (
            MAX_TRIALS if job.trials_done >= job.max_trials else EXHAUSTED
        )
        has_model = job.best_trial_id is not None  # a completed trial with a score
    if attempts > settings.max_trial_attempts:
        raise SearchFailed(
            f"Training the final model was started {attempts - 1} times and its worker died each time "
            "(killed, or out of memory)."
        )
    if cancelled and (deleting or not has_model):
        with store.session() as session:
            job = searches.get_job(session, job_id)
            job.stop_reason = stop_reason
            searches.finish_job(session, job_id, JobState.cancelled)
            searches.add_event(session, job_id, "job_ended", {"state": JobState.cancelled.value, "model_id": None})
        return JobState.cancelled.value
    final_state = JobState.cancelled if cancelled else JobState.succeeded
    with Heartbeat(store, job_id, None, owner, settings.job_lease_s, job_lease=True):
        _finalize(store, spec, job_id, settings, stop_reason, final_state, refit=spec.refit and not cancelled)
    return final_state.value


def _delete_if_asked(store: Store, settings: Settings, job_id: str) -> None:
    """DELETE was asked while the job ran: now that it has ended, delete it (records, files, models)."""
    from automl.usecases.deletion import delete_job

    with store.session() as session:
        job = session.get(JobRecord, job_id)
        asked = job is not None and job.delete_requested
    if not asked:
        return
    try:
        delete_job(store, settings, None, job_id, None)
        log.info("job %s: deleted once ended, as asked", job_id)
    except AutomlError as exc:  # a model of it was aliased or deployed meanwhile
        log.warning("job %s: not deleted as asked: %s", job_id, exc.message)


def _finalize(store: Store, spec: SearchSpec, job_id: str, settings: Settings, stop_reason: str | None,
              final_state: JobState, refit: bool) -> None:
    """Build the final model (the best trial or an ensemble), score it on the test split, refit it on
    every row, register it as ready."""
    training_runtime(settings)
    from automl.registry import save_model
    from automl.search.runner import train_final_model

    with store.session() as session:
        job = searches.get_job(session, job_id)
        model = session.get(ModelRecord, job.model_id) if job.model_id else None
        if model is None:
            model = ModelRecord(id=uuid.uuid4().hex, team=job.team, job_id=job_id, dataset_id=job.dataset_id,
                                kind=spec.kind, task=spec.task, target=job.target, classes=spec.classes,
                                targets=job.targets)
            session.add(model)
            job.model_id = model.id
        model.state = ModelState.training.value
        model_id = model.id
        job.stop_reason = stop_reason
    spec = replace(spec, refit=refit)
    try:
        trained = train_final_model(spec)
        path = save_model(trained.model, trained.metadata(spec, model_id), settings.models_dir, model_id)
    except BaseException as exc:
        with store.session() as session:
            failed = catalogue.get_model(session, model_id)
            failed.state = ModelState.failed.value
            failed.error = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
        raise
    with store.session() as session:
        model = catalogue.get_model(session, model_id)
        _write_card(session, model, trained, job_id)
        model.path = str(path)
        model.state = ModelState.ready.value
        job = searches.get_job(session, job_id)
        previous, job.best_model_id = job.best_model_id, model_id
        unused = catalogue.retire_interim_model(session, previous) if previous else None
        searches.finish_job(session, job_id, final_state, model_id=model_id)
        searches.add_event(session, job_id, "job_ended",
                             {"state": final_state.value, "model_id": model_id, "stop_reason": stop_reason})
    if unused:
        shutil.rmtree(unused, ignore_errors=True)
