"""The one place that knows Keras Tuner's internals: tuners, oracles and the trial loop.

What the service relies on from Keras Tuner beyond its public API sits here, each use named
and pinned by ``tests/unit/test_tuners.py`` so that an upgrade that changes it fails loudly:

* ``Oracle._retry_queue`` / ``ongoing_trials`` (which unfinished trials to retry after a reload),
* ``Oracle._random_values`` (every tuner's source of new configurations: random search,
  Bayesian optimisation's initial points, Hyperband's brackets), overridden to propose the
  portfolio first and never a configuration already tried,
* ``GridSearchOracle._get_next_combination`` (walking the grid),
* ``Tuner._try_build`` and ``tuner_utils`` (building a trial's model; the metrics of a history).

A trial trains with early stopping that restores its best epoch; the tuner then writes that
epoch's weights once (Keras Tuner's own checkpoint callback wrote them at every improvement,
about 0.2 s each), its outputs on the validation rows, which ensemble selection reads at the end
of the job, and on the test rows, from which the final model's held-out metrics are computed.
"""

from __future__ import annotations

import json
import math
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import keras
import keras_tuner as kt
import numpy as np

# Keras Tuner needs tensorboard importable; trials also write TensorBoard logs (EpochSummaries).
import tensorboard  # noqa: F401
import tensorflow as tf
from keras_tuner.src.engine import tuner_utils as kt_utils

from automl.hypermodels import space
from automl.search import objectives
from automl.search.reporter import SearchReporter
from automl.search.spec import TENSORBOARD_DIR, SearchSpec

VALIDATION_PREDICTIONS = "validation_predictions.npy"  # in a trial's folder: the best epoch's outputs
TEST_PREDICTIONS = "test_predictions.npy"  # ... and on the test rows (for the final model's metrics only)
FIT_RECORD = "fit.json"  # in a trial's folder: seconds and epochs of its (best) training
_STATUS = {"COMPLETED": "completed", "FAILED": "failed", "INVALID": "failed"}


def finite(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def ranked(oracle: Any, task: str) -> list[Any]:
    """The completed trials with a finite score, best first, ties to the earliest (``objectives.ties_first``)."""
    trials = [t for t in oracle.get_best_trials(num_trials=len(oracle.trials)) if finite(t.score) is not None]
    started = {trial_id: number for number, trial_id in enumerate(oracle.start_order)}
    return objectives.ties_first(trials, lambda t: float(t.score), lambda t: started.get(t.trial_id, len(started)),
                                 task)


def clean_metrics(logs: dict[str, Any] | None) -> dict[str, float | None]:
    return {str(k): finite(v) for k, v in (logs or {}).items() if not str(k).startswith("learning_rate")}


def active_hyperparameters(values: dict[str, Any], kind: str = "tabular") -> dict[str, Any]:
    """The values that shaped the model: tuner bookkeeping and unused conditionals left out."""
    out = {}
    known = space.SPACE_BY_KIND[kind]
    for name, value in values.items():
        if name.startswith("tuner/"):
            continue
        if name in known and not space.is_active(name, values, kind):
            continue
        value = value.item() if hasattr(value, "item") else value
        # Keras Tuner's float steps accumulate binary noise (0.7000000000000001).
        out[name] = float(f"{value:.10g}") if isinstance(value, float) else value
    return out


class EpochSummaries(keras.callbacks.Callback):
    """Per-epoch scalars for TensorBoard (``<run>/train`` and ``<run>/validation``, tags
    ``epoch_<metric>`` and ``epoch_learning_rate``), as Keras' TensorBoard callback writes them,
    without its per-batch work (about 4 ms a step on a CPU)."""

    def __init__(self, log_dir: Path) -> None:
        super().__init__()
        self.log_dir = log_dir
        self._writers: dict[str, Any] = {}

    def _writer(self, split: str) -> Any:
        if split not in self._writers:
            self._writers[split] = tf.summary.create_file_writer(str(self.log_dir / split))
        return self._writers[split]

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        logs = dict(logs or {})
        optimizer = getattr(self.model, "optimizer", None)
        if optimizer is not None:
            logs.setdefault("learning_rate", float(keras.ops.convert_to_numpy(optimizer.learning_rate)))
        for split, names in (("train", [k for k in logs if not k.startswith("val_")]),
                             ("validation", [k for k in logs if k.startswith("val_")])):
            if not names:
                continue
            with self._writer(split).as_default(step=int(epoch)):
                for name in names:
                    value = finite(logs[name])
                    if value is not None:
                        tf.summary.scalar(f"epoch_{name.removeprefix('val_')}", value)

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        for writer in self._writers.values():
            writer.close()
        self._writers = {}


def epoch_summaries(spec: SearchSpec, run: str) -> EpochSummaries:
    return EpochSummaries(spec.work_dir / TENSORBOARD_DIR / run)


class ReportingMixin:
    """Forwards Keras Tuner's trial and epoch hooks to a ``SearchReporter`` and applies the budget."""

    reporter: SearchReporter
    spec: SearchSpec
    oracle: Any
    hypermodel: Any
    executions_per_trial: int
    stop_reason: str | None = None
    test_inputs: Any = None  # the held-out test rows, whose outputs each trial keeps for the final metrics
    _execution: int = -1
    _trial_began: float = 0.0  # time.monotonic() when the running trial began

    def on_trial_begin(self, trial: Any) -> None:
        super().on_trial_begin(trial)  # type: ignore[misc]
        number = self.oracle.start_order.index(trial.trial_id)
        keras.utils.set_random_seed(self.spec.seed + number)
        self._execution = -1
        self._trial_began = time.monotonic()
        self.reporter.trial_started(trial.trial_id, number,
                                    active_hyperparameters(trial.hyperparameters.values, self.spec.kind))

    def run_trial(self, trial: Any, *args: Any, **kwargs: Any) -> list[Any]:
        """Keras Tuner's ``run_trial`` with one write of the best weights (and of the outputs on the
        validation and test rows) per trial instead of a checkpoint at every improved epoch."""
        objective = self.oracle.objective
        callbacks = kwargs.pop("callbacks", [])
        histories: list[Any] = []
        best: float | None = None
        # With a time budget, a cosine decay anneals by the latest this trial may run (training.CosineSchedule).
        self.hypermodel.time_left = self._time_left if self.spec.deadline is not None else None
        try:
            for execution in range(self.executions_per_trial):
                self._execution = execution
                run = f"trial_{trial.trial_id}" + (f"/execution_{execution}" if self.executions_per_trial > 1 else "")
                fit_kwargs = {**kwargs, "callbacks": [*self._deepcopy_callbacks(callbacks),  # type: ignore[attr-defined]
                                                      kt_utils.TunerCallback(self, trial),
                                                      epoch_summaries(self.spec, run)]}
                hp = trial.hyperparameters
                if "tuner/epochs" in hp.values:  # Hyperband: continue a promoted trial up to this round's epochs
                    fit_kwargs["epochs"] = hp.values["tuner/epochs"]
                    fit_kwargs["initial_epoch"] = hp.values["tuner/initial_epoch"]
                started = time.perf_counter()
                model = self._try_build(hp)  # type: ignore[attr-defined]
                results = self.hypermodel.fit(hp, model, *args, **fit_kwargs)
                kt_utils.validate_trial_results(results, objective, "HyperModel.fit()")
                histories.append(results)
                # Early stopping restored the best epoch of this execution; keep the best execution's.
                score = finite(kt_utils.convert_to_metrics_dict(results, objective).get(objective.name))
                if score is not None and (best is None or objective.better_than(score, best)):
                    best = score
                    epochs = len(getattr(results, "history", {}).get("loss", []))
                    self._keep(trial, model, kwargs.get("validation_data"), time.perf_counter() - started, epochs)
        finally:
            self.hypermodel.time_left = None
        return histories

    def _time_left(self) -> float | None:
        """Seconds until the latest the running trial may run: the job's deadline less the final model's
        scoring (and the refits of earlier trials that fit; see ``finalize_reserve``)."""
        deadline = self.spec.trial_budget(math.inf).deadline
        return None if deadline is None else (deadline - datetime.now(UTC)).total_seconds()

    def _keep(self, trial: Any, model: Any, validation: tuple[Any, Any] | None, seconds: float,
              epochs: int) -> None:
        model.save_weights(self._get_checkpoint_fname(trial.trial_id))  # type: ignore[attr-defined]
        folder = Path(self.oracle._get_trial_dir(trial.trial_id))
        # The final model reads these instead of loading every candidate to predict again; the test
        # rows' outputs are only ever used for the final model's held-out metrics.
        for name, x in ((VALIDATION_PREDICTIONS, validation[0] if validation else None),
                        (TEST_PREDICTIONS, self.test_inputs)):
            if x is not None:
                dataset = self.hypermodel.pipeline(x, None, self.hypermodel.eval_batch_size)
                np.save(folder / name, np.asarray(model.predict(dataset, verbose=0), dtype="float32"))
        record = {"seconds": round(seconds, 3), "epochs": epochs, "anneal": self.hypermodel.schedule_anneal}
        (folder / FIT_RECORD).write_text(json.dumps(record))

    def on_epoch_end(self, trial: Any, model: Any, epoch: int, logs: dict[str, Any] | None = None) -> None:
        super().on_epoch_end(trial, model, epoch, logs)  # type: ignore[misc]
        self.reporter.epoch_ended(trial.trial_id, int(epoch), clean_metrics(logs), max(self._execution, 0))
        reason = self.spec.trial_budget(time.monotonic() - self._trial_began).epoch_stop_reason(logs)
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
        self.reporter.trial_ended(trial.trial_id, state, finite(ended.score), ended.best_step, message)


# --- oracles ------------------------------------------------------------------------------------


class PortfolioMixin:
    """Proposes the job's portfolio entries first, then the oracle's own values, and never a
    configuration (the same active hyperparameters) that a trial of the job already has.

    Entries are projected into the job's space: a number outside a narrowed range or list goes
    to the nearest allowed value, a category the job excludes to the hyperparameter's default
    (an entry whose backbone the job excludes is skipped instead).
    """

    portfolio: list[dict[str, Any]] = []
    kind: str = "tabular"
    hyperparameters: Any
    trials: dict[str, Any]

    def _tried(self) -> list[dict[str, Any]]:
        return [self._active(t.hyperparameters.values) for t in self.trials.values()]

    def _active(self, values: dict[str, Any]) -> dict[str, Any]:
        return active_hyperparameters({k: v for k, v in values.items() if not k.startswith("tuner/")}, self.kind)

    def is_duplicate(self, values: dict[str, Any]) -> bool:
        return self._active(values) in self._tried()

    def _project(self, entry: dict[str, Any]) -> dict[str, Any] | None:
        hps = kt.HyperParameters()
        for hp in self.hyperparameters.space:
            hps.merge([hp])
            if not hps.is_active(hp):
                continue
            value = _project_value(hp, entry.get(hp.name, hp.default))
            if value is None:
                return None
            hps.values[hp.name] = value
        return dict(hps.values)

    def _random_values(self) -> dict[str, Any] | None:
        tried = self._tried()
        for entry in self.portfolio:
            values = self._project(entry)
            if values is not None and self._active(values) not in tried:
                return values
        for _ in range(50):
            values = super()._random_values()  # type: ignore[misc]
            if values is None or self._active(values) not in tried:
                return values
        return None


def _project_value(hp: Any, value: Any) -> Any:
    """``value`` made a possible value of Keras Tuner hyperparameter ``hp`` (None: cannot be)."""
    if isinstance(hp, kt.engine.hyperparameters.Fixed):
        return hp.value
    if isinstance(hp, kt.engine.hyperparameters.Boolean):
        return bool(value)
    if isinstance(hp, kt.engine.hyperparameters.Choice):
        if value in hp.values:
            return value
        numeric = all(isinstance(v, int | float) and not isinstance(v, bool) for v in hp.values)
        if numeric and isinstance(value, int | float) and not isinstance(value, bool):
            return min(hp.values, key=lambda v: abs(v - value))
        return None if hp.name == "backbone" else hp.default
    if isinstance(hp, kt.engine.hyperparameters.Int | kt.engine.hyperparameters.Float):
        clipped = min(max(float(value), float(hp.min_value)), float(hp.max_value))
        if hp.step:
            clipped = hp.min_value + round((clipped - hp.min_value) / hp.step) * hp.step
            clipped = min(clipped, hp.max_value)
        return round(clipped) if isinstance(hp, kt.engine.hyperparameters.Int) else float(clipped)
    return value


class PortfolioRandomSearchOracle(PortfolioMixin, kt.oracles.RandomSearchOracle):
    pass


class PortfolioHyperbandOracle(PortfolioMixin, kt.oracles.HyperbandOracle):
    pass


class PortfolioBayesianOracle(PortfolioMixin, kt.oracles.BayesianOptimizationOracle):
    """Bayesian optimisation after the portfolio; a proposal that repeats a trial (the Gaussian
    process can return the same point twice in a row) is replaced by an untried configuration."""

    def populate_space(self, trial_id: str) -> dict[str, Any]:
        proposal: dict[str, Any] = super().populate_space(trial_id)
        values = proposal.get("values")
        if proposal.get("status") == kt.engine.trial.TrialStatus.RUNNING and values and self.is_duplicate(values):
            replacement = self._random_values()
            if replacement is None:
                return {"status": kt.engine.trial.TrialStatus.STOPPED, "values": None}
            return {"status": kt.engine.trial.TrialStatus.RUNNING, "values": replacement}
        return proposal


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


class ReportingTuner(ReportingMixin, kt.Tuner):
    pass


class ReportingHyperband(ReportingMixin, kt.Hyperband):
    """Keras Hyperband's tuner (a promoted trial starts from the weights of the trial it continues)
    on an oracle built here."""

    def __init__(self, oracle: Any, **kwargs: Any) -> None:
        kt.Tuner.__init__(self, oracle=oracle, **kwargs)


def build_oracle(spec: SearchSpec, portfolio: list[dict[str, Any]]) -> Any:
    objective = kt.Objective(spec.objective, direction=spec.direction)
    if spec.tuner == "random":
        oracle: Any = PortfolioRandomSearchOracle(objective=objective, max_trials=spec.max_trials, seed=spec.seed)
    elif spec.tuner == "bayesian":
        # The portfolio takes the place of the random initial points.
        initial = min(spec.max_trials, max(3, len(portfolio)))
        oracle = PortfolioBayesianOracle(objective=objective, max_trials=spec.max_trials,
                                         num_initial_points=initial, seed=spec.seed)
    elif spec.tuner == "hyperband":
        oracle = PortfolioHyperbandOracle(objective=objective, max_epochs=max(2, spec.max_epochs), factor=3,
                                          seed=spec.seed)
    elif spec.tuner == "grid":
        return ResumableGridSearchOracle(objective=objective, max_trials=spec.max_trials, seed=spec.seed)
    else:
        raise ValueError(f"unknown tuner {spec.tuner!r}")
    oracle.portfolio = portfolio
    oracle.kind = spec.kind
    return oracle


def tuner_class(spec: SearchSpec) -> type:
    # Hyperband's tuner loads a promoted trial's weights from the trial it continues.
    return ReportingHyperband if spec.tuner == "hyperband" else ReportingTuner


def reconcile(oracle: Any, running_elsewhere: set[str], ending: str | None = None) -> None:
    """After a reload Keras Tuner queues every unfinished trial for a retry. Keep the ones live
    workers are running (as ongoing, under their own ids) and the one this worker is ending
    out of that queue; what is left are the trials of workers that died or handed back."""
    keep = running_elsewhere | ({ending} if ending else set())
    oracle._retry_queue = [t for t in oracle._retry_queue if t not in keep]
    for trial_id in running_elsewhere:
        if trial_id in oracle.trials:
            oracle.ongoing_trials[f"held-{trial_id}"] = oracle.trials[trial_id]


def give_up_on_crashing_trials(tuner: Any, attempts: dict[str, int], max_attempts: int) -> None:
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


def record_results(oracle: Any, trial_id: str, results: Any) -> None:
    """Report a finished trial's histories to the oracle (its score and best step)."""
    objective = oracle.objective
    oracle.update_trial(trial_id, kt_utils.convert_to_metrics_dict(results, objective),
                        step=kt_utils.get_best_step(results, objective))


def validation_predictions(tuner: Any, trial_id: str) -> np.ndarray | None:
    path = Path(tuner.oracle._get_trial_dir(trial_id)) / VALIDATION_PREDICTIONS
    return np.load(path) if path.exists() else None


def test_predictions(tuner: Any, trial_id: str) -> np.ndarray | None:
    path = Path(tuner.oracle._get_trial_dir(trial_id)) / TEST_PREDICTIONS
    return np.load(path) if path.exists() else None


def fit_record(tuner: Any, trial_id: str) -> dict[str, Any]:
    """{"seconds", "epochs", "anneal"} of a trial's kept training ({} for a trial from an older version;
    "anneal": its learning rate's final anneal before the deadline, or None)."""
    path = Path(tuner.oracle._get_trial_dir(trial_id)) / FIT_RECORD
    return dict(json.loads(path.read_text())) if path.exists() else {}


TrialStatus = kt.engine.trial.TrialStatus
FatalError = kt.errors.FatalError
FailedTrialError = kt.errors.FailedTrialError
