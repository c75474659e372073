"""The narrow interface through which a search reports progress; tasks implement it."""

from __future__ import annotations

from typing import Any, Protocol


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
