"""Held-out metrics of a final model, computed with scikit-learn from its predictions.

Classification: accuracy, balanced accuracy, log loss, ROC AUC and F1 (macro for
multiclass and multilabel) and a confusion matrix. Regression: MAE, RMSE and R².
A metric that is undefined on the given rows (ROC AUC when a split holds one class) is None.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn import metrics as skm

MAIN_METRIC = {"binary": "accuracy", "multiclass": "accuracy", "multilabel": "accuracy", "regression": "r2"}


@dataclass
class Evaluation:
    metrics: dict[str, float | None]
    confusion_matrix: dict[str, Any] | None


def _safe(fn: Any, *args: Any, **kwargs: Any) -> float | None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            value = float(fn(*args, **kwargs))
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def evaluate(task: str, y_true: np.ndarray, output: np.ndarray, labels: list[Any] | None) -> Evaluation:
    """``output`` is the model's raw output; ``labels`` names the classes (or target columns)."""
    output = np.asarray(output, dtype="float64")
    if task == "regression":
        y = np.asarray(y_true, dtype="float64").reshape(-1)
        pred = output.reshape(-1)
        return Evaluation(
            metrics={
                "mae": _safe(skm.mean_absolute_error, y, pred),
                "rmse": _safe(skm.root_mean_squared_error, y, pred),
                "r2": _safe(skm.r2_score, y, pred),
                "n": float(len(y)),
            },
            confusion_matrix=None,
        )
    if task == "multilabel":
        return _multilabel(np.asarray(y_true).astype("int64"), output, labels)
    y = np.asarray(y_true).reshape(-1).astype("int64")
    if task == "binary":
        positive = np.clip(output.reshape(-1), 0.0, 1.0)
        probs = np.stack([1.0 - positive, positive], axis=1)
    else:
        probs = output / output.sum(axis=1, keepdims=True)
    n_classes = probs.shape[1]
    pred = probs.argmax(axis=1)
    if task == "binary":
        roc_auc = _safe(skm.roc_auc_score, y, probs[:, 1])
        f1 = _safe(skm.f1_score, y, pred, zero_division=0)
    else:
        roc_auc = _safe(skm.roc_auc_score, y, probs, multi_class="ovr", average="macro",
                        labels=list(range(n_classes)))
        f1 = _safe(skm.f1_score, y, pred, average="macro", labels=list(range(n_classes)), zero_division=0)
    matrix = skm.confusion_matrix(y, pred, labels=list(range(n_classes)))
    return Evaluation(
        metrics={
            "accuracy": _safe(skm.accuracy_score, y, pred),
            "balanced_accuracy": _safe(skm.balanced_accuracy_score, y, pred),
            "log_loss": _safe(skm.log_loss, y, probs, labels=list(range(n_classes))),
            "roc_auc": roc_auc,
            "f1": f1,
            "n": float(len(y)),
        },
        confusion_matrix={"labels": labels, "matrix": matrix.tolist(),
                          "layout": "rows: true class, columns: predicted class"},
    )


def main_score(task: str, y_true: np.ndarray, output: np.ndarray) -> float:
    """The task's main metric (``MAIN_METRIC``) of a model's raw output, quickly: accuracy (for
    multilabel, the share of labels right) or R²."""
    output = np.asarray(output, dtype="float64")
    if task == "regression":
        return float(skm.r2_score(np.asarray(y_true, dtype="float64").reshape(-1), output.reshape(-1)))
    if task == "multilabel":
        return float(np.mean((output >= 0.5) == (np.asarray(y_true) > 0.5)))
    y = np.asarray(y_true).reshape(-1).astype("int64")
    pred = (output.reshape(-1) > 0.5).astype("int64") if task == "binary" else output.argmax(axis=1)
    return float(np.mean(pred == y))


def _roc_auc_multilabel(y: np.ndarray, probs: np.ndarray) -> float | None:
    scores = [_safe(skm.roc_auc_score, y[:, j], probs[:, j]) for j in range(int(y.shape[-1]))]
    defined = [s for s in scores if s is not None]
    return float(np.mean(defined)) if defined else None


def _multilabel(y: np.ndarray, output: np.ndarray, labels: list[Any] | None) -> Evaluation:
    probs = np.clip(output, 1e-7, 1 - 1e-7)
    pred = (probs >= 0.5).astype("int64")
    per_label_balanced = [_safe(skm.balanced_accuracy_score, y[:, j], pred[:, j]) for j in range(y.shape[1])]
    balanced = [b for b in per_label_balanced if b is not None]
    matrices = skm.multilabel_confusion_matrix(y, pred)
    return Evaluation(
        metrics={
            "subset_accuracy": _safe(skm.accuracy_score, y, pred),
            "accuracy": float(1.0 - skm.hamming_loss(y, pred)),
            "balanced_accuracy": float(np.mean(balanced)) if balanced else None,
            "log_loss": float(np.mean(-(y * np.log(probs) + (1 - y) * np.log(1 - probs)))),
            "roc_auc": _roc_auc_multilabel(y, probs),
            "f1": _safe(skm.f1_score, y, pred, average="macro", zero_division=0),
            "n": float(len(y)),
        },
        confusion_matrix={"labels": labels, "matrices": matrices.tolist(),
                          "layout": "per label: [[tn, fp], [fn, tp]]"},
    )
