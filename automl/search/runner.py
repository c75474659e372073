"""Drives Keras Tuner one trial at a time, and trains the final model from the best trial.

Each call builds a fresh tuner on the job's folder with ``overwrite=False``, so the oracle's
history (and Bayesian optimisation's model of it) carries over between calls, and a call
runs exactly one trial. That keeps every Celery task short (well under the broker's
visibility timeout) and lets any worker continue a job.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any

import keras
import keras_tuner as kt

# Keras Tuner needs tensorboard importable even without the TensorBoard callback.
import tensorboard  # noqa: F401

from automl.errors import SearchFailed
from automl.hypermodels.mlp import EVAL_BATCH_SIZE, TabularMLP, make_dataset
from automl.search.data import PreparedData, prepare
from automl.search.reporter import NullReporter, SearchReporter
from automl.search.spec import SearchSpec

log = logging.getLogger(__name__)

TUNER_PROJECT = "tuner"
_STATUS = {"COMPLETED": "completed", "FAILED": "failed", "INVALID": "failed"}


def _finite(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def clean_metrics(logs: dict[str, Any] | None) -> dict[str, float | None]:
    return {str(k): _finite(v) for k, v in (logs or {}).items() if not str(k).startswith("learning_rate")}


def active_hyperparameters(hp: kt.HyperParameters) -> dict[str, Any]:
    values = {}
    for name, value in hp.values.items():
        if name.startswith("tuner/"):
            continue
        try:
            active = hp.is_active(name)
        except (KeyError, ValueError):
            active = True
        if active:
            values[name] = value.item() if hasattr(value, "item") else value
    return values


class ReportingMixin:
    """Forwards Keras Tuner's trial and epoch hooks to a ``SearchReporter``."""

    reporter: SearchReporter
    base_seed: int
    oracle: Any

    def on_trial_begin(self, trial: Any) -> None:
        super().on_trial_begin(trial)  # type: ignore[misc]
        number = self.oracle.start_order.index(trial.trial_id)
        keras.utils.set_random_seed(self.base_seed + number)
        self.reporter.trial_started(trial.trial_id, number, active_hyperparameters(trial.hyperparameters))

    def on_epoch_end(self, trial: Any, model: Any, epoch: int, logs: dict[str, Any] | None = None) -> None:
        super().on_epoch_end(trial, model, epoch, logs)  # type: ignore[misc]
        self.reporter.epoch_ended(trial.trial_id, int(epoch), clean_metrics(logs))
        if self.reporter.should_stop():
            model.stop_training = True

    def on_trial_end(self, trial: Any) -> None:
        super().on_trial_end(trial)  # type: ignore[misc]
        ended = self.oracle.get_trial(trial.trial_id)
        state = _STATUS.get(str(ended.status), "failed")
        message = None
        if state == "failed" and ended.message:
            message = str(ended.message).strip().splitlines()[-1][:2000]
        self.reporter.trial_ended(trial.trial_id, state, _finite(ended.score), ended.best_step, message)


class ReportingRandomSearch(ReportingMixin, kt.RandomSearch):
    pass


class ReportingBayesianOptimization(ReportingMixin, kt.BayesianOptimization):
    pass


class ReportingHyperband(ReportingMixin, kt.Hyperband):
    pass


def _hypermodel(spec: SearchSpec, data: PreparedData) -> TabularMLP:
    return TabularMLP(
        features=data.features,
        task=spec.task,
        n_classes=len(spec.classes or []),
        objective=spec.objective,
        direction=spec.direction,
        patience=spec.patience,
        target_mean=data.target_mean,
        target_std=data.target_std,
        seed=spec.seed,
    )


def build_tuner(spec: SearchSpec, data: PreparedData, reporter: SearchReporter) -> Any:
    common: dict[str, Any] = {
        "hypermodel": _hypermodel(spec, data),
        "objective": kt.Objective(spec.objective, direction=spec.direction),
        "seed": spec.seed,
        "directory": str(spec.work_dir),
        "project_name": TUNER_PROJECT,
        "overwrite": False,
    }
    if spec.tuner == "random":
        tuner = ReportingRandomSearch(max_trials=spec.max_trials, **common)
    elif spec.tuner == "bayesian":
        tuner = ReportingBayesianOptimization(
            max_trials=spec.max_trials, num_initial_points=min(3, spec.max_trials), **common
        )
    elif spec.tuner == "hyperband":
        tuner = ReportingHyperband(max_epochs=max(2, spec.max_epochs), factor=3, **common)
    else:
        raise SearchFailed(f"Unknown tuner '{spec.tuner}'.")
    tuner.reporter = reporter
    tuner.base_seed = spec.seed
    return tuner


@dataclass
class StepResult:
    ran_trial: bool
    exhausted: bool  # the tuner has nothing more to try


def run_one_trial(spec: SearchSpec, reporter: SearchReporter) -> StepResult:
    """Run the next trial of the job's search (or the interrupted one, if any)."""
    data = prepare(spec)
    keras.utils.set_random_seed(spec.seed)
    tuner = build_tuner(spec, data, reporter)
    oracle = tuner.oracle
    before = len(oracle.trials)
    pending_retry = len(getattr(oracle, "_retry_queue", []))
    # Keras Tuner stops creating trials once len(trials) reaches max_trials; a trial
    # waiting for retry is picked up before that check.
    if not pending_retry and before >= spec.max_trials:
        return StepResult(ran_trial=False, exhausted=True)
    oracle.max_trials = before if pending_retry else before + 1
    try:
        tuner.search(
            data.x_train,
            data.y_train,
            validation_data=(data.x_val, data.y_val),
            epochs=spec.max_epochs,
            verbose=0,
        )
    except (kt.errors.FatalError, RuntimeError) as exc:
        # Keras Tuner raises RuntimeError after too many consecutive failed trials.
        raise SearchFailed(f"The search stopped: {str(exc).strip().splitlines()[-1]}") from exc
    finally:
        keras.backend.clear_session()
    ran = len(oracle.trials) > before or pending_retry > 0
    return StepResult(ran_trial=ran, exhausted=not ran)


@dataclass
class TrainedModel:
    model: Any
    hyperparameters: dict[str, Any]
    history: list[dict[str, float | None]]
    validation_metrics: dict[str, float | None]
    test_metrics: dict[str, float | None]
    input_schema: list[dict[str, Any]]
    split_sizes: dict[str, int]
    features: list[dict[str, Any]] = field(default_factory=list)


def train_final_model(spec: SearchSpec) -> TrainedModel:
    """Refit the best trial's configuration and score it once on the held-out test split."""
    data = prepare(spec)
    tuner = build_tuner(spec, data, NullReporter())
    completed = [t for t in tuner.oracle.get_best_trials(num_trials=len(tuner.oracle.trials)) if t.score is not None]
    if not completed:
        raise SearchFailed(
            "No trial completed, so there is no model. Check the trials' messages in the leaderboard."
        )
    best = completed[0]
    hp = best.hyperparameters
    hypermodel = _hypermodel(spec, data)
    keras.utils.set_random_seed(spec.seed)
    model = hypermodel.build(hp)
    history = hypermodel.fit(
        hp, model, data.x_train, data.y_train, validation_data=(data.x_val, data.y_val), epochs=spec.max_epochs
    )
    epochs = [
        {"epoch": i, **{k: _finite(v[i]) for k, v in history.history.items() if not k.startswith("learning_rate")}}
        for i in range(len(history.history.get("loss", [])))
    ]
    validation = model.evaluate(make_dataset(data.x_val, data.y_val, EVAL_BATCH_SIZE), return_dict=True, verbose=0)
    test = model.evaluate(make_dataset(data.x_test, data.y_test, EVAL_BATCH_SIZE), return_dict=True, verbose=0)
    return TrainedModel(
        model=model,
        hyperparameters=active_hyperparameters(hp),
        history=epochs,
        validation_metrics=clean_metrics(validation),
        test_metrics=clean_metrics(test),
        input_schema=[f.public_schema() for f in data.features],
        split_sizes=data.split_sizes,
        features=[f.to_dict() for f in data.features],
    )

