"""An ensemble as one Keras model: the members side by side on the same raw inputs, averaged.

Each member keeps its own preprocessing (they were trained on the same fitted features, so
they take the same inputs); ``WeightedAverage`` blends their outputs (probabilities, or
regression values in the target's units). The result saves as one ``.keras`` file, loads with
``safe_mode``, exports as a SavedModel and runs through the same compiled call as any model.
"""

from __future__ import annotations

from typing import Any

import keras


@keras.saving.register_keras_serializable(package="automl")
class WeightedAverage(keras.layers.Layer):
    """sum_i w_i * x_i over the member outputs (the weights sum to 1)."""

    def __init__(self, weights: list[float], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.member_weights = [float(w) for w in weights]

    def call(self, inputs: list[Any]) -> Any:
        out = inputs[0] * self.member_weights[0]
        for tensor, weight in zip(inputs[1:], self.member_weights[1:], strict=True):
            out = out + tensor * weight
        return out

    def compute_output_shape(self, input_shape: list[tuple[int | None, ...]]) -> tuple[int | None, ...]:
        return input_shape[0]

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "weights": self.member_weights}


def inputs_like(model: keras.Model) -> Any:
    """Fresh Keras inputs of the same names, shapes and types as ``model``'s, to wrap it in a new model."""
    if isinstance(model.input, dict):  # tables: one input per column
        return {key: keras.Input(shape=tensor.shape[1:], name=key, dtype=tensor.dtype)
                for key, tensor in model.input.items()}
    # images: one tensor
    return keras.Input(shape=model.input.shape[1:], name=model.input.name, dtype=model.input.dtype)


def build_ensemble(members: list[keras.Model], weights: list[float]) -> keras.Model:
    """One model whose output is the weighted average of ``members``' outputs on shared inputs."""
    inputs = inputs_like(members[0])
    outputs = []
    for i, member in enumerate(members):
        member.name = f"member_{i}"
        outputs.append(member({key: inputs[key] for key in member.input} if isinstance(inputs, dict) else inputs))
    blended = WeightedAverage(weights, name="ensemble", dtype="float32")(outputs)
    return keras.Model(inputs=inputs, outputs=blended, name="automl_ensemble")


def all_layers(model: keras.Model) -> list[keras.layers.Layer]:
    """Every layer of a model, inside nested models (ensemble members) too."""
    found: list[keras.layers.Layer] = []
    for layer in model.layers:
        found.append(layer)
        if isinstance(layer, keras.Model):
            found.extend(all_layers(layer))
    return found
