"""Predict with a loaded model: one converted ``Batch`` in, the answer document out.

The same document whatever the batch came from (JSON instances, image files); batch scoring
writes the rows of the same document a chunk at a time (``automl.serving.batch``).
"""

from __future__ import annotations

from typing import Any

from automl.serving.adapters import Batch
from automl.serving.predictor import Predictor


def answer(predictor: Predictor, batch: Batch, *, proba: bool, mc_samples: int | None = None,
           warnings: bool = False, explain: bool = False) -> dict[str, Any]:
    """``predict``: ``predictions`` in the label space; ``predict_proba``: ``classes`` and one
    ``probabilities`` row per instance. With ``mc_samples``, their standard deviation (``std``);
    for uploaded files, the file names in row order (``files``); with ``warnings`` (table models),
    per instance what in it the model never saw in training (``automl.serving.checks``); with
    ``explain`` (table models), per instance each column's effect on the output (``automl.serving.explain``)."""
    std: list[Any] | None
    if proba:
        out = predictor.probabilities(batch, mc_samples)
        document: dict[str, Any] = {**predictor.proba_header(), "probabilities": out.mean.tolist()}
        std = None if out.std is None else out.std.tolist()
    else:
        predictions, std = predictor.predict(batch, mc_samples)
        document = {"predictions": predictions}
    if batch.files is not None:
        document["files"] = batch.files
    if warnings and predictor.input_profile is not None:  # table models
        document["warnings"] = predictor.input_profile.warnings(batch.inputs, batch.rows)
    if explain:
        document["explanations"] = predictor.explanations(batch)
    if std is not None:
        document.update(std=std, mc_samples=mc_samples)
    return document
