"""Training pieces chosen by hyperparameters and shared by every hypermodel.

Optimizers, learning-rate schedules, regularizers, activations with their initializers,
task heads (output layer, loss, metrics), class weights and input pipelines.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from automl.hypermodels.ensemble import all_layers
from automl.hypermodels.members import MemberAverage, member_head
from automl.hypermodels.space import RELU_FAMILY
from automl.preprocessing.layers import TargetOutput
from automl.preprocessing.targets import TargetTransform

EVAL_BATCH_SIZE = 1024
# What TensorFlow raises when a device cannot allocate a tensor (GPU memory, mostly).
OUT_OF_MEMORY = (tf.errors.ResourceExhaustedError,)


def make_dataset(
    x: dict[str, np.ndarray],
    y: np.ndarray | None,
    batch_size: int,
    shuffle_seed: int | None = None,
    sample_weight: np.ndarray | None = None,
    passes: int = 1,
) -> tf.data.Dataset:
    """numpy columns -> batched tf.data (Keras cannot take string numpy arrays directly); ``passes``
    repeats the (reshuffled) rows within one epoch.

    The pipeline shuffles row numbers and gathers each batch's rows from the column tensors in one
    operation per column. Shuffling the rows themselves passed every row through the shuffle buffer
    one element at a time, at about 50 us per row of 50 columns: 11-14 s per epoch of 200,000 rows
    before any training, against about 1 s this way (docs/benchmarks.md, "Trials per minute").

    Rows in order that fit one batch (the validation rows of most tables) are that one batch as it is:
    no per-batch function, whose instantiation on every new iterator (each epoch's evaluation) costs
    milliseconds per column."""
    columns = {key: tf.constant(value) for key, value in x.items()}
    label = tf.constant(y) if y is not None else None
    weight = tf.constant(sample_weight.astype("float32")) if y is not None and sample_weight is not None else None
    n = len(next(iter(x.values())))
    if shuffle_seed is None and passes == 1 and 0 < n <= batch_size:
        parts = columns if label is None else (columns, label) if weight is None else (columns, label, weight)
        return tf.data.Dataset.from_tensors(parts)

    def rows(index: tf.Tensor) -> Any:
        features = {key: tf.gather(column, index) for key, column in columns.items()}
        if label is None:
            return features
        if weight is None:
            return features, tf.gather(label, index)
        return features, tf.gather(label, index), tf.gather(weight, index)

    dataset = tf.data.Dataset.range(n)
    if shuffle_seed is not None:
        dataset = dataset.shuffle(n, seed=shuffle_seed, reshuffle_each_iteration=True)
    if passes > 1:
        dataset = dataset.repeat(passes)
    dataset = dataset.batch(batch_size).map(rows)
    if gpu_visible():
        return dataset.prefetch(tf.data.AUTOTUNE)  # batch on the host while the device trains
    return dataset.with_options(lean_options())


def endless(dataset: tf.data.Dataset) -> tuple[tf.data.Dataset, int | None]:
    """``dataset`` repeated without end, and its batches per pass (Keras' ``steps_per_epoch``): Keras then
    keeps one iterator over a whole fit, where a finite dataset costs it two new iterators an epoch, each
    instantiating the per-batch function again (7-13 ms on a table of 7-20 columns: as long as an epoch
    of a small model; docs/benchmarks.md, "Trials per minute"). A shuffled dataset still reshuffles on
    every pass. Unchanged, with None, where the number of batches is not known."""
    steps = int(dataset.cardinality())
    if steps <= 0:
        return dataset, None
    return dataset.repeat(), steps


def lean_options() -> tf.data.Options:
    """tf.data settings for rows already in memory, trained on a CPU: a batch is one gather per
    column, so the pipeline runs inline on one thread, with no prefetching and no autotuning threads. Its default
    (a thread pool per core, autotuned prefetching) competed with the trial's own threads: two
    trials side by side on a 2-core machine each took 25-50 % longer than alone, against about 15 %
    with these settings (docs/benchmarks.md, "Trials per minute")."""
    options = tf.data.Options()
    options.threading.private_threadpool_size = 1
    options.threading.max_intra_op_parallelism = 1
    options.autotune.enabled = False
    return options


def gpu_visible() -> bool:
    return bool(tf.config.list_physical_devices("GPU"))


def configure_threads(threads: int) -> bool:
    """Size TensorFlow's thread pools for this process (before it runs its first operation): two
    trials on a 2-core machine then take one core each instead of both fighting over both.
    False when the runtime had already started (its pools stay as they are)."""
    try:
        tf.config.threading.set_intra_op_parallelism_threads(int(threads))
        tf.config.threading.set_inter_op_parallelism_threads(int(threads))
    except RuntimeError:
        return False
    return True


def configure_gpus() -> list[str]:
    """Memory growth on every visible GPU, so trials take what they use rather than the whole card
    (and several worker processes can share one). Must run before TensorFlow first touches a GPU."""
    names = []
    for gpu in tf.config.list_physical_devices("GPU"):
        # Already initialised in this process (RuntimeError): its setting stays.
        with contextlib.suppress(RuntimeError):
            tf.config.experimental.set_memory_growth(gpu, True)
        names.append(gpu.name)
    return names


# --- layers -----------------------------------------------------------------------------------


def kernel_initializer(activation: str) -> str:
    if activation == "selu":
        return "lecun_normal"
    if activation in RELU_FAMILY:
        return "he_normal"
    return "glorot_uniform"


def activation_layer(activation: str, name: str) -> keras.layers.Layer:
    if activation == "prelu":
        return keras.layers.PReLU(name=name)
    if activation == "leaky_relu":
        return keras.layers.LeakyReLU(negative_slope=0.2, name=name)
    return keras.layers.Activation(activation, name=name)


def batch_norm(name: str) -> keras.layers.Layer:
    """Batch normalization whose moving statistics follow within a few dozen steps (Keras' default
    momentum, 0.99, needs hundreds: a small dataset's first epochs were then validated, and early
    stopped, on statistics that were still mostly their initial values)."""
    return keras.layers.BatchNormalization(momentum=0.9, name=name)


def dropout_layer(rate: float, name: str) -> keras.layers.Layer:
    """Plain dropout after every activation, selu's too, as RealMLP-TD trains it. Alpha dropout (meant to keep
    selu's self-normalising mean and variance) left RealMLP's configuration far worse on the rows it had not
    trained on: after 40 epochs on diamonds' cut grade, validation log loss 0.777 against 0.672 with plain
    dropout; on their price after 30 epochs, validation RMSE 1,949 against 700 (docs/benchmarks.md, "Dropout
    after selu").
    Models saved with alpha dropout still load: Keras keeps the layer."""
    return keras.layers.Dropout(rate, name=name)


def kernel_regularizer(l1: float, l2: float) -> keras.regularizers.Regularizer | None:
    if l1 > 0 or l2 > 0:
        return keras.regularizers.L1L2(l1=float(l1), l2=float(l2))
    return None


def activity_regularizer(l2: float) -> keras.regularizers.Regularizer | None:
    return keras.regularizers.L2(float(l2)) if l2 > 0 else None


def kernel_constraint(max_norm: float) -> keras.constraints.Constraint | None:
    return keras.constraints.MaxNorm(float(max_norm)) if max_norm > 0 else None


# --- optimisation -----------------------------------------------------------------------------


def learning_rate_schedule(
    schedule: str, learning_rate: float, decay_rate: float | None, decay_epochs: int | None, steps_per_epoch: int,
    epochs: int = 50,
) -> float | keras.optimizers.schedules.LearningRateSchedule:
    """A schedule object for the decaying schedules; the plain rate otherwise.

    ``reduce_on_plateau`` and ``cosine`` are callbacks (see ``schedule_callbacks``), so they start
    from the plain rate.
    """
    learning_rate = float(learning_rate)
    if schedule in ("constant", "reduce_on_plateau", "cosine"):
        return learning_rate
    assert decay_rate is not None and decay_epochs is not None
    decay_steps = max(1, int(decay_epochs) * max(1, steps_per_epoch))
    if schedule in ("step", "exponential"):
        return keras.optimizers.schedules.ExponentialDecay(
            learning_rate, decay_steps=decay_steps, decay_rate=float(decay_rate), staircase=schedule == "step"
        )
    if schedule == "inverse_time":
        return keras.optimizers.schedules.InverseTimeDecay(
            learning_rate, decay_steps=decay_steps, decay_rate=float(decay_rate)
        )
    raise ValueError(f"unknown learning-rate schedule {schedule}")


def make_optimizer(
    name: str,
    learning_rate: float | keras.optimizers.schedules.LearningRateSchedule,
    momentum: float | None = None,
    nesterov: bool | None = None,
    weight_decay: float | None = None,
) -> keras.optimizers.Optimizer:
    if name == "adam":
        return keras.optimizers.Adam(learning_rate=learning_rate)
    if name == "adamw":
        return keras.optimizers.AdamW(learning_rate=learning_rate, weight_decay=float(weight_decay or 1e-4))
    if name == "nadam":
        return keras.optimizers.Nadam(learning_rate=learning_rate)
    if name == "rmsprop":
        return keras.optimizers.RMSprop(learning_rate=learning_rate)
    if name == "sgd":
        return keras.optimizers.SGD(
            learning_rate=learning_rate,
            momentum=float(momentum if momentum is not None else 0.9),
            nesterov=bool(nesterov if nesterov is not None else True),
        )
    raise ValueError(f"unknown optimizer {name}")


def cosine_rate(learning_rate: float, epoch: int, epochs: int) -> float:
    """Cosine decay per epoch from ``learning_rate`` to 1 % of it at the last of ``epochs``, after a
    first epoch at 30 % (a short warm-up)."""
    if epoch == 0:
        return 0.3 * learning_rate
    progress = min(1.0, (epoch - 1) / max(1, epochs - 2))
    return learning_rate * (0.01 + 0.99 * 0.5 * (1.0 + math.cos(math.pi * progress)))


class CosineSchedule:
    """``cosine_rate`` over ``epochs``; when a time budget will end the trial first, a final anneal.

    ``time_left`` (seconds until the latest the trial may run; None: no time budget) is checked at
    each epoch's start from the third on (the first traces the graphs; the second is timed). Once
    no more than ``tail`` epochs fit before that deadline, the rate falls from where the curve is
    to its floor over the epochs that fit, so a trial the deadline cuts short ends annealed rather
    than at a high rate (budget-aware schedules: Li, Yumer and Ramanan, ICLR 2020); a trial that
    ends sooner by early stopping is untouched. ``anneal`` (first epoch, epochs that fit) is what
    a refit passes to follow its trial's curve.
    """

    FLOOR = 0.01  # of the learning rate, as cosine_rate ends

    def __init__(self, learning_rate: float, epochs: int, time_left: Callable[[], float | None] | None = None,
                 tail: int = 10, anneal: tuple[int, int] | None = None) -> None:
        self.learning_rate = float(learning_rate)
        self.epochs = int(epochs)
        self.time_left = time_left
        self.tail = max(1, int(tail))
        self.anneal = (int(anneal[0]), int(anneal[1])) if anneal else None
        self._starts: list[tuple[int, float]] = []  # (epoch, time.monotonic()) of the first epochs seen

    def __call__(self, epoch: int, _lr: float = 0.0) -> float:
        epoch = int(epoch)
        if self.time_left is not None:
            self._watch(epoch, self.time_left)
        if self.anneal is None or epoch < self.anneal[0]:
            return cosine_rate(self.learning_rate, epoch, self.epochs)
        first, end = self.anneal
        high, low = cosine_rate(self.learning_rate, first, self.epochs), self.FLOOR * self.learning_rate
        progress = min(1.0, (epoch - first) / max(1, end - first - 1))
        return low + (high - low) * 0.5 * (1.0 + math.cos(math.pi * progress))

    def _watch(self, epoch: int, time_left: Callable[[], float | None]) -> None:
        now = time.monotonic()
        if len(self._starts) < 2:
            self._starts.append((epoch, now))
            return
        left = time_left()
        if left is None:
            return
        timed_from, began = self._starts[1]
        per_epoch = (now - began) / max(1, epoch - timed_from)
        fit = int(max(0.0, left) / per_epoch) if per_epoch > 0 else self.epochs
        end = epoch + max(1, fit)
        if self.anneal is not None:
            self.anneal = (self.anneal[0], min(self.anneal[1], end))
        elif fit <= self.tail and end < self.epochs:
            self.anneal = (epoch, end)


def schedule_callbacks(
    schedule: str | None, decay_rate: float | None, learning_rate: float, monitor: str, mode: str, patience: int,
    epochs: int = 50, time_left: Callable[[], float | None] | None = None, anneal: tuple[int, int] | None = None,
) -> list[keras.callbacks.Callback]:
    """The schedules that are callbacks. Cosine decay is set once per epoch rather than as a
    ``LearningRateSchedule``: Keras evaluates a schedule object for every variable at every step
    (for the weight decay too), which made an AdamW step with it twice as slow on a CPU; the
    rate is also independent of the steps in an epoch, so a refit on more rows follows the same curve.
    ``time_left`` and ``anneal``: see ``CosineSchedule`` (its tail is the early-stopping patience)."""
    if schedule == "cosine":
        return [keras.callbacks.LearningRateScheduler(CosineSchedule(learning_rate, epochs, time_left, patience,
                                                                    anneal))]
    if schedule != "reduce_on_plateau":
        return []
    return [
        keras.callbacks.ReduceLROnPlateau(
            monitor=monitor,
            mode=mode,
            factor=float(decay_rate or 0.5),
            patience=max(1, patience // 2),
            min_lr=float(learning_rate) * 1e-3,
            verbose=0,
        )
    ]


def steps_per_epoch(n_rows: int, batch_size: int) -> int:
    return max(1, math.ceil(n_rows / max(1, batch_size)))


# Training steps per call into the compiled graph (Keras' ``steps_per_execution``), at most. Each call from
# Python has a fixed cost (the call, the iterator hand-off, Keras' per-batch bookkeeping) that several steps
# per call share: on 2 CPU cores a step of a 4 x 128 network at batch 32 took 2.4-3.0 ms one per call and
# 2.1-2.3 ms eight per call (docs/benchmarks.md, "Trials per minute").
MAX_STEPS_PER_EXECUTION = 8
# How much longer than its batches an epoch may grow so that its steps divide into whole executions.
MAX_EPOCH_STRETCH = 0.1


def steps_per_execution(steps: int) -> int:
    """Steps per execution for an epoch of ``steps`` batches: the most, up to ``MAX_STEPS_PER_EXECUTION``,
    whose whole executions cover the epoch with at most ``MAX_EPOCH_STRETCH`` more steps (Keras runs an
    epoch as whole executions, so a 26-step epoch at 8 would run 32 steps; at 7 it runs 28)."""
    steps = max(1, int(steps))
    for per_call in range(min(MAX_STEPS_PER_EXECUTION, steps), 1, -1):
        if math.ceil(steps / per_call) * per_call - steps <= MAX_EPOCH_STRETCH * steps:
            return per_call
    return 1


def whole_executions(steps: int, per_call: int) -> int:
    """``steps`` rounded up to whole executions of ``per_call`` steps: the epoch Keras will run."""
    per_call = max(1, int(per_call))
    return math.ceil(max(1, int(steps)) / per_call) * per_call


# --- tasks ------------------------------------------------------------------------------------


def task_head(
    task: str, n_outputs: int, regression_loss: str | None, target: TargetTransform | None = None,
    label_smoothing: float = 0.0, members: int = 1,
) -> tuple[Any, Any, list[Any]]:
    """(output layer as a callable, loss, metrics) for a task.

    Classification reports ``log_loss`` (plain cross-entropy) besides the training loss, so
    that trials with different label smoothing are compared on the same score. ``members`` > 1: the
    callable takes TabM's (batch, members, hidden) and answers the members' average (``members``).
    """
    target = target or TargetTransform()
    units, activation, name = {
        "binary": (1, "sigmoid", "probability"), "multiclass": (n_outputs, "softmax", "probabilities"),
        "multilabel": (n_outputs, "sigmoid", "probabilities"), "regression": (1, None, "prediction"),
    }[task]

    def head(x: Any) -> Any:
        # Regression: the network predicts a standardised (transformed) value; turning it back
        # into the target's units is a layer, so the saved model answers in the original units.
        def in_units(z: Any, layer_name: str) -> Any:
            return TargetOutput(target.to_dict(), name=layer_name, dtype="float32")(z) if task == "regression" else z

        if members > 1:
            out = member_head(members, units, activation, "member_heads")(x)
            return MemberAverage(name=name, dtype="float32")(in_units(out, "member_predictions"))
        if task == "regression":
            return in_units(keras.layers.Dense(1, name="standardised", dtype="float32")(x), name)
        return keras.layers.Dense(units, activation=activation, name=name, dtype="float32")(x)

    smoothing = float(label_smoothing or 0.0)
    if task == "binary":
        return head, keras.losses.BinaryCrossentropy(label_smoothing=smoothing), [
            "accuracy", keras.metrics.AUC(name="auc"), keras.metrics.AUC(curve="PR", name="prc"),
            keras.metrics.BinaryCrossentropy(name="log_loss"),
        ]
    if task == "multiclass":
        loss = SmoothedSparseCrossentropy(n_outputs, smoothing) if smoothing else "sparse_categorical_crossentropy"
        return head, loss, ["accuracy", keras.metrics.SparseCategoricalCrossentropy(name="log_loss")]
    if task == "multilabel":
        return head, "binary_crossentropy", [
            keras.metrics.BinaryAccuracy(name="binary_accuracy"),
            keras.metrics.AUC(name="auc", multi_label=True, num_labels=n_outputs),
        ]
    loss = StandardizedLoss(regression_loss or "mse", target.mean, target.std, target.to_dict())
    return head, loss, [
        keras.metrics.MeanAbsoluteError(name="mae"),
        keras.metrics.RootMeanSquaredError(name="rmse"),
        keras.metrics.MeanSquaredError(name="mse"),
    ]


@keras.saving.register_keras_serializable(package="automl")
class SmoothedSparseCrossentropy(keras.losses.Loss):
    """Categorical cross-entropy with label smoothing on integer class labels (Keras' sparse loss has
    no smoothing): the true class gets 1 - s + s / k, every other class s / k."""

    def __init__(self, n_classes: int = 2, smoothing: float = 0.1, **kwargs: Any) -> None:
        kwargs.setdefault("name", "smoothed_crossentropy")
        super().__init__(**kwargs)
        self.n_classes = int(n_classes)
        self.smoothing = float(smoothing)

    def call(self, y_true: Any, y_pred: Any) -> Any:
        labels = keras.ops.one_hot(keras.ops.reshape(keras.ops.cast(y_true, "int32"), (-1,)), self.n_classes)
        return keras.losses.categorical_crossentropy(labels, y_pred, label_smoothing=self.smoothing)

    def get_config(self) -> dict[str, Any]:
        return {"n_classes": self.n_classes, "smoothing": self.smoothing, "reduction": self.reduction,
                "name": self.name}


@keras.saving.register_keras_serializable(package="automl")
class StandardizedLoss(keras.losses.Loss):
    """A regression loss computed on standardised (transformed) targets, while the model answers in
    original units.

    Without it, gradients scale with the target's spread (grams, dollars), which SGD and
    RMSprop do not forgive; metrics (MAE, RMSE) stay in the target's own units. With a target
    transform (log1p, quantile) the loss compares the transformed values.
    """

    def __init__(self, kind: str = "mse", mean: float = 0.0, std: float = 1.0,
                 transform: dict[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(name=f"standardized_{kind}", **kwargs)
        self.kind = kind
        self.mean = float(mean)
        self.std = float(std) if std else 1.0
        self.transform = transform
        self._target = TargetTransform.from_dict(transform) if transform else TargetTransform(
            "none", self.mean, self.std)
        self._base = {"mse": keras.losses.mean_squared_error, "mae": keras.losses.mean_absolute_error,
                      "huber": keras.losses.huber}[kind]

    def call(self, y_true: Any, y_pred: Any) -> Any:
        target = self._target

        def scale(v: Any, predicted: bool) -> Any:
            return (target.forward(keras.ops.cast(v, "float32"), predicted) - target.mean) / target.std

        return self._base(scale(y_true, False), scale(y_pred, True))

    def get_config(self) -> dict[str, Any]:
        return {"kind": self.kind, "mean": self.mean, "std": self.std, "transform": self.transform,
                "reduction": self.reduction}


def has_dropout(model: keras.Model) -> bool:
    """Whether Monte Carlo dropout can estimate this model's uncertainty."""
    return any(isinstance(layer, keras.layers.Dropout | keras.layers.AlphaDropout) and layer.rate > 0
               for layer in all_layers(model))


def balanced_sample_weights(y: np.ndarray, task: str) -> np.ndarray:
    """Per-row weights n / (k * count(class)): every class weighs the same in the loss."""
    labels = np.asarray(y).reshape(-1).astype("int64") if task in ("binary", "multiclass") else None
    if labels is None:
        raise ValueError("class weighting applies to binary and multiclass tasks")
    classes, counts = np.unique(labels, return_counts=True)
    weight_of = {int(c): len(labels) / (len(classes) * n) for c, n in zip(classes, counts, strict=True)}
    return np.array([weight_of[int(c)] for c in labels], dtype="float32")
