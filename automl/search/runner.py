"""Drives Keras Tuner one trial at a time, and trains the final model from the best trial.

Each call builds a fresh tuner on the job's folder with ``overwrite=False``, so the oracle's
history (and Bayesian optimisation's model of it) carries over between calls, and a call
runs exactly one trial. That keeps every Celery task short (well under the broker's
visibility timeout) and lets any worker continue a job.
"""

from __future__ import annotations

import logging
import math
import warnings
from dataclasses import dataclass, field
from typing import Any

import keras
import keras_tuner as kt
import numpy as np

# Keras Tuner needs tensorboard importable even without the TensorBoard callback.
import tensorboard  # noqa: F401

from automl.errors import SearchFailed
from automl.hypermodels import space
from automl.hypermodels.mlp import TabularMLP
from automl.hypermodels.training import EVAL_BATCH_SIZE, has_dropout, make_dataset
from automl.search.budget import EXHAUSTED
from automl.search.data import PreparedData, prepare
from automl.search.evaluation import evaluate
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
    """The values that shaped the model: tuner bookkeeping and unused conditionals left out."""
    values = {}
    for name, value in hp.values.items():
        if name.startswith("tuner/"):
            continue
        if name in space.SPACE_BY_NAME and not space.is_active(name, hp.values):
            continue
        value = value.item() if hasattr(value, "item") else value
        # Keras Tuner's float steps accumulate binary noise (0.7000000000000001).
        values[name] = float(f"{value:.10g}") if isinstance(value, float) else value
    return values


class ResumableGridSearchOracle(kt.oracles.GridSearchOracle):
    """Grid search that can continue from a reloaded project.

    Keras Tuner's grid oracle keeps its position in memory only, so a fresh tuner on an
    existing project would stop after one trial. This one walks the grid from the start
    and proposes the first combination no trial has used yet: stateless and deterministic.
    """

    def populate_space(self, trial_id: str) -> dict[str, Any]:
        hps = self.get_space()

        def active(values: dict[str, Any]) -> dict[str, Any]:
            hps.values = dict(values)
            return {name: v for name, v in values.items() if hps.is_active(name)}

        tried = [active(t.hyperparameters.values) for tid, t in self.trials.items() if tid != trial_id]
        values: dict[str, Any] | None = {hp.name: hp.default for hp in hps.space if hps.is_active(hp)}
        while values is not None:
            candidate = active(values)
            if candidate not in tried:
                return {"status": kt.engine.trial.TrialStatus.RUNNING, "values": candidate}
            values = self._get_next_combination(values)
        return {"status": kt.engine.trial.TrialStatus.STOPPED, "values": None}


class ReportingMixin:
    """Forwards Keras Tuner's trial and epoch hooks to a ``SearchReporter`` and applies the budget."""

    reporter: SearchReporter
    spec: SearchSpec
    oracle: Any
    stop_reason: str | None = None
    _execution: int = -1

    def on_trial_begin(self, trial: Any) -> None:
        super().on_trial_begin(trial)  # type: ignore[misc]
        number = self.oracle.start_order.index(trial.trial_id)
        keras.utils.set_random_seed(self.spec.seed + number)
        self._execution = -1
        self.reporter.trial_started(trial.trial_id, number, active_hyperparameters(trial.hyperparameters))

    def _build_and_fit_model(self, trial: Any, *args: Any, **kwargs: Any) -> Any:
        self._execution += 1  # Keras Tuner calls this once per execution of a trial
        return super()._build_and_fit_model(trial, *args, **kwargs)  # type: ignore[misc]

    def on_epoch_end(self, trial: Any, model: Any, epoch: int, logs: dict[str, Any] | None = None) -> None:
        super().on_epoch_end(trial, model, epoch, logs)  # type: ignore[misc]
        self.reporter.epoch_ended(trial.trial_id, int(epoch), clean_metrics(logs), max(self._execution, 0))
        reason = self.spec.budget.epoch_stop_reason(logs)
        if reason:
            self.stop_reason = reason
        if reason or self.reporter.should_stop():
            model.stop_training = True

    def on_trial_end(self, trial: Any) -> None:
        super().on_trial_end(trial)  # type: ignore[misc]
        ended = self.oracle.get_trial(trial.trial_id)
        state = _STATUS.get(str(ended.status), "failed")
        message = None
        if state == "failed" and ended.message:
            message = str(ended.message).strip().splitlines()[-1][:2000]
        self.reporter.trial_ended(trial.trial_id, state, _finite(ended.score), ended.best_step, message)


class ReportingTuner(ReportingMixin, kt.Tuner):
    pass


class ReportingRandomSearch(ReportingMixin, kt.RandomSearch):
    pass


class ReportingBayesianOptimization(ReportingMixin, kt.BayesianOptimization):
    pass


class ReportingHyperband(ReportingMixin, kt.Hyperband):
    pass


def make_hypermodel(spec: SearchSpec, data: PreparedData) -> TabularMLP:
    return TabularMLP(
        features=data.features,
        task=spec.task,
        n_outputs=spec.n_outputs,
        objective=spec.objective,
        direction=spec.direction,
        patience=spec.patience,
        n_train=data.split_sizes["train"],
        overrides=spec.overrides,
        target_mean=data.target_mean,
        target_std=data.target_std,
        seed=spec.seed,
    )


def build_tuner(spec: SearchSpec, data: PreparedData, reporter: SearchReporter) -> Any:
    objective = kt.Objective(spec.objective, direction=spec.direction)
    common: dict[str, Any] = {
        "hypermodel": make_hypermodel(spec, data),
        "executions_per_trial": spec.executions_per_trial,
        "directory": str(spec.work_dir),
        "project_name": TUNER_PROJECT,
        "overwrite": False,
    }
    if spec.tuner == "random":
        tuner = ReportingRandomSearch(objective=objective, max_trials=spec.max_trials, seed=spec.seed, **common)
    elif spec.tuner == "bayesian":
        tuner = ReportingBayesianOptimization(
            objective=objective, max_trials=spec.max_trials, num_initial_points=min(3, spec.max_trials),
            seed=spec.seed, **common,
        )
    elif spec.tuner == "hyperband":
        tuner = ReportingHyperband(
            objective=objective, max_epochs=max(2, spec.max_epochs), factor=3, seed=spec.seed, **common
        )
    elif spec.tuner == "grid":
        oracle = ResumableGridSearchOracle(objective=objective, max_trials=spec.max_trials, seed=spec.seed)
        tuner = ReportingTuner(oracle=oracle, **common)
    else:
        raise SearchFailed(f"Unknown tuner '{spec.tuner}'.")
    tuner.reporter = reporter
    tuner.spec = spec
    return tuner


@dataclass
class StepResult:
    ran_trial: bool
    exhausted: bool  # the tuner has nothing more to try
    stop_reason: str | None = None  # a budget that ended the search during this trial


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
        return StepResult(ran_trial=False, exhausted=True, stop_reason=EXHAUSTED)
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
    return StepResult(ran_trial=ran, exhausted=not ran, stop_reason=tuner.stop_reason if ran else EXHAUSTED)


@dataclass
class TrainedModel:
    model: Any
    best_trial_id: str
    hyperparameters: dict[str, Any]
    history: list[dict[str, float | None]] | None  # None: the model is the best trial's own weights
    validation_metrics: dict[str, float | None]
    test_metrics: dict[str, float | None]
    confusion_matrix: dict[str, Any] | None
    input_schema: list[dict[str, Any]]
    split_sizes: dict[str, int]
    supports_uncertainty: bool
    features: list[dict[str, Any]] = field(default_factory=list)


def _predict(model: Any, x: dict[str, Any]) -> Any:
    return model.predict(make_dataset(x, None, EVAL_BATCH_SIZE), verbose=0)


def _concat(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {key: np.concatenate([a[key], b[key]]) for key in a}


def train_final_model(spec: SearchSpec) -> TrainedModel:
    """The best trial's model (its best epoch's weights), or with ``refit`` the best hyperparameters
    retrained on train + validation; then scored once on the held-out test split."""
    data = prepare(spec)
    tuner = build_tuner(spec, data, NullReporter())
    completed = [t for t in tuner.oracle.get_best_trials(num_trials=len(tuner.oracle.trials))
                 if _finite(t.score) is not None]
    if not completed:
        raise SearchFailed(
            "No trial completed, so there is no model. Check the trials' messages in the leaderboard."
        )
    best = completed[0]
    hp = best.hyperparameters
    labels = spec.targets if spec.task == "multilabel" else spec.classes
    with warnings.catch_warnings():
        # The checkpoint also holds the search's optimizer state, which a model that only
        # predicts (or is rebuilt for refit) does not need.
        warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
        model = tuner.load_model(best)
    validation = evaluate(spec.task, data.y_val, _predict(model, data.x_val), labels)
    history = None
    if spec.refit:
        hypermodel = tuner.hypermodel
        keras.utils.set_random_seed(spec.seed)
        model = hypermodel.build(hp)
        epochs = int(best.best_step or 0) + 1
        fitted = hypermodel.fit(
            hp, model, _concat(data.x_train, data.x_val), np.concatenate([data.y_train, data.y_val]), epochs=epochs
        )
        history = [
            {"epoch": i, **{k: _finite(v[i]) for k, v in fitted.history.items() if not k.startswith("learning_rate")}}
            for i in range(len(fitted.history.get("loss", [])))
        ]
    test = evaluate(spec.task, data.y_test, _predict(model, data.x_test), labels)
    return TrainedModel(
        model=model,
        best_trial_id=best.trial_id,
        hyperparameters=active_hyperparameters(hp),
        history=history,
        validation_metrics=validation.metrics,
        test_metrics=test.metrics,
        confusion_matrix=test.confusion_matrix,
        input_schema=[f.public_schema() for f in data.features],
        split_sizes=data.split_sizes,
        supports_uncertainty=has_dropout(model),
        features=[f.to_dict() for f in data.features],
    )
