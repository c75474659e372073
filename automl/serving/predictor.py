"""A loaded model that answers predict / predict_proba in the original label space.

Inference goes through compiled TensorFlow functions traced at load for any batch size
(``automl.serving.compiled.CompiledCall``; XLA where the model's inputs allow), never
``model.predict``, which builds a dataset and a progress loop on every call.

Monte Carlo dropout (``mc_samples``): the instances are repeated ``mc_samples`` times in
one batch and run with dropout active, so every copy gets its own dropout mask; the mean
and standard deviation over the copies are returned. Batch normalization layers are set
non-trainable at load, which in Keras 3 keeps them on their moving statistics even in
training mode, so only dropout varies.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from automl.errors import InvalidInstances, UnsupportedForTask
from automl.insight.drift import Counter as DriftCounter
from automl.registry import load_keras_model, read_metadata
from automl.serving.adapters import Batch, instances_to_inputs
from automl.serving.checks import InputProfile
from automl.serving.compiled import CompiledCall
from automl.serving.explain import Explainer
from automl.serving.images import ImageCall

MAX_MC_SAMPLES = 1000
MAX_MC_ROWS = 200_000  # instances x mc_samples in one request


@dataclass
class Output:
    """Model output for some instances: the mean, and its std over MC samples (None without)."""

    mean: np.ndarray
    std: np.ndarray | None


class Predictor:
    """Holds one model and its metadata; thread-safe for concurrent predictions."""

    def __init__(self, model_dir: Path, xla: bool = True) -> None:
        import keras

        from automl.hypermodels.ensemble import all_layers
        from automl.hypermodels.training import has_dropout

        self.model_id = model_dir.name  # the registry names each model's folder by its id
        self.metadata = read_metadata(model_dir)
        self.task: str = self.metadata["task"]
        self.target: str = self.metadata["target"]
        self.targets: list[str] = self.metadata.get("targets") or [self.target]
        self.classes: list[Any] | None = self.metadata.get("classes")
        self.features: list[dict[str, Any]] = self.metadata["features"]
        self.kind: str = self.metadata.get("kind", "tabular")
        self.image: dict[str, Any] = self.metadata.get("image") or {}
        self.input_profile = InputProfile.of(self.features) if self.kind == "tabular" else None
        self.explainer = Explainer.of(self.features) if self.kind == "tabular" else None
        profile = self.metadata.get("profile")
        self.drift_counter = DriftCounter(self.features, profile) if self.kind == "tabular" and profile else None
        self.model = load_keras_model(model_dir)
        self.supports_uncertainty = has_dropout(self.model)
        for layer in all_layers(self.model):  # an ensemble's members too
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.trainable = False
        self.call: Any = ImageCall(self.model, self.image["channels"]) if self.kind == "image" \
            else CompiledCall(self.model, xla=xla)
        self.call(self.example_inputs())  # the first call allocates; pay it at load, not on a request

    def example_inputs(self) -> Any:
        """One all-missing row (a black image for image models), for warming the model up."""
        if self.kind == "image":
            side = self.image["size"]
            return [np.zeros((side, side, self.image["channels"]), dtype=np.uint8)]
        return instances_to_inputs([{f["name"]: None for f in self.features}], self.features, self.targets)

    def _output(self, batch: Batch, mc_samples: int | None) -> Output:
        inputs = batch.inputs
        if not mc_samples:
            return Output(self.call(inputs), None)
        if not self.supports_uncertainty:
            raise UnsupportedForTask(
                "This model has no dropout, so Monte Carlo dropout cannot estimate uncertainty. "
                "Leave out mc_samples, or train with dropout > 0."
            )
        n = batch.rows
        if mc_samples > MAX_MC_SAMPLES or n * mc_samples > MAX_MC_ROWS:
            raise InvalidInstances(
                f"mc_samples x instances may be at most {MAX_MC_ROWS} (and mc_samples at most {MAX_MC_SAMPLES}); "
                f"got {mc_samples} x {n}. Send fewer instances per request or fewer samples.",
                {"mc_samples": [f"at most {min(MAX_MC_SAMPLES, MAX_MC_ROWS // n)} for {n} instances"]},
            )
        if self.kind == "image":
            draws = self.call(inputs, mc_samples)
            return Output(draws.mean(axis=0), draws.std(axis=0))
        import tensorflow as tf

        tiled = {key: tf.constant(np.concatenate([value] * mc_samples)) for key, value in inputs.items()
                 if key in self.model.input}
        draws = np.asarray(self.model(tiled, training=True), dtype="float64")
        draws = draws.reshape(mc_samples, n, -1)
        return Output(draws.mean(axis=0), draws.std(axis=0))

    def require_classifier(self) -> None:
        if self.task == "regression":
            raise UnsupportedForTask(
                "predict_proba is only for classification models; this model does regression. "
                "Use predict for numeric predictions."
            )

    def probabilities(self, batch: Batch, mc_samples: int | None = None) -> Output:
        """Binary/multiclass: one column per class, rows sum to 1. Multilabel: P(positive) per label."""
        self.require_classifier()
        out = self._output(batch, mc_samples)
        if self.task == "binary":
            positive = np.clip(out.mean.reshape(-1), 0.0, 1.0)
            std = None if out.std is None else np.repeat(out.std.reshape(-1, 1), 2, axis=1)
            return Output(np.stack([1.0 - positive, positive], axis=1), std)
        if self.task == "multilabel":
            return Output(np.clip(out.mean, 0.0, 1.0), out.std)
        return Output(out.mean / out.mean.sum(axis=1, keepdims=True), out.std)

    def predict(self, batch: Batch, mc_samples: int | None = None) -> tuple[list[Any], list[Any] | None]:
        """Predictions, and with ``mc_samples`` the standard deviation of each.

        Regression: the std of the value. Binary/multiclass: the std of the predicted class's
        probability. Multilabel: a dict per instance, and a std per label.
        """
        if self.task == "regression":
            out = self._output(batch, mc_samples)
            std = None if out.std is None else [float(v) for v in out.std.reshape(-1)]
            return [float(v) for v in out.mean.reshape(-1)], std
        assert self.classes is not None
        probs = self.probabilities(batch, mc_samples)
        if self.task == "multilabel":
            predictions = [
                {name: pair[int(p >= 0.5)] for name, pair, p in zip(self.targets, self.classes, row, strict=True)}
                for row in probs.mean
            ]
            label_std = None if probs.std is None else [
                dict(zip(self.targets, (float(v) for v in row), strict=True)) for row in probs.std
            ]
            return predictions, label_std
        indices = probs.mean.argmax(axis=1)
        chosen_std = None
        if probs.std is not None:
            chosen_std = [float(probs.std[i, k]) for i, k in enumerate(indices)]
        return [self.classes[int(i)] for i in indices], chosen_std

    def explanations(self, batch: Batch) -> list[dict[str, Any]]:
        """Per instance, each column's effect on the output (``automl.serving.explain``); table models only."""
        if self.explainer is None:
            raise UnsupportedForTask("explain is for table models; this model takes images. Leave out explain.")
        return self.explainer.explain(self.call, batch.inputs, batch.rows, self.task, self.classes, self.targets)

    @property
    def proba_columns(self) -> list[Any]:
        """What each probability column is: classes, or the label columns for multilabel."""
        return self.targets if self.task == "multilabel" else list(self.classes or [])

    def proba_header(self) -> dict[str, Any]:
        """What a ``predict_proba`` answer says before its rows: the columns (and multilabel's positives)."""
        head: dict[str, Any] = {"classes": self.proba_columns}
        if self.task == "multilabel":
            head["positive_classes"] = [pair[1] for pair in self.classes or []]
        return head
