"""Drives Keras Tuner one trial at a time, and trains the final model from the best trial.

Each call builds a fresh tuner on the job's folder with ``overwrite=False``, so the oracle's
history (and Bayesian optimisation's model of it) carries over between calls, and a call
runs exactly one trial. That keeps every Celery task short (well under the broker's
visibility timeout) and lets any worker continue a job.
"""

from __future__ import annotations

import logging
import math
import traceback
import warnings
from dataclasses import dataclass, field
from typing import Any

import keras
import keras_tuner as kt
import numpy as np

# Keras Tuner needs tensorboard importable; trials also write TensorBoard logs (tensorboard_callback).
import tensorboard  # noqa: F401
from keras_tuner.src.engine import tuner_utils as kt_utils

from automl.errors import SearchFailed
from automl.hypermodels import space
from automl.hypermodels.base import SearchHyperModel
from automl.hypermodels.cnn import ImageCNN
from automl.hypermodels.mlp import TabularMLP
from automl.hypermodels.training import configure_gpus, gpu_visible, has_dropout
from automl.search.budget import EXHAUSTED
from automl.search.data import PreparedData, prepare
from automl.search.evaluation import evaluate
from automl.search.reporter import NullReporter, SearchReporter
from automl.search.spec import TENSORBOARD_DIR, SearchSpec

log = logging.getLogger(__name__)
if gpus := configure_gpus():  # before any model touches a GPU in this process
    log.info("training on %s (memory growth on)", ", ".join(gpus))

TUNER_PROJECT = "tuner"


def tensorboard_callback(spec: SearchSpec, run: str) -> keras.callbacks.TensorBoard:
    """Scalars per epoch (loss, metrics, learning rate) for TensorBoard; no graph, no profiling."""
    return keras.callbacks.TensorBoard(log_dir=str(spec.work_dir / TENSORBOARD_DIR / run), write_graph=False,
                                       profile_batch=0, update_freq="epoch")
_STATUS = {"COMPLETED": "completed", "FAILED": "failed", "INVALID": "failed"}


def _finite(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def clean_metrics(logs: dict[str, Any] | None) -> dict[str, float | None]:
    return {str(k): _finite(v) for k, v in (logs or {}).items() if not str(k).startswith("learning_rate")}


def active_hyperparameters(hp: kt.HyperParameters, kind: str = "tabular") -> dict[str, Any]:
    """The values that shaped the model: tuner bookkeeping and unused conditionals left out."""
    values = {}
    known = space.SPACE_BY_KIND[kind]
    for name, value in hp.values.items():
        if name.startswith("tuner/"):
            continue
        if name in known and not space.is_active(name, hp.values, kind):
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
        self.reporter.trial_started(trial.trial_id, number,
                                    active_hyperparameters(trial.hyperparameters, self.spec.kind))

    def _build_and_fit_model(self, trial: Any, *args: Any, **kwargs: Any) -> Any:
        self._execution += 1  # Keras Tuner calls this once per execution of a trial
        run = f"trial_{trial.trial_id}"
        if self.spec.executions_per_trial > 1:
            run += f"/execution_{self._execution}"
        kwargs["callbacks"] = [*kwargs.get("callbacks", []), tensorboard_callback(self.spec, run)]
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
        if ended.message:
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


def make_hypermodel(spec: SearchSpec, data: PreparedData) -> SearchHyperModel:
    common: dict[str, Any] = {
        "n_outputs": spec.n_outputs,
        "objective": spec.objective,
        "direction": spec.direction,
        "patience": spec.patience,
        "n_train": data.split_sizes["train"],
        "overrides": spec.overrides,
        "target_mean": data.target_mean,
        "target_std": data.target_std,
        "seed": spec.seed,
        "pipeline": data.pipeline,
        "eval_batch_size": data.eval_batch_size,
    }
    if spec.kind == "image":
        assert spec.image_size is not None
        # Mixed precision pays off on GPUs only; on a CPU it would just be slower.
        return ImageCNN(spec.task, image_size=spec.image_size, channels=spec.channels, weights_dir=spec.weights_dir,
                        mixed_precision=spec.mixed_precision and gpu_visible(), **common)
    return TabularMLP(data.features, spec.task, **common)


def build_tuner(spec: SearchSpec, data: PreparedData, reporter: SearchReporter) -> Any:
    """A tuner on the job's folder, reloaded from its files when they exist (``tuner0.json``)."""
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
    # Consecutive failures are counted by the service across all lanes (Keras Tuner's
    # in-memory count would restart with every step).
    tuner.oracle.max_consecutive_failed_trials = None
    tuner.reporter = reporter
    tuner.spec = spec
    return tuner


@dataclass
class StepResult:
    """What one step of a lane did.

    ``outcome``: ``trial_ended`` (completed or failed, recorded), ``handed_over`` (stopped
    unfinished because the worker must let go; it will be retried), ``idle`` (the tuner waits
    for other lanes' trials, as Hyperband does between rounds), ``exhausted`` (nothing left
    to try).
    """

    outcome: str
    trial_id: str | None = None
    stop_reason: str | None = None  # a budget that ended the search during this trial


def _reconcile(oracle: Any, running_elsewhere: set[str], ending: str | None = None) -> None:
    """After a reload Keras Tuner queues every unfinished trial for a retry. Keep the ones live
    workers are running (as ongoing, under their own ids) and the one this worker is ending
    out of that queue; what is left are the trials of workers that died or handed back."""
    keep = running_elsewhere | ({ending} if ending else set())
    oracle._retry_queue = [t for t in oracle._retry_queue if t not in keep]
    for trial_id in running_elsewhere:
        if trial_id in oracle.trials:
            oracle.ongoing_trials[f"held-{trial_id}"] = oracle.trials[trial_id]


def _give_up_on_crashing_trials(tuner: Any, attempts: dict[str, int], max_attempts: int) -> None:
    """A trial whose worker process died ``max_attempts`` times (killed, out of memory) is
    recorded as failed instead of being started again, so it cannot take the search down forever."""
    for trial_id in list(tuner.oracle._retry_queue):
        started = attempts.get(trial_id, 0)
        if started < max_attempts:
            continue
        tuner.oracle._retry_queue.remove(trial_id)
        trial = tuner.oracle.trials[trial_id]
        trial.status = kt.engine.trial.TrialStatus.FAILED
        trial.message = (
            f"The worker running this trial died {started} times (killed, or out of memory) before it "
            "finished, so it was not started again."
        )
        tuner.on_trial_end(trial)


def run_trial_step(spec: SearchSpec, reporter: SearchReporter, lane: int = 0, max_attempts: int = 2) -> StepResult:
    """Run the job's next trial (a trial a dead worker left unfinished comes first).

    Creating and ending a trial read and write Keras Tuner's files, so both happen inside
    ``reporter.exclusive()`` on a tuner freshly reloaded from them; the training between
    them writes only the trial's own checkpoint. Workers on several lanes therefore share
    one search state without tearing it, and the oracle (Bayesian optimisation included)
    sees every lane's results.
    """
    data = prepare(spec)
    tuner_id = f"lane{lane}"
    with reporter.exclusive() as claims:
        keras.utils.set_random_seed(spec.seed)
        tuner = build_tuner(spec, data, reporter)
        _reconcile(tuner.oracle, claims.running_elsewhere)
        _give_up_on_crashing_trials(tuner, claims.attempts, max_attempts)
        trial = tuner.oracle.create_trial(tuner_id)
        if trial.status == kt.engine.trial.TrialStatus.STOPPED:
            tuner.oracle.save()
            return StepResult("exhausted", stop_reason=EXHAUSTED)
        if trial.status == kt.engine.trial.TrialStatus.IDLE:
            return StepResult("idle")
        tuner.save()  # the oracle and the tuner file, which makes the next tuner reload them
        tuner.on_trial_begin(trial)

    fit_args = (data.x_train, data.y_train)
    fit_kwargs = {"validation_data": (data.x_val, data.y_val), "epochs": spec.max_epochs, "verbose": 0}
    results, status, message = None, kt.engine.trial.TrialStatus.COMPLETED, None
    try:
        results = tuner.run_trial(trial, *fit_args, **fit_kwargs)
    except kt.errors.FatalError as exc:
        raise SearchFailed(f"The search stopped: {str(exc).strip().splitlines()[-1]}") from exc
    except Exception as exc:  # a bad combination, out of memory twice: the trial fails, the search goes on
        log.warning("trial %s failed: %s", trial.trial_id, exc)
        failed = isinstance(exc, kt.errors.FailedTrialError)
        status = kt.engine.trial.TrialStatus.FAILED if failed else kt.engine.trial.TrialStatus.INVALID
        message = traceback.format_exc()
    finally:
        keras.backend.clear_session()
    if reporter.interrupted():
        return StepResult("handed_over", trial.trial_id)
    fallbacks = getattr(tuner.hypermodel, "oom_fallbacks", [])
    if fallbacks and message is None:
        asked, used = fallbacks[0]
        message = f"Ran out of memory at batch size {asked}; trained with batch size {used} instead."

    with reporter.exclusive() as claims:
        fresh = build_tuner(spec, data, reporter)
        _reconcile(fresh.oracle, claims.running_elsewhere, ending=trial.trial_id)
        if results is not None:
            objective = fresh.oracle.objective
            fresh.oracle.update_trial(
                trial.trial_id,
                kt_utils.convert_to_metrics_dict(results, objective),
                step=kt_utils.get_best_step(results, objective),
            )
        ended = fresh.oracle.trials[trial.trial_id]
        ended.status = status
        ended.message = message
        fresh.on_trial_end(ended)
    return StepResult("trial_ended", trial.trial_id, tuner.stop_reason)


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


def image_input_schema(spec: SearchSpec) -> list[dict[str, Any]]:
    return [{"name": "image", "type": "image", "channels": spec.channels, "size": [spec.image_size, spec.image_size],
             "description": "A PNG, JPEG, BMP, GIF or WebP file of any size (multipart), or {\"b64\": "
                            "<base64 of the file>} (JSON); it is converted to "
                            f"{'grayscale' if spec.channels == 1 else 'RGB'} and resized by the model."}]


def _predict(model: Any, x: dict[str, Any], data: PreparedData) -> Any:
    return model.predict(data.pipeline(x, None, data.eval_batch_size), verbose=0)


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
    validation = evaluate(spec.task, data.y_val, _predict(model, data.x_val, data), labels)
    history = None
    if spec.refit:
        hypermodel = tuner.hypermodel
        keras.utils.set_random_seed(spec.seed)
        model = hypermodel.build(hp)
        epochs = int(best.best_step or 0) + 1
        fitted = hypermodel.fit(
            hp, model, _concat(data.x_train, data.x_val), np.concatenate([data.y_train, data.y_val]), epochs=epochs,
            callbacks=[tensorboard_callback(spec, "final_refit")],
        )
        history = [
            {"epoch": i, **{k: _finite(v[i]) for k, v in fitted.history.items() if not k.startswith("learning_rate")}}
            for i in range(len(fitted.history.get("loss", [])))
        ]
    model = tuner.hypermodel.serving_model(hp, model)
    test = evaluate(spec.task, data.y_test, _predict(model, data.x_test, data), labels)
    return TrainedModel(
        model=model,
        best_trial_id=best.trial_id,
        hyperparameters=active_hyperparameters(hp, spec.kind),
        history=history,
        validation_metrics=validation.metrics,
        test_metrics=test.metrics,
        confusion_matrix=test.confusion_matrix,
        input_schema=image_input_schema(spec) if spec.kind == "image" else [f.public_schema() for f in data.features],
        split_sizes=data.split_sizes,
        supports_uncertainty=has_dropout(model),
        features=[f.to_dict() for f in data.features],
    )
