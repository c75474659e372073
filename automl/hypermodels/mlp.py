"""The tabular multilayer perceptron: every hyperparameter of ``space.TABULAR_SPACE`` made real.

Depth and width (funnel or free widths), residual blocks with batch normalization, a wide &
deep path, activation with its initializer, dropout, batch normalization, L1/L2, activity
regularization, max-norm, optimizer (with momentum, Nesterov, weight decay), learning rate and
its schedule, batch size, class weighting and the regression loss.
"""

from __future__ import annotations

from typing import Any

import keras
import keras_tuner as kt
import numpy as np

from automl.hypermodels import training
from automl.hypermodels.space import MAX_LAYERS, MIN_UNITS, SPACE_BY_NAME, declare, unmet_condition
from automl.preprocessing.features import FeatureSpec
from automl.preprocessing.layers import build_inputs


class TabularMLP(kt.HyperModel):
    """Builds and fits an MLP over preprocessed raw columns; knows nothing about jobs or storage."""

    def __init__(
        self,
        features: list[FeatureSpec],
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
    ) -> None:
        super().__init__(name="tabular_mlp", tunable=True)
        self.features = features
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
        self.oom_fallbacks: list[tuple[int, int]] = []  # (asked, used) batch sizes after running out of memory

    def _hp(self, hp: kt.HyperParameters, name: str) -> Any:
        # Hyperparameters the task or the job's narrowing rules out are never declared, so
        # the tuner (a grid above all) does not vary values the model would ignore.
        if self.task not in SPACE_BY_NAME[name].tasks or unmet_condition(name, self.overrides):
            return None
        return declare(hp, name, self.overrides)

    def widths(self, hp: kt.HyperParameters) -> list[int]:
        num_layers = int(self._hp(hp, "num_layers"))
        units = int(self._hp(hp, "units"))
        schedule = self._hp(hp, "width_schedule")
        shrink = self._hp(hp, "shrink")
        free = [self._hp(hp, f"units_{i}") for i in range(1, MAX_LAYERS)]
        if schedule == "free":
            return [units, *(int(w) for w in free[: num_layers - 1])]
        return [max(MIN_UNITS, round(units * float(shrink) ** i)) for i in range(num_layers)]

    def build(self, hp: kt.HyperParameters) -> keras.Model:
        widths = self.widths(hp)
        residual = bool(self._hp(hp, "residual"))
        wide_deep = bool(self._hp(hp, "wide_deep"))
        activation = str(self._hp(hp, "activation"))
        dropout = float(self._hp(hp, "dropout"))
        batch_norm = bool(self._hp(hp, "batch_norm"))
        l1, l2 = float(self._hp(hp, "l1")), float(self._hp(hp, "l2"))
        activity_l2 = float(self._hp(hp, "activity_l2"))
        max_norm = float(self._hp(hp, "max_norm"))
        optimizer = str(self._hp(hp, "optimizer"))
        momentum = self._hp(hp, "momentum")
        nesterov = self._hp(hp, "nesterov")
        weight_decay = self._hp(hp, "weight_decay")
        learning_rate = float(self._hp(hp, "learning_rate"))
        schedule = str(self._hp(hp, "lr_schedule"))
        decay_rate = self._hp(hp, "lr_decay_rate")
        decay_epochs = self._hp(hp, "lr_decay_epochs")
        batch_size = int(self._hp(hp, "batch_size"))
        self._hp(hp, "class_weight")  # used in fit
        regression_loss = self._hp(hp, "loss")

        inputs, encoded = build_inputs(self.features)
        x = encoded
        for i, width in enumerate(widths):
            # Residual blocks always normalise: that is what keeps deep residual stacks trainable.
            block_norm = batch_norm or (residual and i > 0)
            y = keras.layers.Dense(
                width,
                kernel_initializer=training.kernel_initializer(activation),
                kernel_regularizer=training.kernel_regularizer(l1, l2),
                activity_regularizer=training.activity_regularizer(activity_l2),
                kernel_constraint=training.kernel_constraint(max_norm),
                use_bias=not block_norm,
                name=f"dense_{i}",
            )(x)
            if block_norm:
                y = keras.layers.BatchNormalization(name=f"batch_norm_{i}")(y)
            y = training.activation_layer(activation, name=f"activation_{i}")(y)
            if dropout > 0:
                y = training.dropout_layer(activation, dropout, name=f"dropout_{i}")(y)
            if residual and i > 0:
                shortcut = x
                if x.shape[-1] != width:
                    shortcut = keras.layers.Dense(width, use_bias=False, name=f"shortcut_{i}")(x)
                y = keras.layers.Add(name=f"residual_{i}")([shortcut, y])
            x = y
        if wide_deep:
            x = keras.layers.Concatenate(name="wide_deep")([x, encoded])

        head, loss, metrics = training.task_head(
            self.task, self.n_outputs, regression_loss, self.target_mean, self.target_std
        )
        model = keras.Model(inputs=inputs, outputs=head(x), name="automl_mlp")
        lr = training.learning_rate_schedule(
            schedule, learning_rate, decay_rate, decay_epochs, training.steps_per_epoch(self.n_train, batch_size)
        )
        model.compile(
            optimizer=training.make_optimizer(optimizer, lr, momentum, nesterov, weight_decay),
            loss=loss,
            metrics=metrics,
        )
        return model

    def fit(
        self,
        hp: kt.HyperParameters,
        model: keras.Model,
        x: dict[str, np.ndarray],
        y: np.ndarray,
        validation_data: tuple[dict[str, np.ndarray], np.ndarray] | None = None,
        **kwargs: Any,
    ) -> Any:
        """Train with early stopping on the objective; without validation data (a refit), on the loss."""
        values = hp.values
        callbacks = list(kwargs.pop("callbacks", []))
        monitor, mode = (self.objective, self.direction) if validation_data is not None else ("loss", "min")
        if validation_data is not None:
            callbacks.append(
                keras.callbacks.EarlyStopping(
                    monitor=monitor, mode=mode, patience=self.patience, restore_best_weights=True
                )
            )
        callbacks += training.schedule_callbacks(
            values.get("lr_schedule"), values.get("lr_decay_rate"), values["learning_rate"], monitor, mode,
            self.patience,
        )
        kwargs.setdefault("verbose", 0)
        kwargs["shuffle"] = False  # the dataset shuffles itself
        weights = None
        if values.get("class_weight") == "balanced" and self.task in ("binary", "multiclass"):
            weights = training.balanced_sample_weights(y, self.task)
        batch_size = int(values["batch_size"])
        validation = (
            training.make_dataset(*validation_data, training.EVAL_BATCH_SIZE) if validation_data is not None else None
        )

        def run(model: keras.Model, batch_size: int) -> Any:
            train = training.make_dataset(x, y, batch_size, shuffle_seed=self.seed, sample_weight=weights)
            return model.fit(train, validation_data=validation, callbacks=callbacks, **kwargs)

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
