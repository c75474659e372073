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
