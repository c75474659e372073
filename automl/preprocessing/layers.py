"""Keras layers built from fitted feature specs: raw columns in, one dense vector out.

Every layer here is part of the saved model (registered for ``safe_mode`` loading), so the
served model takes raw values and applies exactly the preprocessing it was trained with.
``StandardizeWithMissing`` stays registered so that models saved before the vectorised
numeric layers still load.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import keras
from keras import ops

from automl.errors import SearchFailed
from automl.preprocessing.features import FeatureSpec
from automl.preprocessing.piecewise import matrix, piecewise_linear, segments
from automl.preprocessing.targets import TargetTransform


@keras.saving.register_keras_serializable(package="automl")
class StandardizeWithMissing(keras.layers.Layer):
    """(x - mean) / std, with NaN replaced by the mean (0 after scaling).

    With ``indicator`` it also emits a 0/1 column saying the value was missing, so the
    network can learn from missingness itself.
    """

    def __init__(self, mean: float, std: float, indicator: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.mean = float(mean)
        self.std = float(std)
        self.indicator = bool(indicator)

    def call(self, inputs: Any) -> Any:
        inputs = ops.cast(inputs, "float32")
        missing = ops.isnan(inputs)
        scaled = ops.where(missing, ops.zeros_like(inputs), (inputs - self.mean) / self.std)
        if self.indicator:
            return ops.concatenate([scaled, ops.cast(missing, "float32")], axis=-1)
        return scaled

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return (input_shape[0], 2 if self.indicator else 1)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "mean": self.mean, "std": self.std, "indicator": self.indicator}


NUMERIC_TRANSFORMS = ("standard", "robust", "quantile")
NUMERIC_EMBEDDINGS = ("none", "periodic", "ple")
ONE_HOT_MAX_CATEGORIES = 8  # categorical columns with more categories are embedded when embeddings are on
SMOOTH_CLIP_AT = 3.0


@keras.saving.register_keras_serializable(package="automl")
class NumericTransform(keras.layers.Layer):
    """Raw numeric columns ``(batch, n)`` with NaN -> transformed ``(batch, n)``, missing -> 0.

    ``standard``: (x - mean) / std. ``robust`` (RealMLP): (x - median) / IQR, then the smooth clip
    x / sqrt(1 + (x / 3)^2), which keeps outliers from dominating. ``quantile``: the piecewise-linear
    map through each column's training quantiles and their normal scores (a quantile-to-normal
    transform, flat beyond the training range). All parameters come from the training split.
    """

    def __init__(self, kind: str, mean: list[float], std: list[float], median: list[float],
                 robust_scale: list[float], knots: list[list[float]], scores: list[list[float]],
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if kind not in NUMERIC_TRANSFORMS:
            raise ValueError(f"unknown numeric transform {kind!r}")
        self.kind = kind
        self.mean, self.std, self.median, self.robust_scale = mean, std, median, robust_scale
        self.knots, self.scores = knots, scores

    def call(self, inputs: Any) -> Any:
        x = ops.cast(inputs, "float32")
        missing = ops.isnan(x)
        x = ops.where(missing, ops.zeros_like(x), x)
        if self.kind == "standard":
            out = (x - ops.convert_to_tensor(self.mean)) / ops.convert_to_tensor(self.std)
        elif self.kind == "robust":
            z = (x - ops.convert_to_tensor(self.median)) * ops.convert_to_tensor(self.robust_scale)
            out = z / ops.sqrt(1.0 + ops.square(z / SMOOTH_CLIP_AT))
        else:
            out = piecewise_linear(x, self.knots, self.scores)
        return ops.where(missing, ops.zeros_like(out), out)

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "kind": self.kind, "mean": self.mean, "std": self.std,
                "median": self.median, "robust_scale": self.robust_scale, "knots": self.knots, "scores": self.scores}


@keras.saving.register_keras_serializable(package="automl")
class MissingIndicators(keras.layers.Layer):
    """1.0 where the listed columns of a raw numeric matrix are missing, so the network can use it."""

    def __init__(self, columns: list[int], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.columns = [int(c) for c in columns]

    def call(self, inputs: Any) -> Any:
        return ops.cast(ops.isnan(ops.take(ops.cast(inputs, "float32"), self.columns, axis=1)), "float32")

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return (input_shape[0], len(self.columns))

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "columns": self.columns}


@keras.saving.register_keras_serializable(package="automl")
class ValueIndicators(keras.layers.Layer):
    """One-hot view of a whole-number column: 1.0 where the value equals each training value (a
    missing or unseen value: all zeros). Lets the network learn an effect per school id or per
    count, which a single scaled input cannot."""

    def __init__(self, values: list[float], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.values = [float(v) for v in values]

    def call(self, inputs: Any) -> Any:
        x = ops.cast(inputs, "float32")
        return ops.cast(ops.equal(x, ops.convert_to_tensor([self.values])), "float32")

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return (input_shape[0], len(self.values))

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "values": self.values}


DAYS_PER_YEAR = 365.2425
CALENDAR_WIDTHS = {"weekday": 7, "year": 2, "day": 2}


@keras.saving.register_keras_serializable(package="automl")
class CalendarFeatures(keras.layers.Layer):
    """A datetime column (days since 1970-01-01 UTC, NaN when missing) -> where it falls in the calendar:
    ``weekday`` one-hot (Monday first), ``year`` and ``day`` as the sine and cosine of the time of year
    and the time of day. A missing date gives zeros."""

    def __init__(self, parts: list[str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        unknown = set(parts) - set(CALENDAR_WIDTHS)
        if unknown:
            raise ValueError(f"unknown calendar parts {sorted(unknown)}")
        self.parts = list(parts)

    def call(self, inputs: Any) -> Any:
        days = ops.cast(inputs, "float32")
        present = ops.cast(ops.logical_not(ops.isnan(days)), "float32")
        days = ops.where(ops.isnan(days), ops.zeros_like(days), days)
        out = []
        if "weekday" in self.parts:
            weekday = ops.mod(ops.floor(days) + 3.0, 7.0)  # 1970-01-01 was a Thursday
            out.append(ops.cast(ops.equal(weekday, ops.convert_to_tensor([[0.0, 1, 2, 3, 4, 5, 6]])), "float32"))
        for part, period in (("year", DAYS_PER_YEAR), ("day", 1.0)):
            if part in self.parts:
                angle = (2.0 * math.pi / period) * ops.mod(days, period)
                out.append(ops.concatenate([ops.sin(angle), ops.cos(angle)], axis=-1))
        joined = out[0] if len(out) == 1 else ops.concatenate(out, axis=-1)
        return joined * present

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return (input_shape[0], sum(CALENDAR_WIDTHS[p] for p in self.parts))

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "parts": self.parts}


@keras.saving.register_keras_serializable(package="automl")
class PiecewiseLinearEncoding(keras.layers.Layer):
    """PLE (Gorishniy et al., 2022) of some raw numeric columns: one value in [0, 1] per quantile bin
    saying how far past the bin's left edge the value lies; ``(batch, columns, bins)``. Missing values
    are encoded as the column's training median."""

    def __init__(self, columns: list[int], knots: list[list[float]], median: list[float], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.columns = [int(c) for c in columns]
        self.knots, self.median = knots, median

    def bins(self) -> int:
        return max(2, max(len(k) for k in self.knots)) - 1

    def call(self, inputs: Any) -> Any:
        x = ops.take(ops.cast(inputs, "float32"), self.columns, axis=1)
        x = ops.where(ops.isnan(x), ops.convert_to_tensor(self.median), x)
        left, widths = segments(ops.convert_to_tensor(matrix(self.knots, self.bins() + 1)))
        safe = ops.where(widths > 0, widths, ops.ones_like(widths))
        return ops.where(widths > 0, ops.clip((x[:, :, None] - left) / safe, 0.0, 1.0), 0.0)

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return (input_shape[0], len(self.columns), self.bins())

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "columns": self.columns, "knots": self.knots, "median": self.median}


@keras.saving.register_keras_serializable(package="automl")
class PerFeatureDense(keras.layers.Layer):
    """A separate dense map per column: ``(batch, columns, d_in)`` -> ``(batch, columns * units)``."""

    def __init__(self, units: int, activation: str | None = "relu", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.units = int(units)
        self.activation = keras.activations.get(activation)
        self._activation_name = activation

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        n, d = int(input_shape[1]), int(input_shape[2])  # type: ignore[arg-type]
        self.kernel = self.add_weight(shape=(n, d, self.units), initializer="glorot_uniform", name="kernel")
        self.bias = self.add_weight(shape=(n, self.units), initializer="zeros", name="bias")

    def call(self, inputs: Any) -> Any:
        y = self.activation(ops.einsum("bnd,ndu->bnu", inputs, self.kernel) + self.bias)
        return ops.reshape(y, (-1, y.shape[1] * self.units))

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return (input_shape[0], int(input_shape[1]) * self.units)  # type: ignore[arg-type]

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "units": self.units, "activation": self._activation_name}


@keras.saving.register_keras_serializable(package="automl")
class PeriodicEmbedding(keras.layers.Layer):
    """RealMLP's PBLD embedding of transformed numeric columns: per column, ``frequencies`` periodic
    features cos(2 pi (w x + b)) with w ~ N(0, sigma), mapped linearly to ``units - 1`` values and
    joined to x itself; ``(batch, columns * units)``."""

    def __init__(self, columns: list[int], frequencies: int = 16, units: int = 4, sigma: float = 0.1,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.columns = [int(c) for c in columns]
        self.frequencies, self.units, self.sigma = int(frequencies), int(units), float(sigma)

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        n, f, u = len(self.columns), self.frequencies, self.units - 1
        self.frequency = self.add_weight(shape=(n, f), name="frequency",
                                         initializer=keras.initializers.RandomNormal(stddev=self.sigma))
        self.phase = self.add_weight(shape=(n, f), name="phase",
                                     initializer=keras.initializers.RandomUniform(-0.5, 0.5))
        self.kernel = self.add_weight(shape=(n, f, u), initializer="glorot_uniform", name="kernel")
        self.bias = self.add_weight(shape=(n, u), initializer="zeros", name="bias")

    def call(self, inputs: Any) -> Any:
        x = ops.take(ops.cast(inputs, "float32"), self.columns, axis=1)[:, :, None]
        periodic = ops.cos(2.0 * math.pi * (x * self.frequency + self.phase))
        mapped = ops.einsum("bnf,nfu->bnu", periodic, self.kernel) + self.bias
        y = ops.concatenate([x, mapped], axis=-1)
        return ops.reshape(y, (-1, len(self.columns) * self.units))

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return (input_shape[0], len(self.columns) * self.units)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "columns": self.columns, "frequencies": self.frequencies,
                "units": self.units, "sigma": self.sigma}


@keras.saving.register_keras_serializable(package="automl")
class TargetOutput(keras.layers.Layer):
    """A regression network's standardised output -> the target in its own units (see
    ``automl.preprocessing.targets``): ``inverse(z * std + mean)``."""

    def __init__(self, transform: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.transform = transform
        self._target = TargetTransform.from_dict(transform)

    def call(self, inputs: Any) -> Any:
        target = self._target
        return target.inverse(ops.cast(inputs, "float32") * target.std + target.mean)

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "transform": self.transform}


@dataclass(frozen=True)
class Encoding:
    """How a trial turns raw columns into the network's input vector."""

    numeric_transform: str = "standard"
    numeric_embedding: str = "none"  # none | periodic | ple
    embedding_units: int = 8  # per embedded numeric column
    category_embedding: int = 0  # 0: one-hot everywhere; else the embedding size of wide categorical columns
    one_hot_integers: bool = False  # also one-hot encode numeric columns of a few distinct whole numbers


def idle_encoding_options(specs: list[FeatureSpec]) -> set[str]:
    """The ``Encoding`` options that would leave these columns' encoding unchanged, so a search does
    not spend trials varying them: no numeric column (numeric_transform), no whole-number codes
    (one_hot_integers), no numeric column with three or more distinct values (numeric_embedding),
    no categorical column wider than ``ONE_HOT_MAX_CATEGORIES`` (category_embedding)."""
    numeric = [s for s in specs if s.kind != "categorical"]
    idle = set() if numeric else {"numeric_transform"}
    if not any(s.codes for s in numeric):
        idle.add("one_hot_integers")
    if not any(len(s.knots) >= 3 for s in numeric):
        idle.add("numeric_embedding")
    if not any(s.kind == "categorical" and len(s.encoded_vocabulary()) > ONE_HOT_MAX_CATEGORIES for s in specs):
        idle.add("category_embedding")
    return idle


def build_inputs(specs: list[FeatureSpec], encoding: Encoding | None = None) -> tuple[dict[str, Any], Any]:
    """One ``keras.Input`` per column (the serving contract) and the concatenated encoded features.

    Numeric, boolean and datetime columns (days since 1970) are joined into one matrix and encoded by
    vectorised layers (transform, missing indicators, optional embeddings of columns with three or more
    distinct values), a datetime column also by its place in the calendar; categorical columns are
    one-hot encoded, or embedded when wide and asked for (columns of names or identifiers not at all:
    ``FeatureSpec.encoded_vocabulary``).
    """
    encoding = encoding or Encoding()
    inputs: dict[str, Any] = {}
    encoded: list[Any] = []
    numeric = [s for s in specs if s.kind != "categorical"]
    if numeric:
        for spec in numeric:
            inputs[spec.key] = keras.Input(shape=(1,), name=spec.key, dtype="float32")
        columns = [inputs[s.key] for s in numeric]
        raw = columns[0] if len(columns) == 1 else keras.layers.Concatenate(name="numeric")(columns)
        transformed = NumericTransform(
            encoding.numeric_transform, mean=[s.mean for s in numeric], std=[s.std for s in numeric],
            median=[s.median for s in numeric], robust_scale=[s.robust_scale for s in numeric],
            knots=[s.knots or [s.mean] for s in numeric], scores=[s.scores or [0.0] for s in numeric],
            name="numeric_transform",
        )(raw)
        encoded.append(transformed)
        indicated = [i for i, s in enumerate(numeric) if s.missing_indicator]
        if indicated:
            encoded.append(MissingIndicators(indicated, name="missing_indicators")(raw))
        if encoding.one_hot_integers:
            for spec in numeric:
                if spec.codes:
                    encoded.append(ValueIndicators(spec.codes, name=f"{spec.key}_codes")(inputs[spec.key]))
        for spec in numeric:
            if spec.calendar:
                encoded.append(CalendarFeatures(spec.calendar, name=f"{spec.key}_calendar")(inputs[spec.key]))
        embedded = [i for i, s in enumerate(numeric) if len(s.knots) >= 3]
        if embedded and encoding.numeric_embedding == "periodic":
            encoded.append(PeriodicEmbedding(embedded, units=encoding.embedding_units,
                                             name="periodic_embedding")(transformed))
        elif embedded and encoding.numeric_embedding == "ple":
            ple = PiecewiseLinearEncoding(embedded, knots=[numeric[i].knots for i in embedded],
                                          median=[numeric[i].median for i in embedded], name="ple")(raw)
            encoded.append(PerFeatureDense(encoding.embedding_units, name="ple_embedding")(ple))
    for spec in specs:
        if spec.kind != "categorical" or not spec.vocabulary:
            continue
        tensor = keras.Input(shape=(1,), name=spec.key, dtype="string")
        inputs[spec.key] = tensor
        vocabulary = spec.encoded_vocabulary()
        if encoding.category_embedding and len(vocabulary) > ONE_HOT_MAX_CATEGORIES:
            index = keras.layers.StringLookup(vocabulary=vocabulary, num_oov_indices=1,
                                              name=f"{spec.key}_lookup")(tensor)
            vectors = keras.layers.Embedding(len(vocabulary) + 1, encoding.category_embedding,
                                             name=f"{spec.key}_embedding")(index)
            encoded.append(keras.layers.Flatten(name=f"{spec.key}_flat")(vectors))
        else:
            encoded.append(keras.layers.StringLookup(vocabulary=vocabulary, num_oov_indices=1,
                                                     output_mode="one_hot", name=f"{spec.key}_lookup")(tensor))
    if not encoded:
        raise SearchFailed("No usable feature column: every feature is empty in the training split.")
    features = encoded[0] if len(encoded) == 1 else keras.layers.Concatenate(name="features")(encoded)
    return inputs, features


@keras.saving.register_keras_serializable(package="automl")
class BackbonePreprocess(keras.layers.Layer):
    """0-255 images -> what a Keras Applications backbone expects, inside the saved model.

    ``mode``: ``tf`` scales to [-1, 1] (MobileNetV2), ``caffe`` flips RGB to BGR and subtracts
    ImageNet's channel means (ResNet50), ``none`` passes the values on (EfficientNet rescales
    itself). Grayscale images are repeated to three channels first.
    """

    CAFFE_MEANS = (103.939, 116.779, 123.68)  # B, G, R

    def __init__(self, mode: str = "none", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if mode not in ("tf", "caffe", "none"):
            raise ValueError(f"unknown backbone preprocessing mode {mode!r}")
        self.mode = mode

    def call(self, inputs: Any) -> Any:
        x = ops.cast(inputs, self.compute_dtype)
        if x.shape[-1] == 1:
            x = ops.concatenate([x, x, x], axis=-1)
        if self.mode == "tf":
            return x / 127.5 - 1.0
        if self.mode == "caffe":
            return ops.flip(x, axis=-1) - ops.cast(ops.convert_to_tensor(self.CAFFE_MEANS), self.compute_dtype)
        return x

    def compute_output_shape(self, input_shape: Any) -> Any:
        return (*input_shape[:-1], 3)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "mode": self.mode}
