"""Keras layers built from fitted feature specs: raw columns in, one dense vector out."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from automl.errors import SearchFailed
from automl.preprocessing.features import FeatureSpec


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


def build_inputs(specs: list[FeatureSpec]) -> tuple[dict[str, Any], Any]:
    """One ``keras.Input`` per column and the concatenated encoded features."""
    inputs: dict[str, Any] = {}
    encoded: list[Any] = []
    for spec in specs:
        if spec.kind == "categorical":
            if not spec.vocabulary:
                continue
            tensor = keras.Input(shape=(1,), name=spec.key, dtype="string")
            lookup = keras.layers.StringLookup(
                vocabulary=spec.vocabulary, num_oov_indices=1, output_mode="one_hot", name=f"{spec.key}_lookup"
            )
            inputs[spec.key] = tensor
            encoded.append(lookup(tensor))
        else:
            tensor = keras.Input(shape=(1,), name=spec.key, dtype="float32")
            layer = StandardizeWithMissing(spec.mean, spec.std, spec.missing_indicator, name=f"{spec.key}_scale")
            inputs[spec.key] = tensor
            encoded.append(layer(tensor))
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
