"""Everything a worker needs to run a job's search, independent of how jobs are stored."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from automl.search.budget import Budget, finalize_reserve, start_share, typical
from automl.search.options import SearchOptions

TENSORBOARD_DIR = "tensorboard"  # in the job's folder: one run per trial (and execution), and "final_refit"


@dataclass(frozen=True, kw_only=True)
class SearchSpec(SearchOptions):
    """The job's ``SearchOptions`` (``spec.refit``, ``spec.ensemble_size``, ...) and what its search runs on."""

    job_id: str
    dataset_path: Path
    column_types: dict[str, str]
    targets: list[str]  # one column, or several for multilabel
    task: str
    classes: list[Any] | None  # labels; for multilabel one [negative, positive] pair per target
    tuner: str
    objective: str
    direction: str
    max_trials: int
    max_epochs: int
    patience: int
    seed: int
    work_dir: Path
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    deadline: datetime | None = None  # the job's whole time budget ends here (final model included)
    budget_s: float | None = None  # the job's time budget, of which the final model keeps a reserve
    trial_seconds: tuple[float, ...] = ()  # how long the job's finished trials took
    kind: str = "tabular"  # or "image"
    image_size: int | None = None  # image jobs: the side length images are resized to
    channels: int = 3  # image jobs: 1 (grayscale) or 3
    weights_dir: Path | None = None  # image jobs: the operator's backbone weight files

    @property
    def target(self) -> str:
        return self.targets[0]

    @property
    def n_outputs(self) -> int:
        if self.task == "multilabel":
            return len(self.targets)
        if self.task == "multiclass":
            return len(self.classes or [])
        return 1

    @property
    def budget(self) -> Budget:
        """Between trials: the search ends where the final model's reserve begins."""
        return self.trial_budget(None)

    def trial_budget(self, running_s: float | None) -> Budget:
        """For a trial that has run ``running_s`` seconds (``math.inf``: the latest it may run; see
        ``finalize_reserve``)."""
        retrainings = self.retrainings if self.kind == "tabular" else 1
        reserve = finalize_reserve(self.budget_s, list(self.trial_seconds), self.ensemble_size, self.refit, running_s,
                                   retrainings)
        return Budget(
            objective=self.objective,
            direction=self.direction,
            deadline=self.deadline - timedelta(seconds=reserve) if self.deadline else None,
            target_score=self.target_score,
            stop_on_epoch_target=self.executions_per_trial == 1,
            typical_trial_s=typical(list(self.trial_seconds)),
            fits=start_share(self.budget_s, list(self.trial_seconds), self.ensemble_size, self.refit),
        )
