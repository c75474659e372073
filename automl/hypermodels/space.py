"""The search spaces as data, documented by the API: every hyperparameter, its domain and when it applies.

Two spaces, by dataset kind: ``tabular`` (the MLP) and ``image`` (CNNs and Keras Applications
backbones); the optimizer, learning-rate and loss hyperparameters are shared objects. A new
hyperparameter is one ``Hyperparameter(...)`` line here and the code in the hypermodel that uses it.

A job narrows a space (``automl.hypermodels.narrowing``); a hypermodel declares it to Keras Tuner
(``automl.hypermodels.declare``). Nothing here imports TensorFlow or Keras Tuner, so the API can
document and validate the space without loading them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

MAX_LAYERS = 6
MIN_UNITS = 8
ALL_TASKS = frozenset({"binary", "multiclass", "multilabel", "regression"})
CLASSIFICATION = frozenset({"binary", "multiclass"})

ACTIVATIONS = ("relu", "leaky_relu", "prelu", "elu", "selu", "gelu", "swish", "mish", "tanh", "sigmoid")
RELU_FAMILY = frozenset({"relu", "leaky_relu", "prelu", "elu"})
OPTIMIZERS = ("adam", "adamw", "nadam", "rmsprop", "sgd")
LR_SCHEDULES = ("constant", "cosine", "step", "exponential", "inverse_time", "reduce_on_plateau")
DECAYING_SCHEDULES = ("step", "exponential", "inverse_time")
REGRESSION_LOSSES = ("mse", "mae", "huber")
NUMERIC_TRANSFORMS = ("standard", "robust", "quantile")
NUMERIC_EMBEDDINGS = ("none", "periodic", "ple")
TARGET_TRANSFORMS = ("none", "log1p", "quantile")
BATCH_SIZES = (16, 32, 64, 128, 256, 512, 1024)


@dataclass(frozen=True)
class Condition:
    """Active only when ``parent`` takes one of ``values``."""

    parent: str
    values: tuple[Any, ...]


@dataclass(frozen=True)
class Hyperparameter:
    name: str
    type: str  # int | float | choice | boolean
    default: Any
    description: str
    min: float | None = None
    max: float | None = None
    step: float | None = None
    sampling: str = "linear"
    values: tuple[Any, ...] = ()
    tasks: frozenset[str] = ALL_TASKS
    conditions: tuple[Condition, ...] = field(default_factory=tuple)
    # Values the search tries when a job does not name this hyperparameter (empty: all of them).
    # A job may still ask for the others (e.g. a backbone, which is slow to train).
    searched: tuple[Any, ...] = ()

    @property
    def numeric(self) -> bool:
        if self.type in ("int", "float"):
            return True
        return self.type == "choice" and all(is_number(v) for v in self.values)

    def bounds(self) -> tuple[float, float]:
        if self.type in ("int", "float"):
            assert self.min is not None and self.max is not None
            return float(self.min), float(self.max)
        return float(min(self.values)), float(max(self.values))

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "type": self.type, "default": self.default,
                               "description": self.description, "tasks": sorted(self.tasks)}
        if self.type in ("int", "float"):
            out.update({"min": self.min, "max": self.max, "sampling": self.sampling})
            if self.step is not None:
                out["step"] = self.step
        if self.type == "choice":
            out["choices"] = list(self.values)
        if self.type == "boolean":
            out["choices"] = [False, True]
        if self.conditions:
            out["active_when"] = {c.parent: list(c.values) for c in self.conditions}
        if self.searched:
            out["searched_by_default"] = list(self.searched)
        return out


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _units_conditions(i: int) -> tuple[Condition, ...]:
    return (Condition("width_schedule", ("free",)), Condition("num_layers", tuple(range(i + 1, MAX_LAYERS + 1))))


TABULAR_SPACE: tuple[Hyperparameter, ...] = (
    Hyperparameter("numeric_transform", "choice", "robust",
                   "How numeric columns are scaled: 'standard' ((x - mean) / std), 'robust' ((x - median) / IQR "
                   "with smooth clipping of outliers, as RealMLP), 'quantile' (each column's training quantiles "
                   "mapped to a normal distribution). Fitted on the training split, inside the saved model.",
                   values=NUMERIC_TRANSFORMS),
    Hyperparameter("numeric_embedding", "choice", "none",
                   "Per-column embeddings of numeric columns with 3 or more distinct values, joined to the "
                   "scaled values: 'periodic' (learned cos(2 pi (w x + b)) features, RealMLP's PBLD), 'ple' "
                   "(piecewise-linear encoding on quantile bins, then a dense map per column), or 'none'.",
                   values=NUMERIC_EMBEDDINGS),
    Hyperparameter("embedding_units", "choice", 8, "Size of each numeric column's embedding.", values=(4, 8, 16),
                   conditions=(Condition("numeric_embedding", ("periodic", "ple")),)),
    Hyperparameter("one_hot_integers", "boolean", True,
                   "Also one-hot encode numeric columns holding 3 to 256 distinct whole numbers (ids, codes, "
                   "counts, years), so the network can learn an effect per value."),
    Hyperparameter("category_embedding", "choice", 0,
                   "Embedding size for categorical columns with more than 8 categories (0: one-hot encode "
                   "every categorical column).", values=(0, 4, 8, 16)),
    Hyperparameter("num_layers", "int", 2, "Number of hidden layers (depth).", min=1, max=MAX_LAYERS),
    Hyperparameter("units", "int", 128, "Width of the first hidden layer.", min=16, max=1024, sampling="log"),
    Hyperparameter("width_schedule", "choice", "funnel",
                   "How later layers are sized: 'funnel' = units x shrink^i, 'free' = one width per layer "
                   "(units_1 ... units_5).", values=("funnel", "free")),
    Hyperparameter("shrink", "float", 0.5, "Width factor from one hidden layer to the next (1 = constant width).",
                   min=0.25, max=1.0, step=0.25, conditions=(Condition("width_schedule", ("funnel",)),)),
    *(
        Hyperparameter(f"units_{i}", "int", 64, f"Width of hidden layer {i + 1} when width_schedule is 'free'.",
                       min=16, max=1024, sampling="log", conditions=_units_conditions(i))
        for i in range(1, MAX_LAYERS)
    ),
    Hyperparameter("tabm_members", "choice", 1,
                   "TabM (ICLR 2025, its 'mini' form): k members in one network, each scaling the encoded row by "
                   "its own vector, sharing every hidden layer, with an output layer each; each member is trained "
                   "on its own loss and the model answers their average. 1: one plain network. Training costs "
                   "about k times as much; 32 (the paper's choice) is searched only when a job names it.",
                   values=(1, 4, 8, 16, 32), searched=(1, 4, 8, 16)),
    Hyperparameter("residual", "boolean", False,
                   "Residual connections (with batch normalization) around hidden layers 2 and up."),
    Hyperparameter("wide_deep", "boolean", False,
                   "Wide & deep: concatenate the encoded inputs to the last hidden layer."),
    Hyperparameter("activation", "choice", "relu",
                   "Hidden activation; the kernel initializer follows it (he_normal for the relu family, "
                   "lecun_normal for selu, glorot_uniform otherwise).", values=ACTIVATIONS),
    Hyperparameter("dropout", "float", 0.1, "Dropout rate after each hidden layer.",
                   min=0.0, max=0.5, step=0.05),
    Hyperparameter("batch_norm", "boolean", False, "Batch normalization before each activation."),
    Hyperparameter("l1", "choice", 0.0, "L1 kernel penalty (0 = none).", values=(0.0, 1e-6, 1e-5, 1e-4, 1e-3)),
    Hyperparameter("l2", "choice", 0.0, "L2 kernel penalty (0 = none).",
                   values=(0.0, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2)),
    Hyperparameter("activity_l2", "choice", 0.0, "L2 activity regularization on hidden outputs (0 = none).",
                   values=(0.0, 1e-6, 1e-5, 1e-4)),
    Hyperparameter("max_norm", "choice", 0.0, "Max-norm constraint on hidden kernels (0 = none).",
                   values=(0.0, 1.0, 2.0, 3.0, 4.0)),
    Hyperparameter("optimizer", "choice", "adam", "Optimizer.", values=OPTIMIZERS),
    Hyperparameter("momentum", "choice", 0.9, "SGD momentum.", values=(0.0, 0.5, 0.9, 0.95, 0.99),
                   conditions=(Condition("optimizer", ("sgd",)),)),
    Hyperparameter("nesterov", "boolean", True, "SGD Nesterov momentum.",
                   conditions=(Condition("optimizer", ("sgd",)),)),
    Hyperparameter("weight_decay", "choice", 1e-4, "AdamW decoupled weight decay.",
                   values=(1e-5, 1e-4, 1e-3, 1e-2), conditions=(Condition("optimizer", ("adamw",)),)),
    Hyperparameter("learning_rate", "float", 1e-3, "Initial learning rate.", min=1e-5, max=1e-1, sampling="log"),
    Hyperparameter("lr_schedule", "choice", "constant",
                   "Learning-rate schedule: constant, cosine decay over max_epochs (after a one-epoch warm-up), "
                   "step decay, exponential decay, inverse-time decay, or reduce-on-plateau (on the objective).",
                   values=LR_SCHEDULES),
    Hyperparameter("lr_decay_rate", "float", 0.5,
                   "Decay factor of the schedule (the factor of reduce-on-plateau).", min=0.1, max=0.9, step=0.1,
                   conditions=(Condition("lr_schedule", (*DECAYING_SCHEDULES, "reduce_on_plateau")),)),
    Hyperparameter("lr_decay_epochs", "int", 5, "Epochs per decay step of step/exponential/inverse-time decay.",
                   min=1, max=20, conditions=(Condition("lr_schedule", DECAYING_SCHEDULES),)),
    Hyperparameter("batch_size", "choice", 64,
                   "Training batch size (when not searched or fixed, chosen from the training rows: about 1/16 "
                   "of them, between 32 and 512).", values=BATCH_SIZES),
    Hyperparameter("label_smoothing", "choice", 0.0,
                   "Label smoothing of the cross-entropy loss (trials are still compared on plain log loss).",
                   values=(0.0, 0.05, 0.1, 0.2), tasks=CLASSIFICATION),
    Hyperparameter("class_weight", "choice", "none",
                   "'balanced' weights each class inversely to its frequency in the training split.",
                   values=("none", "balanced"), tasks=CLASSIFICATION),
    Hyperparameter("loss", "choice", "mse", "Regression loss (huber's delta is one target standard deviation).",
                   values=REGRESSION_LOSSES, tasks=frozenset({"regression"})),
    Hyperparameter("target_transform", "choice", "none",
                   "Regression target transform, learned on that scale and inverted inside the model (predictions "
                   "are always in the target's units): 'none', 'log1p' (targets >= 0 only), 'quantile'. Default: "
                   "'log1p' for a non-negative target skewed to the right, else 'none'.",
                   values=TARGET_TRANSFORMS, tasks=frozenset({"regression"})),
)
SPACE_BY_NAME = {hp.name: hp for hp in TABULAR_SPACE}

# --- images ---------------------------------------------------------------------------------

BACKBONES = ("mobilenet_v2", "efficientnet_b0", "resnet50")
MAX_CONV_BLOCKS = 5
_CNN = (Condition("backbone", ("none",)),)
_BACKBONE = (Condition("backbone", BACKBONES),)
_AUGMENT = (Condition("augment", (True,)),)
_SHARED_TRAINING = ("l2", "optimizer", "momentum", "nesterov", "weight_decay", "learning_rate", "lr_schedule",
                    "lr_decay_rate", "lr_decay_epochs", "class_weight", "loss")

IMAGE_SPACE: tuple[Hyperparameter, ...] = (
    Hyperparameter("backbone", "choice", "none",
                   "'none': a CNN built from the hyperparameters below; otherwise a Keras Applications network "
                   "(searched only when a job names it: they are slow to train without a GPU).",
                   values=("none", *BACKBONES), searched=("none",)),
    Hyperparameter("pretrained", "boolean", True,
                   "Start the backbone from the operator's weight file in AUTOML_BACKBONE_WEIGHTS_DIR (never "
                   "downloaded; a job asking for missing weights is refused); false trains it from scratch.",
                   conditions=_BACKBONE),
    Hyperparameter("freeze_backbone", "boolean", True,
                   "Train only the head on top of pretrained weights (false fine-tunes the whole network).",
                   conditions=(*_BACKBONE, Condition("pretrained", (True,)))),
    Hyperparameter("conv_blocks", "int", 3, "Number of convolution blocks (each may halve the resolution).",
                   min=1, max=MAX_CONV_BLOCKS, conditions=_CNN),
    Hyperparameter("filters", "choice", 32, "Filters of the first block.", values=(8, 16, 32, 64, 128),
                   conditions=_CNN),
    Hyperparameter("filters_growth", "choice", 2.0, "Filter factor from one block to the next.",
                   values=(1.0, 1.5, 2.0), conditions=_CNN),
    Hyperparameter("convs_per_block", "int", 1, "Convolutions in each block.", min=1, max=3, conditions=_CNN),
    Hyperparameter("kernel_size", "choice", 3, "Convolution kernel size.", values=(3, 5, 7), conditions=_CNN),
    Hyperparameter("conv_stride", "choice", 1, "Stride of each block's first convolution (2 halves the "
                   "resolution).", values=(1, 2), conditions=_CNN),
    Hyperparameter("padding", "choice", "same",
                   "Convolution padding ('valid' shrinks the maps; a map smaller than the kernel pads 'same').",
                   values=("same", "valid"), conditions=_CNN),
    Hyperparameter("conv_batch_norm", "boolean", True, "Batch normalization after each convolution.",
                   conditions=_CNN),
    Hyperparameter("conv_activation", "choice", "relu", "Activation of the convolutions and the dense head.",
                   values=("relu", "leaky_relu", "elu", "gelu", "swish"), conditions=_CNN),
    Hyperparameter("pooling", "choice", "max", "Pooling at the end of each block (skipped once maps are 1x1).",
                   values=("max", "average", "none"), conditions=_CNN),
    Hyperparameter("spatial_dropout", "float", 0.0, "Spatial dropout (whole feature maps) after each block.",
                   min=0.0, max=0.3, step=0.05, conditions=_CNN),
    Hyperparameter("conv_residual", "boolean", False,
                   "Residual shortcuts around each block (1x1 convolutions where the shape changes).",
                   conditions=_CNN),
    Hyperparameter("global_pooling", "choice", "average",
                   "From feature maps to the head: global average, global max, or flatten.",
                   values=("average", "max", "flatten")),
    Hyperparameter("dense_units", "choice", 128, "Units of the dense layer of the head (0: none).",
                   values=(0, 32, 64, 128, 256, 512)),
    Hyperparameter("head_dropout", "float", 0.25, "Dropout before the output layer.", min=0.0, max=0.5, step=0.05),
    Hyperparameter("augment", "boolean", False, "Random augmentation of training images (off at prediction)."),
    Hyperparameter("flip", "choice", "horizontal", "Random flips.",
                   values=("none", "horizontal", "vertical", "horizontal_and_vertical"), conditions=_AUGMENT),
    Hyperparameter("rotation", "choice", 0.05, "Random rotation, as a fraction of a full turn.",
                   values=(0.0, 0.05, 0.1, 0.2), conditions=_AUGMENT),
    Hyperparameter("zoom", "choice", 0.1, "Random zoom (fraction).", values=(0.0, 0.1, 0.2), conditions=_AUGMENT),
    Hyperparameter("contrast", "choice", 0.1, "Random contrast change (fraction).", values=(0.0, 0.1, 0.2),
                   conditions=_AUGMENT),
    Hyperparameter("batch_size", "choice", 32, "Training batch size.", values=(8, 16, 32, 64, 128)),
    *(SPACE_BY_NAME[name] for name in _SHARED_TRAINING),
)

SPACES: dict[str, tuple[Hyperparameter, ...]] = {"tabular": TABULAR_SPACE, "image": IMAGE_SPACE}
SPACE_BY_KIND: dict[str, dict[str, Hyperparameter]] = {
    kind: {hp.name: hp for hp in hps} for kind, hps in SPACES.items()
}


def describe(task: str | None = None, kind: str = "tabular") -> list[dict[str, Any]]:
    return [hp.describe() for hp in SPACES[kind] if task is None or task in hp.tasks]


def is_active(name: str, values: dict[str, Any], kind: str = "tabular") -> bool:
    """Whether ``name`` takes part in a trial with these hyperparameter values."""
    return all(values.get(c.parent) in c.values for c in SPACE_BY_KIND[kind][name].conditions)
