"""Job submission and the bridge from a job record to a search: validation lives here.

A job that passes ``create_job`` can be trained: the target exists, varies, has enough rows
and classes, and the objective fits the task. Problems are 422s before anything is queued.
"""

from __future__ import annotations

import uuid
import zipfile
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, Any

import pandas as pd
from sqlalchemy.orm import Session

from automl.access import Scope
from automl.datasets.images import default_image_size
from automl.datasets.ingest import load_frame
from automl.datasets.targets import TargetInfo, resolve_multilabel, resolve_target
from automl.errors import InvalidJobRequest, NotReady
from automl.hypermodels.backbones import BACKBONES, weights_path
from automl.hypermodels.narrowing import normalize_overrides, possible_values
from automl.search import options
from automl.search.defaults import default_max_epochs, default_patience, training_rows
from automl.search.objectives import TUNERS, resolve_objective
from automl.search.options import SearchOptions
from automl.search.spec import TENSORBOARD_DIR, SearchSpec
from automl.settings import Settings
from automl.store import catalogue, coordination, searches
from automl.store.records import DatasetRecord, JobRecord, JobState, TrialRecord, TrialState, utcnow

DEFAULT_SEED = 0  # the same job gives the same split and the same first trials unless it asks otherwise


@dataclass(frozen=True, kw_only=True)
class JobRequest(SearchOptions):
    """A job as asked for: the ``SearchOptions`` and what is resolved against the dataset here."""

    dataset_id: str
    target: str | list[str] | None  # a list of columns is a multilabel task; None: an image dataset's one label
    task: str = "auto"
    tuner: str = "bayesian"
    objective: str | None = None
    max_trials: int | None = None
    max_epochs: int | None = None
    patience: int | None = None  # None: from max_epochs (a tenth, 5-20)
    seed: int | None = None
    search_space: dict[str, Any] = field(default_factory=dict)
    time_budget_s: int | None = None
    parallel_trials: int = 1
    image_size: int | None = None  # image datasets: side length to resize to (default from the images)


def column_types(dataset: DatasetRecord) -> dict[str, str]:
    return {c["name"]: c["type"] for c in dataset.columns}


def _requested_targets(dataset: DatasetRecord, request: JobRequest) -> list[str]:
    if request.target is not None:
        return [request.target] if isinstance(request.target, str) else list(request.target)
    labels = [c["name"] for c in dataset.columns]
    if dataset.kind == "image" and len(labels) == 1:
        return labels
    hint = f"one of: {', '.join(labels)}" if dataset.kind == "image" else "the column to predict"
    raise InvalidJobRequest(f"'target' is required; name {hint}.", {"target": ["required"]})


def _resolve(dataset: DatasetRecord, request: JobRequest) -> tuple[list[str], TargetInfo]:
    types = column_types(dataset)
    targets = _requested_targets(dataset, request)
    if not targets:
        raise InvalidJobRequest("'target' is empty; name the column to predict.", {"target": ["empty"]})
    if len(targets) == 1:
        target = targets[0]
        values = load_frame(dataset.path, [target])[target] if target in types else None
        return targets, resolve_target(target, types, values, request.task)
    columns = list(dict.fromkeys(targets))
    # resolve_multilabel names unknown columns before it reads any value.
    frame = load_frame(dataset.path, columns) if all(t in types for t in columns) else pd.DataFrame()
    return targets, resolve_multilabel(targets, types, frame, request.task)


def _limit(name: str, value: int, limit: int) -> None:
    if value > limit:
        raise InvalidJobRequest(f"{name} is at most {limit} on this service.", {name: [f"at most {limit}"]})


def create_job(session: Session, settings: Settings, request: JobRequest, scope: Scope,
               idempotency_key: str | None = None, fingerprint: str | None = None) -> JobRecord:
    """Validate ``request`` against a dataset ``scope`` may see and record the job in ``scope``'s team."""
    dataset = catalogue.get_dataset(session, request.dataset_id, scope)
    targets, info = _resolve(dataset, request)
    overrides = normalize_overrides(request.search_space, info.task, dataset.kind)
    if info.task == "regression":
        overrides = _target_transform_options(dataset, targets[0], overrides)
    image_size = _image_options(dataset, request, overrides, settings)
    if image_size is not None:
        overrides = _pretrained_backbones(overrides, image_size, settings)
    objective, direction = resolve_objective(info.task, request.objective, overrides)
    if request.tuner not in TUNERS:
        raise InvalidJobRequest(f"Unknown tuner '{request.tuner}'. Use one of: {', '.join(TUNERS)}.",
                                {"tuner": ["unknown"]})
    # With a time budget and no trial count, the budget decides how many trials run.
    max_trials = request.max_trials or (settings.max_trials_limit if request.time_budget_s
                                        else settings.default_max_trials)
    data_epochs = IMAGE_MAX_EPOCHS if dataset.kind == "image" else default_max_epochs(training_rows(dataset.n_rows))
    max_epochs = request.max_epochs or settings.default_max_epochs or data_epochs
    # Image trials validate on moving batch-norm statistics that settle over the first epochs.
    patience = request.patience or (IMAGE_PATIENCE if dataset.kind == "image" else default_patience(max_epochs))
    _limit("max_trials", max_trials, settings.max_trials_limit)
    _limit("max_epochs", max_epochs, settings.max_epochs_limit)
    for declared_option in options.declared():
        if declared_option.maximum is not None:
            _limit(declared_option.name, getattr(request, declared_option.name), int(declared_option.maximum))
    if request.time_budget_s is not None:
        _limit("time_budget_s", request.time_budget_s, settings.max_time_budget_s)
    _limit("parallel_trials", request.parallel_trials, settings.max_parallel_trials)
    # More lanes than trials would only wait; Hyperband's rounds decide their own trial count.
    lanes = request.parallel_trials if request.tuner == "hyperband" else min(request.parallel_trials, max_trials)
    job = JobRecord(
        id=uuid.uuid4().hex,
        team=scope.team,
        dataset_id=dataset.id,
        target=", ".join(targets)[:255],
        targets=targets if info.task == "multilabel" else None,
        task=info.task,
        requested_task=request.task,
        tuner=request.tuner,
        objective=objective,
        objective_direction=direction,
        max_trials=max_trials,
        max_epochs=max_epochs,
        patience=patience,
        seed=request.seed if request.seed is not None else DEFAULT_SEED,
        classes=info.classes,
        search_space=overrides,
        options=options.stored(options.SearchOptions(**options.pick(request))),
        time_budget_s=request.time_budget_s,
        parallel_trials=lanes,
        image_size=image_size,
        state=JobState.queued.value,
        idempotency_key=idempotency_key,
        request_fingerprint=fingerprint,
    )
    session.add(job)
    session.flush()
    coordination.create_lanes(session, job.id, lanes)
    return job


def _target_transforms_allowed(dataset: DatasetRecord, target: str) -> bool:
    values = pd.to_numeric(load_frame(dataset.path, [target])[target], errors="coerce")
    return bool(values.min() >= 0)


def _target_transform_options(dataset: DatasetRecord, target: str,
                              overrides: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """log1p needs a target >= 0: a job that asks only for it on a target with negative values is a
    422; from a list it is dropped."""
    asked = overrides.get("target_transform")
    if not asked or _target_transforms_allowed(dataset, target):
        return overrides
    values = [asked["fixed"]] if "fixed" in asked else list(asked["values"])
    kept = [v for v in values if v != "log1p"]
    if not kept:
        raise InvalidJobRequest(
            f"target_transform 'log1p' needs a target of 0 or more, and '{target}' has negative values; "
            "use 'quantile' or 'none'.", {"search_space": ["target_transform: log1p needs a target >= 0"]})
    return {**overrides, "target_transform": {"fixed": kept[0]} if len(kept) == 1 else {"values": kept}}


MIN_IMAGE_SIZE = 8
MAX_IMAGE_SIZE = 512
IMAGE_MAX_EPOCHS = 30  # a CNN epoch is costly on a CPU; early stopping ends most trials sooner
IMAGE_PATIENCE = 8


def _pretrained_backbones(overrides: dict[str, dict[str, Any]], image_size: int,
                          settings: Settings) -> dict[str, dict[str, Any]]:
    """A job that leaves the backbone open also searches every pretrained backbone whose weight file
    the operator has placed (and that fits the image size); the portfolio then tries one first."""
    if "backbone" in overrides or "pretrained" in overrides:
        return overrides
    available = [name for name, backbone in BACKBONES.items()
                 if image_size >= backbone.min_size and weights_path(name, settings.backbones_dir).is_file()]
    if not available:
        return overrides
    return {**overrides, "backbone": {"values": ["none", *available]}, "pretrained": {"fixed": True}}


def _image_options(dataset: DatasetRecord, request: JobRequest, overrides: dict[str, dict[str, Any]],
                   settings: Settings) -> int | None:
    """An image job's side length; refuses backbones it cannot build (too small, weights missing)."""
    if dataset.kind != "image":
        for name in ("image_size", *(o.name for o in options.declared() if o.image_only)):
            if getattr(request, name):
                raise InvalidJobRequest(f"{name} applies to image datasets only; this dataset is a table.",
                                        {name: ["image datasets only"]})
        return None
    size = request.image_size or default_image_size(dataset.images or {})
    if not MIN_IMAGE_SIZE <= size <= MAX_IMAGE_SIZE:
        raise InvalidJobRequest(f"image_size must be between {MIN_IMAGE_SIZE} and {MAX_IMAGE_SIZE} pixels.",
                                {"image_size": [f"between {MIN_IMAGE_SIZE} and {MAX_IMAGE_SIZE}"]})
    backbones = [b for b in (possible_values("backbone", overrides, "image") or []) if b != "none"]
    pretrained = True in (possible_values("pretrained", overrides, "image") or [])
    for name in backbones:
        if size < BACKBONES[name].min_size:
            raise InvalidJobRequest(
                f"The {name} backbone needs images of at least {BACKBONES[name].min_size} pixels; "
                f"set image_size to {BACKBONES[name].min_size} or more.", {"image_size": ["too small for backbone"]})
        weights = weights_path(name, settings.backbones_dir)
        if pretrained and not weights.is_file():
            raise InvalidJobRequest(
                f"Pretrained weights for {name} are not on this service: the operator places "
                f"'{BACKBONES[name].weights_file}' in {settings.backbones_dir} (nothing is downloaded). "
                'Or train it from scratch with "pretrained": false in search_space.',
                {"search_space": [f"backbone {name}: weights file missing"]})
    return size


def cancel_job(session: Session, job_id: str, scope: Scope | None = None) -> JobRecord:
    """Stop a job. A queued job is cancelled at once; a running one at its trials' next epoch
    boundary, keeping the finished trials and the best model so far."""
    job = searches.get_job(session, job_id, scope=scope)
    state = JobState(job.state)
    if state == JobState.cancelled or (state == JobState.running and job.cancel_requested):
        return job
    if state.finished:
        raise NotReady(f"Job '{job_id}' has already {state.value}; there is nothing to cancel.")
    if searches.cancel_queued_job(session, job_id):
        searches.add_event(session, job_id, "job_ended", {"state": JobState.cancelled.value, "model_id": None,
                                                            "stop_reason": "cancelled"})
    else:
        searches.request_cancel(session, job_id)
        searches.add_event(session, job_id, "cancel_requested", {})
    session.flush()
    session.refresh(job)
    return job


def _duration(trial: TrialRecord) -> float | None:
    if trial.finished_at is None or trial.started_at is None:
        return None
    return (trial.finished_at - trial.started_at).total_seconds()


def progress(session: Session, job: JobRecord) -> dict[str, Any]:
    """The job record plus what is happening now: running trials, elapsed time, time left."""
    view: dict[str, Any] = {column.key: getattr(job, column.key) for column in JobRecord.__table__.columns}
    view.update(options.pick(options.from_stored(job.options)))
    trials = searches.list_trials(session, job.id) if job.started_at else []
    running = [t for t in trials if t.state == TrialState.running.value]
    view["running_trials"] = [
        {"trial_id": t.trial_id, "number": t.number, "epoch": t.epochs_done, "lane": t.lane, "attempt": t.attempts,
         "started_at": t.started_at}
        for t in running
    ]
    now = utcnow()
    end = job.finished_at or now
    view["elapsed_s"] = round((end - job.started_at).total_seconds(), 1) if job.started_at else None
    view["eta_s"] = _eta(job, trials, running, now)
    return view


def _eta(job: JobRecord, trials: list[TrialRecord], running: list[TrialRecord], now: datetime) -> float | None:
    """Seconds left, from the mean duration of finished trials (None until one has finished)."""
    if JobState(job.state).finished:
        return 0.0
    durations = [d for d in (_duration(t) for t in trials if t.state != TrialState.running.value) if d is not None]
    if not durations:
        return None
    mean = sum(durations) / len(durations)
    lanes = max(job.parallel_trials or 1, 1)
    unstarted = max(job.max_trials - job.trials_done - len(running), 0)
    in_flight = [max(mean - (now - t.started_at).total_seconds(), 0.0) for t in running]
    eta = unstarted * mean / lanes + (max(in_flight) if in_flight else 0.0)
    if job.time_budget_s and job.started_at:
        eta = min(eta, max((job.started_at + timedelta(seconds=job.time_budget_s) - now).total_seconds(), 0.0))
    return round(eta, 1)


def tensorboard_archive(settings: Settings, job_id: str, handle: IO[bytes]) -> int:
    """Zip the job's TensorBoard logs (one run per trial, and the refit) into ``handle``; the number of
    event files. ``NotReady`` before the first trial has started."""
    root = settings.jobs_dir / job_id / TENSORBOARD_DIR
    files = sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else []
    if not files:
        raise NotReady(f"Job '{job_id}' has no TensorBoard logs yet; they are written from its first trial's "
                       "first epoch on.")
    with zipfile.ZipFile(handle, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in files:
            archive.write(path, Path(TENSORBOARD_DIR) / path.relative_to(root))
    return len(files)


def search_spec(job: JobRecord, dataset: DatasetRecord, settings: Settings) -> SearchSpec:
    return SearchSpec(
        job_id=job.id,
        dataset_path=Path(dataset.path),
        column_types=column_types(dataset),
        targets=list(job.targets or [job.target]),
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
        overrides=dict(job.search_space or {}),
        deadline=(job.started_at + timedelta(seconds=job.time_budget_s))
        if job.time_budget_s and job.started_at else None,
        budget_s=job.time_budget_s,
        kind=dataset.kind,
        image_size=job.image_size,
        channels=int((dataset.images or {}).get("channels", 3)),
        weights_dir=settings.backbones_dir,
        **options.pick(options.from_stored(job.options)),
    )
