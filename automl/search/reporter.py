"""The narrow interface through which a search reports progress; tasks implement it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass
class Claims:
    """What other workers hold while this one has the tuner state to itself."""

    running_elsewhere: set[str] = field(default_factory=set)  # trials live workers run now
    attempts: dict[str, int] = field(default_factory=dict)  # how often each trial was started


class SearchReporter(Protocol):
    """Receives trial and epoch events. Must not raise for ordinary bookkeeping problems."""

    def trial_started(self, trial_id: str, number: int, hyperparameters: dict[str, Any]) -> None: ...

    def epoch_ended(
        self, trial_id: str, epoch: int, metrics: dict[str, float | None], execution: int = 0
    ) -> None: ...

    def trial_ended(
        self, trial_id: str, state: str, score: float | None, best_epoch: int | None, message: str | None
    ) -> None: ...

    def should_stop(self) -> bool:
        """True when training must stop at this epoch boundary (lease lost, cancelled...).

        Budgets (time, target score) are the search's own business; see ``automl.search.budget``.
        """
        ...

    def interrupted(self) -> bool:
        """True when the stop means "hand the trial back unfinished" (shutdown, lease lost),
        rather than "end it with what it has" (cancelled, another lane spent the budget)."""
        ...

    def exclusive(self) -> AbstractContextManager[Claims]:
        """Hold the job's tuner state alone (across workers) for the duration of the block;
        the reporter's calls inside the block are part of the same transaction."""
        ...


class NullReporter:
    """Reports nowhere; for scripts and tests that only want the result."""

    def trial_started(self, trial_id: str, number: int, hyperparameters: dict[str, Any]) -> None:
        return None

    def epoch_ended(
        self, trial_id: str, epoch: int, metrics: dict[str, float | None], execution: int = 0
    ) -> None:
        return None

    def trial_ended(
        self, trial_id: str, state: str, score: float | None, best_epoch: int | None, message: str | None
    ) -> None:
        return None

    def should_stop(self) -> bool:
        return False

    def interrupted(self) -> bool:
        return False

    @contextmanager
    def exclusive(self) -> Iterator[Claims]:
        yield Claims()
