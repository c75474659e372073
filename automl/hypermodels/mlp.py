"""The tabular multilayer perceptron and its search space.

Hyperparameters (names are the public contract shown in the leaderboard):
``num_layers`` 1-4, ``units_<i>`` 16-512 (log), ``activation``, ``dropout`` 0-0.5,
``batch_norm``, ``optimizer``, ``learning_rate`` 1e-4-1e-1 (log), ``batch_size``.
"""

from __future__ import annotations

from typing import Any

import keras
import keras_tuner as kt
import numpy as np
import tensorflow as tf

from automl.preprocessing.features import FeatureSpec
from automl.preprocessing.layers import build_inputs

MAX_LAYERS = 4
ACTIVATIONS = ["relu", "elu", "selu", "tanh", "gelu"]
OPTIMIZERS = ["adam", "adamw", "rmsprop", "sgd"]
BATCH_SIZES = [16, 32, 64, 128, 256]


EVAL_BATCH_SIZE = 1024


def make_dataset(
    x: dict[str, np.ndarray], y: np.ndarray | None, batch_size: int, shuffle_seed: int | None = None
) -> tf.data.Dataset:
    """numpy columns -> batched tf.data (Keras cannot take string numpy arrays directly)."""
    tensors = {key: tf.constant(value) for key, value in x.items()}
    dataset = tf.data.Dataset.from_tensor_slices(tensors if y is None else (tensors, y))
    if shuffle_seed is not None:
        dataset = dataset.shuffle(len(next(iter(x.values()))), seed=shuffle_seed, reshuffle_each_iteration=True)
    return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def kernel_initializer(activation: str) -> str:
    if activation == "selu":
        return "lecun_normal"
    if activation in ("relu", "elu", "gelu"):
        return "he_normal"
    return "glorot_uniform"


def make_optimizer(name: str, learning_rate: float) -> keras.optimizers.Optimizer:
    learning_rate = float(learning_rate)
    if name == "adam":
        return keras.optimizers.Adam(learning_rate=learning_rate)
    if name == "adamw":
        return keras.optimizers.AdamW(learning_rate=learning_rate)
    if name == "rmsprop":
        return keras.optimizers.RMSprop(learning_rate=learning_rate)
    if name == "sgd":
        return keras.optimizers.SGD(learning_rate=learning_rate, momentum=0.9, nesterov=True)
    raise ValueError(f"unknown optimizer {name}")


def task_head(task: str, n_classes: int, target_mean: float, target_std: float) -> tuple[Any, str, list[Any]]:
    """(output layer stack as a callable, loss, metrics) for a task."""

    def head(x: Any) -> Any:
        if task == "binary":
            return keras.layers.Dense(1, activation="sigmoid", name="probability", dtype="float32")(x)
        if task == "multiclass":
            return keras.layers.Dense(n_classes, activation="softmax", name="probabilities", dtype="float32")(x)
        # Regression: the network predicts a standardised value; rescaling back to the target's
        # units is a layer, so the saved model answers in the original units.
        z = keras.layers.Dense(1, name="standardised", dtype="float32")(x)
        return keras.layers.Rescaling(scale=target_std, offset=target_mean, name="prediction")(z)

    if task == "binary":
        return head, "binary_crossentropy", ["accuracy", keras.metrics.AUC(name="auc")]
    if task == "multiclass":
        return head, "sparse_categorical_crossentropy", ["accuracy"]
    return head, "mse", ["mae", keras.metrics.RootMeanSquaredError(name="rmse")]


class TabularMLP(kt.HyperModel):
    """Builds an MLP over preprocessed raw columns; knows nothing about jobs or storage."""

    def __init__(
        self,
        features: list[FeatureSpec],
        task: str,
        n_classes: int,
        objective: str,
        direction: str,
        patience: int,
        target_mean: float = 0.0,
        target_std: float = 1.0,
        seed: int = 0,
    ) -> None:
        super().__init__(name="tabular_mlp", tunable=True)
        self.features = features
        self.task = task
        self.n_classes = n_classes
        self.objective = objective
        self.direction = direction
        self.patience = patience
        self.target_mean = target_mean
        self.target_std = target_std
        self.seed = seed

    def build(self, hp: kt.HyperParameters) -> keras.Model:
        inputs, x = build_inputs(self.features)
        num_layers = hp.Int("num_layers", 1, MAX_LAYERS, default=2)
        activation = hp.Choice("activation", ACTIVATIONS, default="relu")
        dropout = hp.Float("dropout", 0.0, 0.5, step=0.1, default=0.1)
        batch_norm = hp.Boolean("batch_norm", default=False)
        for i in range(MAX_LAYERS):
            with hp.conditional_scope("num_layers", list(range(i + 1, MAX_LAYERS + 1))):
                units = hp.Int(f"units_{i}", 16, 512, sampling="log", default=64)
            if i >= num_layers:
                continue
            x = keras.layers.Dense(
                int(units), kernel_initializer=kernel_initializer(activation), use_bias=not batch_norm,
                name=f"dense_{i}",
            )(x)
            if batch_norm:
                x = keras.layers.BatchNormalization(name=f"batch_norm_{i}")(x)
            x = keras.layers.Activation(activation, name=f"activation_{i}")(x)
            if dropout > 0:
                x = keras.layers.Dropout(float(dropout), name=f"dropout_{i}")(x)
        optimizer = hp.Choice("optimizer", OPTIMIZERS, default="adam")
        learning_rate = hp.Float("learning_rate", 1e-4, 1e-1, sampling="log", default=1e-3)
        hp.Choice("batch_size", BATCH_SIZES, default=32)

        head, loss, metrics = task_head(self.task, self.n_classes, self.target_mean, self.target_std)
        model = keras.Model(inputs=inputs, outputs=head(x), name="automl_mlp")
        model.compile(optimizer=make_optimizer(optimizer, learning_rate), loss=loss, metrics=metrics)
        return model

    def fit(
        self,
        hp: kt.HyperParameters,
        model: keras.Model,
        x: dict[str, np.ndarray],
        y: np.ndarray,
        validation_data: tuple[dict[str, np.ndarray], np.ndarray],
        **kwargs: Any,
    ) -> Any:
        callbacks = list(kwargs.pop("callbacks", []))
        callbacks.append(
            keras.callbacks.EarlyStopping(
                monitor=self.objective,
                mode=self.direction,
                patience=self.patience,
                restore_best_weights=True,
            )
        )
        kwargs.setdefault("verbose", 0)
        kwargs.pop("shuffle", None)  # the dataset shuffles itself
        train = make_dataset(x, y, int(hp.get("batch_size")), shuffle_seed=self.seed)
        validation = make_dataset(*validation_data, EVAL_BATCH_SIZE)
        return model.fit(train, validation_data=validation, callbacks=callbacks, **kwargs)
