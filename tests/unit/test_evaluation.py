"""Held-out metrics agree with hand-computed values on small, known predictions."""

from __future__ import annotations

import numpy as np
import pytest

from automl.search.evaluation import evaluate


def test_binary_metrics_and_confusion_matrix() -> None:
    y = np.array([0, 0, 1, 1]).reshape(-1, 1)
    p = np.array([0.1, 0.6, 0.8, 0.4]).reshape(-1, 1)
    ev = evaluate("binary", y, p, ["no", "yes"])
    assert ev.metrics["accuracy"] == 0.5 and ev.metrics["balanced_accuracy"] == 0.5
    assert ev.metrics["roc_auc"] == pytest.approx(0.75)
    assert ev.metrics["f1"] == pytest.approx(0.5)
    assert ev.metrics["log_loss"] == pytest.approx(-np.mean(np.log([0.9, 0.4, 0.8, 0.4])))
    assert ev.confusion_matrix == {"labels": ["no", "yes"], "matrix": [[1, 1], [1, 1]],
                                   "layout": "rows: true class, columns: predicted class"}


def test_multiclass_macro_metrics() -> None:
    y = np.array([0, 1, 2, 2])
    p = np.array([[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8], [0.6, 0.3, 0.1]])
    ev = evaluate("multiclass", y, p, ["a", "b", "c"])
    assert ev.metrics["accuracy"] == 0.75
    assert ev.metrics["balanced_accuracy"] == pytest.approx((1 + 1 + 0.5) / 3)
    assert ev.metrics["f1"] == pytest.approx((2 / 3 + 1 + 2 / 3) / 3)
    assert ev.metrics["roc_auc"] is not None
    assert ev.confusion_matrix is not None and ev.confusion_matrix["matrix"][2] == [1, 0, 1]


def test_undefined_metric_is_none_not_an_error() -> None:
    ev = evaluate("binary", np.array([1, 1]), np.array([0.7, 0.9]), [0, 1])
    assert ev.metrics["roc_auc"] is None and ev.metrics["accuracy"] == 1.0


def test_multilabel_metrics() -> None:
    y = np.array([[1, 0], [0, 1], [1, 1], [0, 0]])
    p = np.array([[0.9, 0.2], [0.2, 0.7], [0.8, 0.4], [0.1, 0.1]])
    ev = evaluate("multilabel", y, p, ["a", "b"])
    assert ev.metrics["subset_accuracy"] == 0.75 and ev.metrics["accuracy"] == pytest.approx(7 / 8)
    assert ev.metrics["roc_auc"] == pytest.approx(1.0)
    assert ev.confusion_matrix is not None and ev.confusion_matrix["matrices"][1] == [[2, 0], [1, 1]]


def test_regression_metrics() -> None:
    ev = evaluate("regression", np.array([1.0, 2.0, 3.0, 4.0]), np.array([1.0, 2.0, 3.0, 6.0]), None)
    assert ev.metrics["mae"] == 0.5 and ev.metrics["rmse"] == pytest.approx(1.0)
    assert ev.metrics["r2"] == pytest.approx(1 - 4 / 5)
    assert ev.confusion_matrix is None
