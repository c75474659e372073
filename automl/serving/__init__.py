"""Serving: validate instances against a model's inputs, keep models loaded, predict.

``inputs`` is TensorFlow-free; ``predictor`` loads TensorFlow on first use. The API asks the
``ModelCache`` for a ``Predictor`` only in prediction routes, so a process that never predicts
never imports TensorFlow.
"""

from automl.serving.cache import ModelCache
from automl.serving.inputs import instances_to_inputs

__all__ = ["ModelCache", "instances_to_inputs"]
