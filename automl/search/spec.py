"""Everything a worker needs to run a job's search, independent of how jobs are stored."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class SearchSpec:
    job_id: str
    dataset_path: Path
    column_types: dict[str, str]
    target: str
    task: str
    classes: list[Any] | None
    tuner: str
    objective: str
    direction: str
    max_trials: int
    max_epochs: int
    patience: int
    seed: int
    work_dir: Path
