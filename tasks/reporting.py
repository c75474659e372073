"""Turns search events into metadata-store writes and events, and watches for reasons to stop."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from automl import observability
from automl.search.reporter import Claims
from automl.store import Store, coordination, searches
from automl.store.records import JobRecord, JobState, LaneRecord

log = logging.getLogger(__name__)


class StoreReporter:
    """A ``SearchReporter`` for one lane of one job: records trials and epochs as they happen.

    At every epoch boundary it also reads what the rest of the service wants: a cancel, a
    budget another lane spent (``job.stop_reason``), this worker shutting down
    (``release_requested``), or the lane's lease gone to another worker. The lease itself is
    renewed by ``tasks.heartbeat.Heartbeat``, independent of how long an epoch takes.
    """

    def __init__(self, store: Store, job_id: str, owner: str, lane: int = 0) -> None:
        self.store = store
        self.job_id = job_id
        self.owner = owner
        self.lane = lane
        self.lease_lost = False
        self.release_requested = False
        self.stop_requested = False
        self._locked: Session | None = None
        self._started: set[str] = set()  # the trials this reporter's worker started

    def _session(self) -> Any:
        return nullcontext(self._locked) if self._locked is not None else self.store.session()

    @contextmanager
    def exclusive(self) -> Iterator[Claims]:
        with self.store.session() as session:
            coordination.lock_oracle(session, self.job_id)
            claims = Claims(
                running_elsewhere=coordination.running_elsewhere(session, self.job_id, self.lane),
                attempts=searches.trial_attempts(session, self.job_id),
            )
            self._locked = session
            try:
                yield claims
            finally:
                self._locked = None

    def trial_started(self, trial_id: str, number: int, hyperparameters: dict[str, Any]) -> None:
        observability.trial_id.set(trial_id)  # on every log line of this task from here on
        with self._session() as session:
            # Still running from an earlier attempt: its pool process died and the step's message came back.
            searches.interrupt_trial(session, self.job_id, trial_id, searches.WORKER_LOST)
            self._started.add(trial_id)
            attempt = searches.start_trial(session, self.job_id, trial_id, number, hyperparameters,
                                             lane=self.lane, worker=self.owner)
            coordination.set_lane_trial(session, self.job_id, self.lane, trial_id)
            searches.add_event(session, self.job_id, "trial_started",
                                 {"trial_id": trial_id, "number": number, "attempt": attempt, "lane": self.lane,
                                  "hyperparameters": hyperparameters})
        log.info("job %s trial %s started (attempt %d): %s", self.job_id, trial_id, attempt, hyperparameters)

    def epoch_ended(self, trial_id: str, epoch: int, metrics: dict[str, Any], execution: int = 0) -> None:
        try:
            with self._session() as session:
                searches.record_epoch(session, self.job_id, trial_id, epoch, metrics, execution)
                searches.add_event(session, self.job_id, "epoch_ended", {
                    "trial_id": trial_id, "epoch": epoch, "execution": execution, "metrics": metrics})
                self._read_signals(session)
        except OperationalError as exc:
            # A database blip must not fail the trial: this epoch's record is lost, training goes on.
            log.warning("job %s trial %s: epoch %d not recorded: %s", self.job_id, trial_id, epoch, exc)

    def _read_signals(self, session: Session) -> None:
        job = session.get(JobRecord, self.job_id, populate_existing=True)
        lane = session.get(LaneRecord, (self.job_id, self.lane), populate_existing=True)
        self.stop_requested = (job is None or job.cancel_requested or job.stop_reason is not None
                               or JobState(job.state).finished)  # another lane failed the job
        if lane is None or lane.owner != self.owner:
            self.lease_lost = True
        elif lane.release_requested:
            self.release_requested = True

    def trial_ended(
        self, trial_id: str, state: str, score: float | None, best_epoch: int | None, message: str | None
    ) -> None:
        with self._session() as session:
            if trial_id not in self._started:  # ended unstarted (a trial given up after its workers died)
                searches.interrupt_trial(session, self.job_id, trial_id, searches.WORKER_LOST)
            searches.finish_trial(session, self.job_id, trial_id, state, score, best_epoch, message)
            coordination.set_lane_trial(session, self.job_id, self.lane, None)
            searches.add_event(session, self.job_id, "trial_ended",
                                 {"trial_id": trial_id, "state": state, "score": score, "best_epoch": best_epoch,
                                  "message": message})
        log.info("job %s trial %s %s, score %s", self.job_id, trial_id, state, score)

    def handed_back(self, trial_id: str) -> None:
        """The trial stopped unfinished because this worker let go; it will run again elsewhere."""
        with self.store.session() as session:
            # Nothing when the reaper already interrupted it (a lease that expired under a live worker): one marker.
            shutdown = self.release_requested
            searches.interrupt_trial(session, self.job_id, trial_id,
                                     searches.WORKER_SHUTDOWN if shutdown else searches.LEASE_LOST,
                                     counts_as_attempt=not shutdown)

    def should_stop(self) -> bool:
        return self.lease_lost or self.release_requested or self.stop_requested

    def interrupted(self) -> bool:
        return self.lease_lost or self.release_requested
