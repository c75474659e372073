from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from automl.datasets.targets import encode_labels, encode_multilabel, resolve_multilabel, resolve_target, split_rows
from automl.errors import InvalidJobRequest
from automl.search.objectives import resolve_objective

TYPES = {"x": "numeric", "y": "categorical"}


def test_unknown_target_lists_columns() -> None:
    with pytest.raises(InvalidJobRequest) as caught:
        resolve_target("label", TYPES, None)
    assert "x, y" in caught.value.message and "target" in caught.value.errors


def test_constant_target() -> None:
    with pytest.raises(InvalidJobRequest, match="constant"):
        resolve_target("y", TYPES, pd.Series(["a"] * 30))


def test_class_with_one_row_is_named() -> None:
    values = pd.Series(["a"] * 20 + ["b"] * 20 + ["lonely"])
    with pytest.raises(InvalidJobRequest) as caught:
        resolve_target("y", TYPES, values)
    assert "'lonely' (1 row)" in caught.value.message


def test_too_few_rows() -> None:
    with pytest.raises(InvalidJobRequest, match="Too few rows"):
        resolve_target("x", TYPES, pd.Series([1.0, 2.0, None] * 4))


@pytest.mark.parametrize(
    ("kind", "values", "task", "classes"),
    [
        ("categorical", ["a", "b", "c"] * 10, "multiclass", ["a", "b", "c"]),
        ("categorical", ["no", "yes"] * 15, "binary", ["no", "yes"]),
        ("boolean", [True, False] * 15, "binary", [False, True]),
        ("numeric", [0.0, 1.0, 2.0] * 10, "multiclass", [0, 1, 2]),
        ("numeric", list(np.linspace(0, 1, 30)), "regression", None),
    ],
)
def test_auto_task(kind: str, values: list[object], task: str, classes: list[object] | None) -> None:
    info = resolve_target("t", {"t": kind, "x": "numeric"}, pd.Series(values))
    assert (info.task, info.classes) == (task, classes)


def test_requested_task_must_fit() -> None:
    with pytest.raises(InvalidJobRequest, match="Regression needs a numeric target"):
        resolve_target("y", TYPES, pd.Series(["a", "b"] * 15), "regression")
    with pytest.raises(InvalidJobRequest, match="exactly 2 classes"):
        resolve_target("y", TYPES, pd.Series(["a", "b", "c"] * 10), "binary")


def test_objective_must_fit_task() -> None:
    assert resolve_objective("binary", "val_auc", {}) == ("val_auc", "max")
    assert resolve_objective("binary", None, {}) == ("val_log_loss", "min")
    assert resolve_objective("multiclass", None, {}) == ("val_log_loss", "min")
    assert resolve_objective("multilabel", "val_binary_accuracy", {}) == ("val_binary_accuracy", "max")
    assert resolve_objective("regression", None, {}) == ("val_rmse", "min")
    with pytest.raises(InvalidJobRequest, match="val_loss, val_mae, val_rmse"):
        resolve_objective("regression", "val_accuracy", {})


def test_regression_val_loss_needs_a_fixed_loss() -> None:
    with pytest.raises(InvalidJobRequest, match="Fix the loss"):
        resolve_objective("regression", "val_loss", {})
    with pytest.raises(InvalidJobRequest, match="Fix the loss"):
        resolve_objective("regression", "val_loss", {"loss": {"values": ["mse", "mae"]}})
    assert resolve_objective("regression", "val_loss", {"loss": {"fixed": "huber"}}) == ("val_loss", "min")


def test_classification_val_loss_needs_a_fixed_label_smoothing() -> None:
    """A smoothed loss is larger by construction, so val_loss would rank trials by their smoothing."""
    with pytest.raises(InvalidJobRequest, match="label smoothing"):
        resolve_objective("multiclass", "val_loss", {})
    assert resolve_objective("binary", "val_loss", {"label_smoothing": {"fixed": 0.0}}) == ("val_loss", "min")


def test_multilabel_targets_are_validated_and_encoded() -> None:
    frame = pd.DataFrame({
        "a": [True, False] * 15, "b": ["yes", "no", "no"] * 10, "c": list(range(30)), "d": [1] * 29 + [0],
    })
    types = {"a": "boolean", "b": "categorical", "c": "numeric", "d": "numeric"}
    info = resolve_multilabel(["a", "b"], types, frame)
    assert info.task == "multilabel"
    assert info.classes == [[False, True], ["no", "yes"]]
    encoded = encode_multilabel(frame, ["a", "b"], info.classes)
    assert encoded.shape == (30, 2)
    assert encoded[:3].tolist() == [[1, 1], [0, 0], [1, 0]]
    with pytest.raises(InvalidJobRequest, match="'c' has 30 distinct values") as excinfo:
        resolve_multilabel(["a", "c"], types, frame)
    with pytest.raises(InvalidJobRequest, match="'d' has only 1 row"):
        resolve_multilabel(["a", "d"], types, frame)
    with pytest.raises(InvalidJobRequest, match="'zz'"):
        resolve_multilabel(["a", "zz"], types, frame)
    with pytest.raises(InvalidJobRequest, match="not regression"):
        resolve_multilabel(["a", "b"], types, frame, "regression")
    with pytest.raises(InvalidJobRequest, match="several target columns"):
        resolve_target("a", types, frame["a"], "multilabel")
    assert excinfo.value.errors


def test_split_is_stratified_disjoint_and_deterministic() -> None:
    labels = encode_labels(pd.Series(["a"] * 50 + ["b"] * 10 + ["c"] * 3), ["a", "b", "c"])
    split = split_rows(len(labels), seed=3, labels=labels)
    parts = [split.train, split.validation, split.test]
    assert sum(len(p) for p in parts) == len(labels)
    assert len(set(np.concatenate(parts))) == len(labels)
    for part in parts:
        assert set(labels[part]) == {0, 1, 2}
    again = split_rows(len(labels), seed=3, labels=labels)
    assert np.array_equal(again.test, split.test)
