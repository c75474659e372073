"""Turns search events into metadata-store writes, and keeps the job's lease alive."""

from __future__ import annotations

import logging
from typing import Any

from automl.store import Store, repository

log = logging.getLogger(__name__)


class StoreReporter:
    """A ``SearchReporter`` that records trials and epochs as they happen.

    Every epoch also renews the worker's lease on the job; if the lease was lost (another
    worker took the job over), training stops at this epoch boundary.
    """

    def __init__(self, store: Store, job_id: str, owner: str, lease_s: int) -> None:
        self.store = store
        self.job_id = job_id
        self.owner = owner
        self.lease_s = lease_s
        self.lease_lost = False

    def trial_started(self, trial_id: str, number: int, hyperparameters: dict[str, Any]) -> None:
        with self.store.session() as session:
            repository.start_trial(session, self.job_id, trial_id, number, hyperparameters)
        log.info("job %s trial %s started: %s", self.job_id, trial_id, hyperparameters)

    def epoch_ended(self, trial_id: str, epoch: int, metrics: dict[str, Any], execution: int = 0) -> None:
        with self.store.session() as session:
            repository.record_epoch(session, self.job_id, trial_id, epoch, metrics, execution)
            if not repository.renew_lease(session, self.job_id, self.owner, self.lease_s):
                self.lease_lost = True

    def trial_ended(
        self, trial_id: str, state: str, score: float | None, best_epoch: int | None, message: str | None
    ) -> None:
        with self.store.session() as session:
            repository.finish_trial(session, self.job_id, trial_id, state, score, best_epoch, message)
        log.info("job %s trial %s %s, score %s", self.job_id, trial_id, state, score)

    def should_stop(self) -> bool:
        return self.lease_lost
