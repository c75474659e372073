"""What every hypermodel shares: the job's task and narrowing, and training with the search's callbacks.

``fit`` trains with early stopping on the objective, the learning-rate schedule's callbacks,
balanced class weights and a retry at half the batch size when the device runs out of memory.
A hypermodel supplies ``build`` and its input ``pipeline`` (arrays or image files -> tf.data).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import keras
import keras_tuner as kt
import numpy as np
import tensorflow as tf

from automl.hypermodels import training
from automl.hypermodels.declare import SpaceUser
from automl.preprocessing.targets import TargetTransform

Pipeline = Callable[..., tf.data.Dataset]  # (x, y, batch_size, shuffle_seed=, sample_weight=) -> dataset
FINE_TUNE_LR = 0.1  # of the trial's learning rate, where a fine-tune on every row starts


class SearchHyperModel(SpaceUser, kt.HyperModel):
    # Validation rows up to this many are scored as one batch in training (tables: see TabularMLP).
    one_batch_validation_rows = 0

    def __init__(
        self,
        name: str,
        task: str,
        n_outputs: int,
        objective: str,
        direction: str,
        patience: int,
        n_train: int,
        overrides: dict[str, dict[str, Any]] | None = None,
        target_mean: float = 0.0,
        target_std: float = 1.0,
        seed: int = 0,
        pipeline: Pipeline = training.make_dataset,
        eval_batch_size: int = training.EVAL_BATCH_SIZE,
        max_epochs: int = 50,
        target_transforms: dict[str, TargetTransform] | None = None,
        defaults: dict[str, Any] | None = None,
        passes_per_epoch: int = 1,
    ) -> None:
        super().__init__(name=name, tunable=True)
        self.task = task
        self.n_outputs = n_outputs
        self.objective = objective
        self.direction = direction
        self.patience = patience
        self.n_train = n_train
        self.overrides = overrides or {}
        self.target_mean = target_mean
        self.target_std = target_std
        self.seed = seed
        self.pipeline = pipeline
        self.eval_batch_size = eval_batch_size
        self.max_epochs = max_epochs
        self.passes_per_epoch = passes_per_epoch  # an epoch passes this often over the rows (small tables)
        self.n_fit = n_train  # rows being fitted now: the training split, or every row in a refit
        self.target_transforms = target_transforms or {}
        self.defaults = defaults or {}
        self.oom_fallbacks: list[tuple[int, int]] = []  # (asked, used) batch sizes after running out of memory
        # Seconds until the latest the running trial may run, while a trial of a job with a time budget runs.
        self.time_left: Callable[[], float | None] | None = None
        self._cosine: training.CosineSchedule | None = None  # the last fit's cosine decay

    def compile(self, hp: kt.HyperParameters, model: keras.Model, loss: Any, metrics: list[Any]) -> None:
        """The optimizer and learning-rate schedule the trial's hyperparameters name."""
        batch_size = int(self._hp(hp, "batch_size"))
        batches = training.steps_per_epoch(self.n_fit * self.passes_per_epoch, batch_size)  # as the pipeline batches
        per_call = training.steps_per_execution(batches)
        lr = training.learning_rate_schedule(
            str(self._hp(hp, "lr_schedule")), float(self._hp(hp, "learning_rate")), self._hp(hp, "lr_decay_rate"),
            self._hp(hp, "lr_decay_epochs"), training.whole_executions(batches, per_call), self.max_epochs,
        )
        optimizer = training.make_optimizer(str(self._hp(hp, "optimizer")), lr, self._hp(hp, "momentum"),
                                            self._hp(hp, "nesterov"), self._hp(hp, "weight_decay"))
        self._hp(hp, "class_weight")  # used in fit
        model.compile(optimizer=optimizer, loss=loss, metrics=metrics)  # steps per call: set by fit

    def target_transform(self, hp: kt.HyperParameters) -> TargetTransform:
        """The regression target transform this trial trains with (standardisation alone by default)."""
        kind = self._hp(hp, "target_transform") if self.task == "regression" else None
        fitted = self.target_transforms.get(str(kind)) if kind else None
        return fitted or TargetTransform("none", self.target_mean, self.target_std)

    def fit(
        self,
        hp: kt.HyperParameters,
        model: keras.Model,
        x: dict[str, np.ndarray],
        y: np.ndarray,
        validation_data: tuple[dict[str, np.ndarray], np.ndarray] | None = None,
        **kwargs: Any,
    ) -> Any:
        """Train with early stopping on the objective; without validation data (a refit), on the loss.
        ``anneal``: a cosine decay's final anneal (a refit follows its trial's curve; see
        ``training.CosineSchedule``)."""
        values = hp.values
        callbacks = list(kwargs.pop("callbacks", []))
        anneal = kwargs.pop("anneal", None)
        monitor, mode = (self.objective, self.direction) if validation_data is not None else ("loss", "min")
        if validation_data is not None:
            callbacks.append(
                keras.callbacks.EarlyStopping(
                    monitor=monitor, mode=mode, patience=self.patience, restore_best_weights=True
                )
            )
        schedules = training.schedule_callbacks(
            values.get("lr_schedule"), values.get("lr_decay_rate"), values["learning_rate"], monitor, mode,
            self.patience, self.max_epochs, self.time_left, anneal,
        )
        callbacks += schedules
        self._cosine = next((c.schedule for c in schedules
                             if isinstance(getattr(c, "schedule", None), training.CosineSchedule)), None)
        kwargs.setdefault("verbose", 0)
        kwargs["shuffle"] = False  # the dataset shuffles itself
        weights = self._sample_weights(values, y)
        batch_size = int(values["batch_size"])
        validation_rows = None
        if validation_data is not None:
            whole = min(len(validation_data[1]), self.one_batch_validation_rows)
            validation_rows = self.pipeline(*validation_data, max(self.eval_batch_size, whole))

        def run(model: keras.Model, batch_size: int) -> Any:
            train, steps = training.endless(self.pipeline(x, y, batch_size, shuffle_seed=self.seed,
                                                          sample_weight=weights, passes=self.passes_per_epoch))
            steps = self._steps_per_call(model, steps)
            validation, validation_steps = validation_rows, None
            if validation is not None and model.steps_per_execution == 1:
                # Endless, as the training rows. Not when a call runs several steps: it would run them all on
                # the endless rows, scoring some twice; a finite dataset ends the call at its last batch.
                validation, validation_steps = training.endless(validation)
            return model.fit(train, validation_data=validation, steps_per_epoch=steps,
                             validation_steps=validation_steps, callbacks=callbacks, **kwargs)

        try:
            return run(model, batch_size)
        except training.OUT_OF_MEMORY:
            if batch_size < 2:
                raise
        # Out of (GPU) memory: once more with half the batch, on a freshly built model, with the
        # callbacks' bests forgotten so that no checkpoint of the abandoned run survives.
        smaller = batch_size // 2
        self.oom_fallbacks.append((batch_size, smaller))
        for callback in callbacks:
            if hasattr(callback, "best_value") and hasattr(callback, "objective"):
                callback.best_value = float("-inf") if callback.objective.direction == "max" else float("inf")
        return run(self.build(hp), smaller)

    def fine_tune(self, hp: kt.HyperParameters, model: keras.Model, x: dict[str, np.ndarray], y: np.ndarray,
                  passes: int, **kwargs: Any) -> Any:
        """A trained model trained on for ``passes`` passes over ``x``/``y`` (every row, where retraining from
        scratch does not fit the time left): a fresh optimizer of the trial's kind from a tenth of its
        learning rate, decaying to zero along a cosine, so the weights move towards the rows they had
        not seen without leaving the trial's minimum (no validation rows are left to stop on)."""
        values = hp.values
        peak = float(values["learning_rate"]) * FINE_TUNE_LR
        optimizer = training.make_optimizer(str(self._hp(hp, "optimizer")), peak, self._hp(hp, "momentum"),
                                            self._hp(hp, "nesterov"), self._hp(hp, "weight_decay"))
        train, steps = training.endless(self.pipeline(x, y, int(values["batch_size"]), shuffle_seed=self.seed + 1,
                                                      sample_weight=self._sample_weights(values, y)))
        model.compile(optimizer=optimizer, loss=model.loss)
        steps = self._steps_per_call(model, steps)
        callbacks = list(kwargs.pop("callbacks", []))
        callbacks.append(keras.callbacks.LearningRateScheduler(
            lambda epoch: peak * 0.5 * (1.0 + math.cos(math.pi * epoch / passes))))
        kwargs.setdefault("verbose", 0)
        return model.fit(train, epochs=passes, steps_per_epoch=steps, callbacks=callbacks, shuffle=False, **kwargs)

    @staticmethod
    def _steps_per_call(model: keras.Model, steps: int | None) -> int | None:
        """Sets how many of an epoch's ``steps`` a model not yet trained since it was compiled runs per call into
        its graph (``training.steps_per_execution``; Keras reads it when it builds the training function), and
        returns the epoch's steps in whole calls."""
        if steps is None:
            return None
        if model.train_function is None:
            model.steps_per_execution = training.steps_per_execution(steps)
        return training.whole_executions(steps, model.steps_per_execution)

    def _sample_weights(self, values: dict[str, Any], y: np.ndarray) -> np.ndarray | None:
        """Balanced class weights as per-row weights, when the trial asks for them."""
        if values.get("class_weight") == "balanced" and self.task in ("binary", "multiclass"):
            return training.balanced_sample_weights(y, self.task)
        return None

    @property
    def schedule_anneal(self) -> tuple[int, int] | None:
        """The last fit's final anneal before its deadline, if its cosine decay had one."""
        return self._cosine.anneal if self._cosine is not None else None

    def serving_model(self, hp: kt.HyperParameters, model: keras.Model) -> keras.Model:
        """The model to save for serving (the trained one, unless a subclass trains with extras)."""
        return model
