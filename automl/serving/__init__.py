"""Serving: turn requests into model inputs, keep models loaded, predict.

``adapters`` turns each kind of request (JSON instances, image files, a chunk of a scored file)
into one ``Batch``; ``predictor`` runs a loaded model on it through ``compiled``'s call (TensorFlow,
loaded on first use);
``batch`` scores whole CSV/Parquet files; ``cache`` and ``warmup`` keep models loaded. The API
asks the ``ModelCache`` for a ``Predictor`` only in prediction routes, so a process that never
predicts never imports TensorFlow.
"""

from automl.serving.adapters import Batch, instances_to_inputs
from automl.serving.cache import ModelCache

__all__ = ["Batch", "ModelCache", "instances_to_inputs"]
