"""A whole search in one process, through the same steps a job's Celery tasks take.

The worker runs ``run_trial_step`` once per task and decides between trials with
``search_stop_reason``; this loop does exactly that without a broker or a database, for
benchmarks and scripts.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

from automl.search.budget import EXHAUSTED, search_stop_reason
from automl.search.reporter import Claims, NullReporter, SearchReporter
from automl.search.runner import TrainedModel, run_trial_step, train_final_model
from automl.search.spec import SearchSpec


@dataclass
class LocalSearch:
    trained: TrainedModel
    stop_reason: str | None
    trials: int


class _Tracker(NullReporter):
    """Counts finished trials and keeps the best score, as the job record does."""

    def __init__(self, inner: SearchReporter, direction: str) -> None:
        self.inner = inner
        self.direction = direction
        self.trials = 0
        self.best: float | None = None

    def trial_started(self, trial_id: str, number: int, hyperparameters: dict[str, Any]) -> None:
        self.inner.trial_started(trial_id, number, hyperparameters)

    def epoch_ended(self, trial_id: str, epoch: int, metrics: dict[str, float | None], execution: int = 0) -> None:
        self.inner.epoch_ended(trial_id, epoch, metrics, execution)

    def trial_ended(self, trial_id: str, state: str, score: float | None, best_epoch: int | None,
                    message: str | None) -> None:
        self.inner.trial_ended(trial_id, state, score, best_epoch, message)
        self.trials += 1
        if state == "completed" and score is not None and math.isfinite(score):
            better = self.best is None or (score > self.best if self.direction == "max" else score < self.best)
            self.best = score if better else self.best

    def should_stop(self) -> bool:
        return self.inner.should_stop()

    def interrupted(self) -> bool:
        return self.inner.interrupted()

    @contextmanager
    def exclusive(self) -> Iterator[Claims]:
        with self.inner.exclusive() as claims:
            yield claims


def run_local_search(spec: SearchSpec, reporter: SearchReporter | None = None) -> LocalSearch:
    """With ``spec.budget_s``, the search keeps time for the final model."""
    tracker = _Tracker(reporter or NullReporter(), spec.direction)
    durations: list[float] = []

    def reserved() -> SearchSpec:
        return replace(spec, trial_seconds=tuple(durations))

    reason = search_stop_reason(reserved().budget, tracker.best, tracker.trials, spec.max_trials)
    while reason is None:
        started = time.monotonic()
        step = run_trial_step(reserved(), tracker)
        if step.outcome == "trial_ended":
            durations.append(time.monotonic() - started)
        reason = step.stop_reason or search_stop_reason(reserved().budget, tracker.best, tracker.trials,
                                                        spec.max_trials)
        if reason is None and step.outcome == "exhausted":
            reason = EXHAUSTED
    return LocalSearch(trained=train_final_model(spec), stop_reason=reason, trials=tracker.trials)
