"""Temperature scaling inside the served model: its probabilities' log-odds divided by a fitted T.

The last layer of a calibrated classifier (``automl.insight.calibration`` fits T and decides
when to apply it), so ``predict_proba``, batch scoring, MC dropout and the exported
``.keras`` file and SavedModel all answer calibrated probabilities with no extra step.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from automl.hypermodels.ensemble import inputs_like

EPS = 1e-7


@keras.saving.register_keras_serializable(package="automl")
class TemperatureScaling(keras.layers.Layer):
    """``softmax(log p / T)`` for one distribution over classes (``mode="softmax"``), or
    ``sigmoid(logit p / T)`` for independent probabilities (``mode="sigmoid"``: binary, multilabel)."""

    def __init__(self, temperature: float, mode: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if mode not in ("softmax", "sigmoid"):
            raise ValueError(f"mode must be softmax or sigmoid, not {mode!r}")
        self.temperature = float(temperature)
        self.mode = mode

    def call(self, inputs: Any) -> Any:
        p = ops.clip(ops.cast(inputs, "float32"), EPS, 1.0 - EPS)
        if self.mode == "softmax":
            return ops.softmax(ops.log(p) / self.temperature, axis=-1)
        return ops.sigmoid((ops.log(p) - ops.log1p(-p)) / self.temperature)

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "temperature": self.temperature, "mode": self.mode}


def with_temperature(model: keras.Model, temperature: float, task: str) -> keras.Model:
    """``model`` followed by temperature scaling, on the same inputs."""
    inputs = inputs_like(model)
    scaled = TemperatureScaling(temperature, "softmax" if task == "multiclass" else "sigmoid",
                                name="temperature_scaling", dtype="float32")(model(inputs))
    return keras.Model(inputs=inputs, outputs=scaled, name="automl_calibrated")
