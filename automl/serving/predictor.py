"""A loaded model that answers predict / predict_proba in the original label space.

Inference goes through ``predict_on_batch`` (a compiled call), never ``model.predict``,
which builds a dataset and a progress loop on every call.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from automl.errors import UnsupportedForTask
from automl.registry import load_keras_model, read_metadata
from automl.serving.inputs import instances_to_inputs


class Predictor:
    """Holds one model and its metadata; thread-safe for concurrent predictions."""

    def __init__(self, model_dir: Path) -> None:
        self.metadata = read_metadata(model_dir)
        self.task: str = self.metadata["task"]
        self.target: str = self.metadata["target"]
        self.classes: list[Any] | None = self.metadata.get("classes")
        self.features: list[dict[str, Any]] = self.metadata["features"]
        self.model = load_keras_model(model_dir)

    def _raw(self, instances: list[Any]) -> np.ndarray:
        inputs = instances_to_inputs(instances, self.features, self.target)
        output = self.model.predict_on_batch(inputs)
        return np.asarray(output, dtype="float64")

    def probabilities(self, instances: list[Any]) -> np.ndarray:
        if self.task == "regression":
            raise UnsupportedForTask(
                "predict_proba is only for classification models; this model does regression. "
                "Use predict for numeric predictions."
            )
        raw = self._raw(instances)
        if self.task == "binary":
            positive = np.clip(raw.reshape(-1), 0.0, 1.0)
            return np.stack([1.0 - positive, positive], axis=1)
        return raw / raw.sum(axis=1, keepdims=True)

    def predict(self, instances: list[Any]) -> list[Any]:
        if self.task == "regression":
            return [float(v) for v in self._raw(instances).reshape(-1)]
        assert self.classes is not None
        indices = self.probabilities(instances).argmax(axis=1)
        return [self.classes[int(i)] for i in indices]
