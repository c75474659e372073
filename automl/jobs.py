"""Job submission and the bridge from a job record to a search: validation lives here.

A job that passes ``create_job`` can be trained: the target exists, varies, has enough rows
and classes, and the objective fits the task. Problems are 422s before anything is queued.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.orm import Session

from automl.datasets.ingest import load_frame
from automl.datasets.targets import resolve_target
from automl.errors import InvalidJobRequest
from automl.search.objectives import TUNERS, resolve_objective
from automl.search.spec import SearchSpec
from automl.settings import Settings
from automl.store import repository
from automl.store.records import DatasetRecord, JobRecord, JobState

DEFAULT_PATIENCE = 5


@dataclass(frozen=True)
class JobRequest:
    dataset_id: str
    target: str
    task: str = "auto"
    tuner: str = "bayesian"
    objective: str | None = None
    max_trials: int | None = None
    max_epochs: int | None = None
    patience: int = DEFAULT_PATIENCE
    seed: int | None = None


def column_types(dataset: DatasetRecord) -> dict[str, str]:
    return {c["name"]: c["type"] for c in dataset.columns}


def create_job(session: Session, settings: Settings, request: JobRequest) -> JobRecord:
    dataset = repository.get_dataset(session, request.dataset_id)
    types = column_types(dataset)
    values = load_frame(dataset.path, [request.target])[request.target] if request.target in types else None
    info = resolve_target(request.target, types, values, request.task)
    objective, direction = resolve_objective(info.task, request.objective)
    if request.tuner not in TUNERS:
        raise InvalidJobRequest(f"Unknown tuner '{request.tuner}'. Use one of: {', '.join(TUNERS)}.",
                                {"tuner": ["unknown"]})
    max_trials = request.max_trials or settings.default_max_trials
    max_epochs = request.max_epochs or settings.default_max_epochs
    if max_trials > settings.max_trials_limit:
        raise InvalidJobRequest(f"max_trials is at most {settings.max_trials_limit} on this service.",
                                {"max_trials": [f"at most {settings.max_trials_limit}"]})
    if max_epochs > settings.max_epochs_limit:
        raise InvalidJobRequest(f"max_epochs is at most {settings.max_epochs_limit} on this service.",
                                {"max_epochs": [f"at most {settings.max_epochs_limit}"]})
    job = JobRecord(
        id=uuid.uuid4().hex,
        dataset_id=dataset.id,
        target=request.target,
        task=info.task,
        requested_task=request.task,
        tuner=request.tuner,
        objective=objective,
        objective_direction=direction,
        max_trials=max_trials,
        max_epochs=max_epochs,
        patience=request.patience,
        seed=request.seed if request.seed is not None else uuid.uuid4().int % (2**31),
        classes=info.classes,
        state=JobState.queued.value,
    )
    session.add(job)
    return job


def search_spec(job: JobRecord, dataset: DatasetRecord, settings: Settings) -> SearchSpec:
    return SearchSpec(
        job_id=job.id,
        dataset_path=Path(dataset.path),
        column_types=column_types(dataset),
        target=job.target,
        task=job.task,
        classes=job.classes,
        tuner=job.tuner,
        objective=job.objective,
        direction=job.objective_direction,
        max_trials=job.max_trials,
        max_epochs=job.max_epochs,
        patience=job.patience,
        seed=job.seed,
        work_dir=settings.jobs_dir / job.id,
    )
