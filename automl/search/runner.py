"""Drives Keras Tuner one trial at a time, and builds the final model from the search.

Each call builds a fresh tuner on the job's folder with ``overwrite=False``, so the oracle's
history (and Bayesian optimisation's model of it) carries over between calls, and a call
runs exactly one trial. That keeps every Celery task short (well under the broker's
visibility timeout) and lets any worker continue a job.
"""

from __future__ import annotations

import gc
import logging
import math
import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import partial
from typing import Any

import keras
import numpy as np

from automl.errors import SearchFailed
from automl.hypermodels.base import SearchHyperModel
from automl.hypermodels.calibration import with_temperature
from automl.hypermodels.cnn import ImageCNN
from automl.hypermodels.ensemble import build_ensemble
from automl.hypermodels.mlp import TabularMLP
from automl.hypermodels.training import configure_gpus, gpu_visible, has_dropout
from automl.insight.calibration import calibrate, scaled
from automl.insight.importance import permutation_importance
from automl.insight.profile import training_profile
from automl.search import ensemble, portfolio, tuners
from automl.search.budget import EXHAUSTED, MAX_NETWORKS
from automl.search.data import PreparedData, prepare
from automl.search.evaluation import evaluate
from automl.search.reporter import NullReporter, SearchReporter
from automl.search.spec import SearchSpec

log = logging.getLogger(__name__)
if gpus := configure_gpus():  # before any model touches a GPU in this process
    log.info("training on %s (memory growth on)", ", ".join(gpus))

TUNER_PROJECT = "tuner"


def freeze_what_lives_on() -> None:
    """Once per process, before its first trial or final model (a worker's pool process: as it starts,
    ``tasks.worker``): what is alive then (TensorFlow, Keras and
    Keras Tuner as imported, some 450,000 objects) is moved out of the cyclic garbage collector's reach
    (``gc.freeze``). Keras Tuner and Keras run a full collection at every model build and session reset,
    three a trial step, and each had to walk all of those objects: 0.22-0.31 s each on a 2-core CPU,
    0.02-0.08 s after (``docs/benchmarks.md``, trials per minute). Reference counting still frees a
    frozen object that is dropped; only a frozen object that dies inside a reference cycle stays, so the
    collection before the freeze leaves no garbage behind, and nothing of a model is alive yet."""
    if gc.get_freeze_count() == 0:
        gc.collect()
        gc.freeze()


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
        "max_epochs": spec.max_epochs,
        "target_transforms": data.target_transforms,
        "defaults": data.defaults,
        "passes_per_epoch": data.passes_per_epoch,
    }
    if spec.kind == "image":
        assert spec.image_size is not None
        # Mixed precision pays off on GPUs only; on a CPU it would just be slower.
        return ImageCNN(spec.task, image_size=spec.image_size, channels=spec.channels, weights_dir=spec.weights_dir,
                        mixed_precision=spec.mixed_precision and gpu_visible(), **common)
    return TabularMLP(data.features, spec.task, **common)


def build_tuner(spec: SearchSpec, data: PreparedData, reporter: SearchReporter) -> Any:
    """A tuner on the job's folder, reloaded from its files when they exist (``tuner0.json``); its
    oracle proposes the portfolio first (unless the job turned it off)."""
    try:
        oracle = tuners.build_oracle(spec, portfolio.entries(spec.kind, spec.task) if spec.portfolio else [])
    except ValueError as exc:
        raise SearchFailed(f"Unknown tuner '{spec.tuner}'.") from exc
    tuner = tuners.tuner_class(spec)(
        oracle=oracle, hypermodel=make_hypermodel(spec, data), executions_per_trial=spec.executions_per_trial,
        directory=str(spec.work_dir), project_name=TUNER_PROJECT, overwrite=False,
    )
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


def run_trial_step(spec: SearchSpec, reporter: SearchReporter, lane: int = 0, max_attempts: int = 2) -> StepResult:
    """Run the job's next trial (a trial a dead worker left unfinished comes first).

    Creating and ending a trial read and write Keras Tuner's files, so both happen inside
    ``reporter.exclusive()`` on a tuner freshly reloaded from them; the training between
    them writes only the trial's own checkpoint. Workers on several lanes therefore share
    one search state without tearing it, and the oracle (Bayesian optimisation included)
    sees every lane's results.
    """
    freeze_what_lives_on()
    data = prepare(spec)
    tuner_id = f"lane{lane}"
    with reporter.exclusive() as claims:
        keras.utils.set_random_seed(spec.seed)
        tuner = build_tuner(spec, data, reporter)
        tuner.test_inputs = data.x_test
        tuners.reconcile(tuner.oracle, claims.running_elsewhere)
        tuners.give_up_on_crashing_trials(tuner, claims.attempts, max_attempts)
        trial = tuner.oracle.create_trial(tuner_id)
        if trial.status == tuners.TrialStatus.STOPPED:
            tuner.oracle.save()
            return StepResult("exhausted", stop_reason=EXHAUSTED)
        if trial.status == tuners.TrialStatus.IDLE:
            return StepResult("idle")
        tuner.save()  # the oracle and the tuner file, which makes the next tuner reload them
        tuner.on_trial_begin(trial)

    fit_args = (data.x_train, data.y_train)
    fit_kwargs = {"validation_data": (data.x_val, data.y_val), "epochs": spec.max_epochs, "verbose": 0}
    results, status, message = None, tuners.TrialStatus.COMPLETED, None
    try:
        results = tuner.run_trial(trial, *fit_args, **fit_kwargs)
    except tuners.FatalError as exc:
        raise SearchFailed(f"The search stopped: {str(exc).strip().splitlines()[-1]}") from exc
    except Exception as exc:  # a bad combination, out of memory twice: the trial fails, the search goes on
        log.warning("trial %s failed: %s", trial.trial_id, exc)
        failed = isinstance(exc, tuners.FailedTrialError)
        status = tuners.TrialStatus.FAILED if failed else tuners.TrialStatus.INVALID
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
        tuners.reconcile(fresh.oracle, claims.running_elsewhere, ending=trial.trial_id)
        if results is not None:
            tuners.record_results(fresh.oracle, trial.trial_id, results)
        ended = fresh.oracle.trials[trial.trial_id]
        ended.status = status
        ended.message = message
        fresh.on_trial_end(ended)
    return StepResult("trial_ended", trial.trial_id, tuner.stop_reason)


@dataclass
class Member:
    """One model of the final ensemble (or the only one)."""

    trial_id: str
    weight: float
    hyperparameters: dict[str, Any]
    epochs: int  # epochs it was trained for: its trial's best epoch + 1 (after completion for Hyperband)
    refit: bool  # retrained on every row after the test metrics were taken (tables: served beside its trial's weights)
    fine_tune_passes: int = 0  # passes over every row its trial's weights were trained on afterwards
    retrainings: int = 0  # how many times it was retrained on every row, each with its own seed

    @property
    def networks(self) -> int:
        """Networks a table model serves for it (``served_members``): its retrainings and its trial's weights."""
        return self.retrainings + 1 if self.refit else 1

    def card(self) -> dict[str, Any]:
        return {"trial_id": self.trial_id, "weight": round(self.weight, 4), "epochs": self.epochs,
                "refit": self.refit, "retrainings": self.retrainings, "fine_tune_passes": self.fine_tune_passes,
                "hyperparameters": self.hyperparameters}


# A table model's member retrained on every row is served as the mean of that retraining and its trial's
# own weights, in equal shares of its weight. Measured over 28 tables at 60 s (benchmarks/results/
# quality-20261203-0222.json; the 15 whose members were all retrained): the mean of the two beat the retraining
# alone by 0.0056 on average (9 better, 2 worse, 4 equal; mroz +0.033, psid +0.018), and the trial's weights
# alone by 0.002. The retraining has no validation rows left to stop on, and one draw of it misses on some
# tables (mroz, psid, train: 0.01-0.03 below the trial it repeats); averaging takes the spread out. More
# retrainings of a member (the ``retrainings`` option, each its own seed) join the mean in equal shares:
# on 22 tables of 49-602 rows, 4 retrainings against 1 gained 0.012 on average (benchmarks/bagging.py).


def served_members(members: list[Member], models: list[Any], searched: list[Any], kind: str,
                   more: dict[int, list[Any]] | None = None) -> list[tuple[int, Any, float]]:
    """(member's index, model, weight) of each network the final model averages: for table models, a
    retrained member's retraining (and its retrainings with other seeds, ``more``) beside its trial's own
    weights, in equal shares of its weight; any other member as it is. Image models serve the retraining
    alone: the gain was measured on tables, and an image network costs far more per call."""
    out: list[tuple[int, Any, float]] = []
    for number, (member, model, own) in enumerate(zip(members, models, searched, strict=True)):
        if member.refit and kind == "tabular":
            nets = [model, *(more or {}).get(number, []), own]
            out += [(number, net, member.weight / len(nets)) for net in nets]
        else:
            out.append((number, model, member.weight))
    return out


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
    members: list[Member] = field(default_factory=list)
    ensemble: dict[str, Any] | None = None  # how the ensemble was chosen (None: a single model)
    importance: dict[str, Any] | None = None  # permutation importance on the test rows (tables)
    calibration: dict[str, Any] | None = None  # reliability before and after temperature scaling (classifiers)
    profile: list[dict[str, Any]] | None = None  # per input column, what the training rows held (tables)

    @property
    def refit(self) -> bool:
        """Whether any member learned from every row after the test metrics were taken (retrained or fine-tuned)."""
        return any(m.refit or m.fine_tune_passes for m in self.members)

    @property
    def refit_rows(self) -> int | None:
        """Rows the served model was retrained or fine-tuned on: every row of the split (None: neither)."""
        return sum(self.split_sizes.values()) if self.refit else None

    def card(self) -> dict[str, Any]:
        """What is known of the trained model, declared once: the model record takes every entry as a
        column of the same name (``tasks.search``), and ``metadata`` writes them beside the .keras file."""
        return {
            "input_schema": self.input_schema,
            "hyperparameters": self.hyperparameters,
            "validation_metrics": self.validation_metrics,
            "test_metrics": self.test_metrics,
            "confusion_matrix": self.confusion_matrix,
            "refit": self.refit,
            "refit_rows": self.refit_rows,
            "members": [m.card() for m in self.members],
            "ensemble": self.ensemble,
            "supports_uncertainty": self.supports_uncertainty,
            "split_sizes": self.split_sizes,
            "importance": self.importance,
            "calibration": self.calibration,
            "profile": self.profile,
        }

    def metadata(self, spec: SearchSpec, model_id: str) -> dict[str, Any]:
        """What the registry keeps beside the .keras file (and serving reads back): the card, and how
        to feed the model."""
        return {
            "model_id": model_id,
            "job_id": spec.job_id,
            "kind": spec.kind,
            "task": spec.task,
            "target": spec.target,
            "targets": spec.targets,
            "classes": spec.classes,
            "features": self.features,
            "image": {"size": spec.image_size, "channels": spec.channels} if spec.kind == "image" else None,
            **self.card(),
        }


def image_input_schema(spec: SearchSpec) -> list[dict[str, Any]]:
    return [{"name": "image", "type": "image", "channels": spec.channels, "size": [spec.image_size, spec.image_size],
             "description": "A PNG, JPEG, BMP, GIF or WebP file of any size (multipart), or {\"b64\": "
                            "<base64 of the file>} (JSON); it is converted to "
                            f"{'grayscale' if spec.channels == 1 else 'RGB'} and resized by the model."}]


def _predict(model: Any, x: dict[str, Any], data: PreparedData) -> np.ndarray:
    return np.asarray(model.predict(data.pipeline(x, None, data.eval_batch_size), verbose=0), dtype="float64")


def _concat(*parts: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}


def _every_row(data: PreparedData) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Train, validation and test rows together: what a refit or a fine-tune trains on."""
    return (_concat(data.x_train, data.x_val, data.x_test),
            np.concatenate([data.y_train, data.y_val, data.y_test]))


class _Clock:
    """Seconds left before the job's deadline (None: no time budget), less a margin for saving."""

    SAVE_MARGIN_S = 2.0

    def __init__(self, deadline: datetime | None) -> None:
        self.deadline = deadline

    def left(self) -> float | None:
        if self.deadline is None:
            return None
        return (self.deadline - datetime.now(UTC)).total_seconds() - self.SAVE_MARGIN_S

    def allows(self, seconds: float) -> bool:
        left = self.left()
        return left is None or seconds <= left


def _fit_estimate(record: dict[str, Any], epochs: int, rows_ratio: float) -> float:
    """Seconds to train ``epochs`` epochs on ``rows_ratio`` times a trial's rows, from the trial's own fit
    (whose first seconds went to building and tracing the model)."""
    per_epoch = _seconds_per_epoch(record)
    return math.inf if per_epoch is None else TRACE_S + per_epoch * epochs * rows_ratio


def _seconds_per_epoch(record: dict[str, Any]) -> float | None:
    """A trial's seconds per epoch after building and tracing (None: no record of its fit)."""
    if not record.get("seconds") or not record.get("epochs"):
        return None
    return max(0.0, float(record["seconds"]) - TRACE_S) / int(record["epochs"])


TRACE_S = 3.0  # building and tracing a model before its first step, on a 2-core CPU
# Where retraining a member from scratch on every row does not fit the time left, its trial's weights are
# trained on over every row instead, for as many passes as fit (up to FINE_TUNE_PASSES; fewer than
# FINE_TUNE_MIN_PASSES is not worth it). Measured on the best trial of 60 s searches (``benchmarks.fine_tune``,
# held out; trial's weights, 10 / 20 / 40 / 80 passes, full retraining): star 0.904, 0.910 / 0.916 / 0.920 /
# 0.919, 0.916; wages 0.539, 0.578 / 0.584 / 0.589 / 0.596, 0.584; computers 0.9387, 0.9395 / 0.9399 / 0.9402
# / 0.9408, 0.9405; males 0.787, 0.789 / 0.791 / 0.794 / 0.795, 0.794 (docs/benchmarks.md). 80 passes took
# 8-17 s, a retraining 4-23 s; the passes past what the time left allows never run.
FINE_TUNE_PASSES, FINE_TUNE_MIN_PASSES = 80, 5


def _fine_tune_passes(record: dict[str, Any], data: PreparedData, rows_ratio: float, left: float | None) -> int:
    """Passes over every row a fine-tune can take in ``left`` seconds (0: too few to be worth it)."""
    per_epoch = _seconds_per_epoch(record)
    if left is None or per_epoch is None or left <= TRACE_S:
        return 0  # building the model takes TRACE_S whatever the trial's pace (0 s per epoch when below it)
    per_pass = per_epoch / max(1, data.passes_per_epoch) * rows_ratio
    passes = FINE_TUNE_PASSES if per_pass <= 0 else min(FINE_TUNE_PASSES, int((left - TRACE_S) / per_pass))
    return passes if passes >= FINE_TUNE_MIN_PASSES else 0


def _select(spec: SearchSpec, tuner: Any, completed: list[Any], data: PreparedData
            ) -> tuple[list[tuple[Any, float]], dict[str, Any] | None]:
    """The members and their weights: greedy ensemble selection over the best trials' validation
    predictions, kept only when it beats the best single trial (else the best trial alone), then
    shrunk towards an equal blend of the two best trials as far as the validation rows are few
    (``ensemble.shrink``)."""
    best = completed[0]
    if spec.ensemble_size < 2 or len(completed) < 2:
        return [(best, 1.0)], None
    candidates = completed[: spec.ensemble_size * ensemble.CANDIDATES_PER_MEMBER]
    predictions = {}
    for trial in candidates:
        found = tuners.validation_predictions(tuner, trial.trial_id)
        if found is not None and len(found) == len(data.y_val):
            predictions[trial.trial_id] = found
    if best.trial_id not in predictions or len(predictions) < 2:
        return [(best, 1.0)], None
    choice = ensemble.choose(predictions, data.y_val, spec.objective, spec.task, spec.ensemble_size)
    served = np.sum([w * np.asarray(predictions[i], dtype="float64") for i, w in choice.weights.items()], axis=0)
    info = {"objective": spec.objective, "validation_loss": round(choice.selection.loss, 6),
            "best_single_validation_loss": round(choice.selection.single_loss, 6), "candidates": len(predictions),
            "kept": choice.kept, "prior_share": round(ensemble.prior_share(len(data.y_val)), 4),
            "served_validation_loss": round(ensemble.loss(spec.objective, spec.task, data.y_val, served), 6)}
    by_id = {t.trial_id: t for t in candidates}
    return [(by_id[i], w) for i, w in choice.weights.items()], info


IMPORTANCE_SHARE = 0.25  # of the time left before the deadline, at most, for permutation importance


def _importance(spec: SearchSpec, data: PreparedData, models: list[Any], members: list[Member], clock: _Clock
                ) -> dict[str, Any] | None:
    """Permutation importance of the served blend (before any refit, so the test rows are unseen), on
    the test rows; None for images or when no time is left."""
    if spec.kind != "tabular" or not data.features or len(data.y_test) < 2:
        return None
    left = clock.left()
    if left is not None and left <= 1.0:
        log.warning("no time left for permutation importance")
        return None

    def predict(x: dict[str, np.ndarray]) -> np.ndarray:
        return np.sum([m.weight * _predict(model, x, data) for model, m in zip(models, members, strict=True)], axis=0)

    return permutation_importance(predict, data.x_test, data.y_test, spec.task,
                                  [(f.key, f.name) for f in data.features], spec.seed,
                                  seconds=None if left is None else IMPORTANCE_SHARE * left)


def _load(tuner: Any, trial: Any) -> Any:
    with warnings.catch_warnings():
        # The checkpoint also holds the search's optimizer state, which a model that only
        # predicts (or is rebuilt for refit) does not need.
        warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
        return tuner.load_model(trial)


def _complete_hyperband(spec: SearchSpec, tuner: Any, trial: Any, model: Any, data: PreparedData,
                        clock: _Clock) -> tuple[Any, int]:
    """A Hyperband trial stopped by its round's epoch cap trains on, with early stopping, up to
    max_epochs, so the final model is never an under-trained early-rung one; (model, epochs)."""
    hp = trial.hyperparameters
    capped = int(hp.values.get("tuner/epochs", spec.max_epochs))
    epochs = int(trial.best_step or 0) + 1
    if capped >= spec.max_epochs:
        return model, epochs
    record = tuners.fit_record(tuner, trial.trial_id)
    if not clock.allows(_fit_estimate(record, spec.max_epochs - capped, 1.0)):
        log.warning("no time left to train Hyperband trial %s past its %d epochs", trial.trial_id, capped)
        return model, epochs
    fitted = tuner.hypermodel.fit(hp, model, data.x_train, data.y_train, validation_data=(data.x_val, data.y_val),
                                  epochs=spec.max_epochs, initial_epoch=capped, verbose=0)
    scores = fitted.history.get(spec.objective, [])
    if scores:
        pick = np.nanargmin if spec.direction == "min" else np.nanargmax
        epochs = capped + int(pick(np.asarray(scores, dtype="float64"))) + 1
    return model, epochs


def _refit(spec: SearchSpec, tuner: Any, trial: Any, epochs: int, data: PreparedData, number: int, run: str,
           draw: int = 0) -> tuple[Any, list[dict[str, float | None]]]:
    """The trial's hyperparameters retrained on every row (train, validation and test) for ``epochs``, on
    the trial's learning-rate curve; ``run``: its TensorBoard run; ``draw``: which of the member's
    retrainings (each its own seed)."""
    hypermodel = tuner.hypermodel
    hp = trial.hyperparameters
    keras.utils.set_random_seed(spec.seed + 1000 + number + 100 * draw)
    x_all, y_all = _every_row(data)
    hypermodel.n_fit = len(y_all)
    try:
        model = hypermodel.build(hp)
        fitted = hypermodel.fit(hp, model, x_all, y_all, epochs=epochs, verbose=0,
                                callbacks=[tuners.epoch_summaries(spec, run)],
                                anneal=tuners.fit_record(tuner, trial.trial_id).get("anneal"))
    finally:
        hypermodel.n_fit = hypermodel.n_train
    return model, _history(fitted)


def _history(fitted: Any) -> list[dict[str, float | None]]:
    """A final training's per-epoch metrics (Keras' ``History``), learning rates left out."""
    return [
        {"epoch": i, **{k: tuners.finite(v[i]) for k, v in fitted.history.items() if not k.startswith("learning_rate")}}
        for i in range(len(fitted.history.get("loss", [])))
    ]


def _fine_tune(spec: SearchSpec, tuner: Any, trial: Any, model: Any, passes: int, data: PreparedData, number: int,
               run: str) -> None:
    """The trial's trained ``model`` fine-tuned in place on every row (``SearchHyperModel.fine_tune``); its
    passes go to the TensorBoard run ``run``."""
    keras.utils.set_random_seed(spec.seed + 1000 + number)
    x_all, y_all = _every_row(data)
    tuner.hypermodel.fine_tune(trial.hyperparameters, model, x_all, y_all, passes,
                               callbacks=[tuners.epoch_summaries(spec, run)])


def _fine_tune_share(weight: float, left: float, lighter: list[tuple[float, float]],
                     passes_in: Callable[[float], int]) -> int:
    """Passes for a member that cannot be retrained in its turn (``passes_in(seconds)``: how many fit in
    them, 0 when too few): the time the lighter members' retrainings that fit after it (``lighter``:
    (seconds, weight) each, in turn) leave out of ``left``, or, when that is too short, all of ``left`` if
    the member weighs more than those lighter members together (its fine-tune improves more of the
    served blend than their retrainings would; a fine-tune gains about what a retraining does,
    ``FINE_TUNE_PASSES``' measurements)."""
    kept = kept_weight = 0.0
    for seconds, weight_of in lighter:
        if kept + seconds <= left:
            kept, kept_weight = kept + seconds, kept_weight + weight_of
    passes = passes_in(left - kept)
    if not passes and weight > kept_weight:
        passes = passes_in(left)
    return passes


def _train_on_every_row(spec: SearchSpec, tuner: Any, chosen: list[tuple[Any, float]], members: list[Member],
                        models: list[Any], searched: list[Any], data: PreparedData, clock: _Clock
                        ) -> tuple[list[dict[str, float | None]] | None, dict[int, list[Any]]]:
    """``refit``: each member, heaviest first, retrained on every row (``models[n]`` replaced) when that fits the
    time left, else its trial's weights fine-tuned in place over every row, for the passes
    ``_fine_tune_share`` gives it; a member that got neither in its turn is fine-tuned with what is left
    at the end. Then tables' retrained members are retrained again with other seeds (``_retrain_more``),
    and the time those leave fine-tunes their trials' own weights (``searched[n]``, served beside them),
    heaviest first. Returns the first retraining's history and {member's index: its retrainings after the
    first}."""
    rows_ratio = sum(data.split_sizes.values()) / max(1, data.split_sizes["train"])
    records = [tuners.fit_record(tuner, trial.trial_id) for trial, _ in chosen]
    estimates = [_fit_estimate(record, member.epochs, rows_ratio) for record, member in zip(records, members,
                                                                                              strict=True)]
    order = sorted(range(len(members)), key=lambda n: -members[n].weight)
    history = None

    def fine_tune(number: int, passes: int) -> None:  # its trial's weights: models[n] too unless retrained
        log.info("fine-tuning member %s's trial weights over every row, %d passes (a retraining needs ~%.0f s)",
                 chosen[number][0].trial_id, passes, estimates[number])
        _fine_tune(spec, tuner, chosen[number][0], searched[number], passes, data, number,
                   f"final_fine_tune_member_{number}")
        members[number].fine_tune_passes = passes  # its history stays its trial's epochs

    for at, number in enumerate(order):
        member = members[number]
        if clock.allows(estimates[number]):
            run = "final_refit" if history is None else f"final_refit_member_{number}"
            models[number], refit_history = _refit(spec, tuner, chosen[number][0], member.epochs, data, number, run)
            member.refit, member.retrainings = True, 1
            history = history or refit_history
            continue
        left = clock.left()
        lighter = [(estimates[n], members[n].weight) for n in order[at + 1:]]
        if left is not None and (passes := _fine_tune_share(
                member.weight, left, lighter, partial(_fine_tune_passes, records[number], data, rows_ratio))):
            fine_tune(number, passes)
    for number in order:
        if members[number].refit or members[number].fine_tune_passes:
            continue
        if passes := _fine_tune_passes(records[number], data, rows_ratio, clock.left()):
            fine_tune(number, passes)
        else:
            log.warning("no time left to retrain member %s on every row (needs ~%.0f s) or to fine-tune it",
                        chosen[number][0].trial_id, estimates[number])
    if spec.kind != "tabular":
        return history, {}
    more = _retrain_more(spec, tuner, chosen, members, data, rows_ratio, clock)
    for number in order:  # retrained members: their trials' own weights, served beside, with the time left
        if members[number].refit and not members[number].fine_tune_passes and (
                passes := _fine_tune_passes(records[number], data, rows_ratio, clock.left())):
            fine_tune(number, passes)
    return history, more


def _retrain_more(spec: SearchSpec, tuner: Any, chosen: list[tuple[Any, float]], members: list[Member],
                  data: PreparedData, rows_ratio: float, clock: _Clock) -> dict[int, list[Any]]:
    """Each retrained member retrained again with other seeds, round by round (heaviest member first), up
    to ``spec.retrainings`` times in all, while the time left allows and the served model averages fewer
    than ``MAX_NETWORKS`` networks: {member's index: the new networks}."""
    more: dict[int, list[Any]] = {}
    retrained = sorted((n for n, m in enumerate(members) if m.refit), key=lambda n: -members[n].weight)
    estimates = {n: _fit_estimate(tuners.fit_record(tuner, chosen[n][0].trial_id), members[n].epochs, rows_ratio)
                 for n in retrained}
    for draw in range(1, spec.retrainings):
        for number in retrained:
            member = members[number]
            if sum(m.networks for m in members) >= MAX_NETWORKS or not clock.allows(estimates[number]):
                continue
            model, _ = _refit(spec, tuner, chosen[number][0], member.epochs, data, number,
                              f"final_refit_member_{number}_{draw}", draw)
            more.setdefault(number, []).append(model)
            member.retrainings += 1
    return more


def train_final_model(spec: SearchSpec, trial_id: str | None = None) -> TrainedModel:
    """The served model: the best trial (of those tied with the best on validation, the earliest:
    ``tuners.ranked``), or a weighted ensemble of the best trials when that does better on the
    validation rows; scored once on the held-out test split; then, with ``refit``,
    each member retrained on every row with its own hyperparameters and epoch count (as far as
    the job's time budget allows: a member without time for it keeps its trial's weights, fine-tuned
    when that fits) and, for tables, served beside its trial's own weights (``served_members``).

    ``trial_id``: that trial's own weights alone, as they are (the best model so far while the
    search runs): no ensemble, no refit, no permutation importance."""
    freeze_what_lives_on()
    data = prepare(spec)
    clock = _Clock(spec.deadline)
    tuner = build_tuner(spec, data, NullReporter())
    completed = [t for t in tuners.ranked(tuner.oracle, spec.task) if trial_id in (None, t.trial_id)]
    if not completed:
        raise SearchFailed(
            "No trial completed, so there is no model. Check the trials' messages in the leaderboard."
            if trial_id is None else f"Trial {trial_id} has no completed score to serve."
        )
    if trial_id is not None:
        spec = replace(spec, ensemble_size=1, refit=False)
    best = completed[0]
    labels = spec.targets if spec.task == "multilabel" else spec.classes
    chosen, selection = _select(spec, tuner, completed, data)

    models, members, outputs = [], [], []
    for trial, weight in chosen:
        model = _load(tuner, trial)
        epochs = int(trial.best_step or 0) + 1
        kept = (tuners.validation_predictions(tuner, trial.trial_id), tuners.test_predictions(tuner, trial.trial_id))
        if spec.tuner == "hyperband" and trial_id is None:
            model, completed_epochs = _complete_hyperband(spec, tuner, trial, model, data, clock)
            if completed_epochs != epochs:
                epochs, kept = completed_epochs, (None, None)  # trained on: its kept outputs are stale
        # Outputs the trial kept (the same weights), else predicted now.
        outputs.append([saved if saved is not None and len(saved) == len(y) else _predict(model, x, data)
                        for saved, x, y in zip(kept, (data.x_val, data.x_test), (data.y_val, data.y_test),
                                               strict=True)])
        models.append(model)
        members.append(Member(trial.trial_id, weight, tuners.active_hyperparameters(trial.hyperparameters.values,
                                                                                    spec.kind), epochs, False))

    def blend(split: int) -> np.ndarray:
        return np.sum([m.weight * np.asarray(out[split], dtype="float64")
                       for m, out in zip(members, outputs, strict=True)], axis=0)

    val_output, test_output = blend(0), blend(1)
    calibration = None
    if spec.task != "regression":
        calibration = calibrate(spec.task, spec.calibrate, data.y_val, val_output, data.y_test, test_output, spec.seed)
        if calibration.applied:
            val_output, test_output = (scaled(spec.task, out, calibration.temperature)
                                       for out in (val_output, test_output))
    validation = evaluate(spec.task, data.y_val, val_output, labels)
    test = evaluate(spec.task, data.y_test, test_output, labels)
    importance = _importance(spec, data, models, members, clock) if trial_id is None else None

    history = None
    more: dict[int, list[Any]] = {}  # a member's retrainings after its first, each with its own seed
    searched = list(models)  # the trials' own weights: a retrained member is served beside them
    if spec.refit:
        history, more = _train_on_every_row(spec, tuner, chosen, members, models, searched, data, clock)
    served = [(tuner.hypermodel.serving_model(chosen[number][0].hyperparameters, model), weight)
              for number, model, weight in served_members(members, models, searched, spec.kind, more)]
    final = served[0][0] if len(served) == 1 else build_ensemble([m for m, _ in served], [w for _, w in served])
    if calibration is not None and calibration.applied:
        final = with_temperature(final, calibration.temperature, spec.task)
    return TrainedModel(
        model=final,
        best_trial_id=best.trial_id,
        hyperparameters=tuners.active_hyperparameters(best.hyperparameters.values, spec.kind),
        history=history,
        validation_metrics=validation.metrics,
        test_metrics=test.metrics,
        confusion_matrix=test.confusion_matrix,
        input_schema=image_input_schema(spec) if spec.kind == "image" else [f.public_schema() for f in data.features],
        split_sizes=data.split_sizes,
        supports_uncertainty=has_dropout(final),
        features=[f.to_dict() for f in data.features],
        members=members,
        ensemble=selection,
        importance=importance,
        calibration=calibration.report if calibration is not None else None,
        profile=training_profile(data.features, data.x_train) if spec.kind == "tabular" else None,
    )
