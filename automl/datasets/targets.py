"""What can be learned from a target column: the task, the classes, and the three splits.

Checked when a job is submitted (so a bad request is a 422, not a failed job), and again
by the worker, which uses the same functions to build its splits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from automl.errors import InvalidJobRequest

TASKS = ("binary", "multiclass", "multilabel", "regression")
MAX_LABELS = 100
MIN_ROWS = 20
MIN_ROWS_PER_CLASS = 3  # one each for training, validation and the held-out test split
MAX_CLASSES = 200
MAX_AUTO_CLASSES_FOR_INTEGERS = 20
VALIDATION_FRACTION = 0.15
TEST_FRACTION = 0.15
TRAIN_FRACTION = 1.0 - VALIDATION_FRACTION - TEST_FRACTION


@dataclass(frozen=True)
class TargetInfo:
    task: str
    classes: list[Any] | None
    n_rows: int  # rows with a target value


def _python_label(value: Any, integer_valued: bool) -> Any:
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, float, np.integer, np.floating)):
        return int(value) if integer_valued else float(value)
    return str(value)


def resolve_target(
    target: str, column_types: dict[str, str], values: pd.Series | None, requested_task: str = "auto"
) -> TargetInfo:
    """Validate ``target`` and decide the task. ``values`` is the target column (None if absent)."""
    if target not in column_types or values is None:
        columns = list(column_types)
        raise InvalidJobRequest(
            f"Column '{target}' does not exist in this dataset. Choose the target from: {', '.join(columns)}.",
            errors={"target": [f"unknown column; columns are {columns}"]},
        )
    kind = column_types[target]
    if kind == "datetime":
        raise InvalidJobRequest(
            f"Column '{target}' holds dates; a date cannot be the target. Choose a numeric, boolean or "
            "categorical column (a duration or a count of days can be added to the table as a number).",
            errors={"target": ["a datetime column"]},
        )
    present = values.dropna()
    n_rows = len(present)
    if n_rows < MIN_ROWS:
        raise InvalidJobRequest(
            f"Too few rows to split into training, validation and test sets: {n_rows} rows have a value "
            f"for '{target}', at least {MIN_ROWS} are needed.",
            errors={"target": [f"{n_rows} rows with a value; need {MIN_ROWS}"]},
        )
    n_unique = int(present.nunique())
    if n_unique < 2:
        only = present.iloc[0] if n_rows else None
        raise InvalidJobRequest(
            f"Target '{target}' is constant (every row is {only!r}); there is nothing to learn. "
            "Choose a column whose values vary.",
            errors={"target": ["constant column"]},
        )

    integer_valued = bool(
        kind == "numeric" and np.all(np.mod(present.to_numpy(dtype="float64"), 1) == 0)
    )
    task = requested_task
    if task == "auto":
        if kind == "boolean" or n_unique == 2:
            task = "binary"
        elif kind == "categorical" or (integer_valued and n_unique <= MAX_AUTO_CLASSES_FOR_INTEGERS):
            task = "multiclass"
        else:
            task = "regression"
    if task not in TASKS:
        raise InvalidJobRequest(f"Unknown task '{task}'. Use auto, {', '.join(TASKS)}.", {"task": ["unknown"]})
    if task == "multilabel":
        raise InvalidJobRequest(
            "A multilabel task needs several target columns: send target as a list, e.g. "
            '"target": ["label_a", "label_b"].',
            errors={"target": ["give a list of columns for multilabel"]},
        )

    if task == "regression":
        if kind != "numeric":
            raise InvalidJobRequest(
                f"Regression needs a numeric target, but '{target}' is {kind}. Use task 'auto' or a "
                "classification task.",
                errors={"task": [f"target column is {kind}"]},
            )
        return TargetInfo(task=task, classes=None, n_rows=n_rows)

    if task == "binary" and n_unique != 2:
        raise InvalidJobRequest(
            f"Binary classification needs exactly 2 classes; '{target}' has {n_unique}. "
            "Use task 'multiclass' or 'auto'.",
            errors={"task": [f"target has {n_unique} classes"]},
        )
    if n_unique > MAX_CLASSES:
        raise InvalidJobRequest(
            f"'{target}' has {n_unique} distinct values; classification supports at most {MAX_CLASSES}. "
            "If it is a quantity, use task 'regression'.",
            errors={"task": [f"{n_unique} classes"]},
        )
    counts = present.value_counts()
    rare = counts[counts < MIN_ROWS_PER_CLASS]
    if len(rare):
        described = ", ".join(f"{label!r} ({count} row{'s' if count != 1 else ''})" for label, count in rare.items())
        raise InvalidJobRequest(
            f"Every class needs at least {MIN_ROWS_PER_CLASS} rows (one each for training, validation and "
            f"test); too rare in '{target}': {described}. Remove those rows or merge the classes.",
            errors={"target": [f"rare classes: {described}"]},
        )
    classes = sorted(_python_label(v, integer_valued) for v in present.unique())
    if n_rows * TEST_FRACTION < len(classes):
        raise InvalidJobRequest(
            f"Too few rows to split: {n_rows} rows for {len(classes)} classes. Each split needs every class.",
            errors={"target": ["too few rows per class"]},
        )
    return TargetInfo(task=task, classes=classes, n_rows=n_rows)


def resolve_multilabel(
    targets: list[str], column_types: dict[str, str], frame: pd.DataFrame, requested_task: str = "auto"
) -> TargetInfo:
    """Validate several two-valued target columns; ``frame`` holds those columns.

    ``classes`` is one ``[negative, positive]`` pair per column, in column order.
    """
    if requested_task not in ("auto", "multilabel"):
        raise InvalidJobRequest(
            f"Several target columns make a multilabel task, not {requested_task}. Use task 'multilabel' or "
            "'auto', or give one target column.",
            errors={"task": ["a list of targets is multilabel"]},
        )
    unknown = [t for t in targets if t not in column_types]
    if unknown:
        raise InvalidJobRequest(
            f"Column(s) {', '.join(map(repr, unknown))} do not exist in this dataset. Choose targets from: "
            f"{', '.join(column_types)}.",
            errors={"target": [f"unknown columns {unknown}"]},
        )
    dated = [t for t in targets if column_types[t] == "datetime"]
    if dated:
        raise InvalidJobRequest(
            f"Column(s) {', '.join(map(repr, dated))} hold dates; a label column must be two-valued "
            "(true/false, 0/1, yes/no).",
            errors={"target": [f"datetime columns {dated}"]},
        )
    if len(set(targets)) != len(targets):
        raise InvalidJobRequest("A target column is listed twice; list each label column once.",
                                errors={"target": ["duplicate columns"]})
    if len(targets) > MAX_LABELS:
        raise InvalidJobRequest(f"At most {MAX_LABELS} label columns are supported; got {len(targets)}.",
                                errors={"target": ["too many columns"]})
    present = frame[targets].dropna()
    n_rows = len(present)
    if n_rows < MIN_ROWS:
        raise InvalidJobRequest(
            f"Too few rows to split: {n_rows} rows have a value in every target column, at least {MIN_ROWS} "
            "are needed.",
            errors={"target": [f"{n_rows} complete rows; need {MIN_ROWS}"]},
        )
    classes: list[Any] = []
    problems: list[str] = []
    for name in targets:
        column = present[name]
        kind = column_types[name]
        integer_valued = bool(kind == "numeric" and np.all(np.mod(column.to_numpy(dtype="float64"), 1) == 0))
        counts = column.value_counts()
        if len(counts) != 2:
            problems.append(f"'{name}' has {len(counts)} distinct values (a label column needs exactly 2)")
            continue
        if counts.min() < MIN_ROWS_PER_CLASS:
            problems.append(f"'{name}' has only {int(counts.min())} row(s) of {counts.idxmin()!r}")
            continue
        classes.append(sorted(_python_label(v, integer_valued) for v in counts.index))
    if problems:
        raise InvalidJobRequest(
            "Every multilabel target must be a two-valued column (true/false, 0/1, yes/no) with at least "
            f"{MIN_ROWS_PER_CLASS} rows of each value; fix: {'; '.join(problems)}.",
            errors={"target": problems},
        )
    return TargetInfo(task="multilabel", classes=classes, n_rows=n_rows)


def encode_multilabel(frame: pd.DataFrame, targets: list[str], classes: list[Any]) -> np.ndarray:
    """0/1 matrix, one column per target: 1 where the row holds that column's positive value."""
    columns = [encode_labels(frame[name], pair) for name, pair in zip(targets, classes, strict=True)]
    return np.stack(columns, axis=1).astype("float32")


def encode_labels(values: pd.Series, classes: list[Any]) -> np.ndarray:
    """Class index per row (classes come from ``resolve_target``)."""
    lookup = {label: index for index, label in enumerate(classes)}
    integer_valued = all(isinstance(c, int) and not isinstance(c, bool) for c in classes)
    return np.array([lookup[_python_label(v, integer_valued)] for v in values], dtype="int64")


@dataclass(frozen=True)
class Split:
    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train), "validation": len(self.validation), "test": len(self.test)}


def split_rows(n_rows: int, seed: int, labels: np.ndarray | None = None) -> Split:
    """Shuffle rows into train / validation / test; stratified by class when ``labels`` is given.

    Every class lands in every split (``resolve_target`` guarantees 3+ rows per class).
    """
    rng = np.random.default_rng(seed)
    groups = [np.arange(n_rows)] if labels is None else [np.flatnonzero(labels == c) for c in np.unique(labels)]
    train, validation, test = [], [], []
    for group in groups:
        group = rng.permutation(group)
        n = len(group)
        n_test = max(1, round(n * TEST_FRACTION))
        n_val = max(1, round(n * VALIDATION_FRACTION))
        if n - n_test - n_val < 1:
            n_test = n_val = max(1, (n - 1) // 2)
        test.append(group[:n_test])
        validation.append(group[n_test : n_test + n_val])
        train.append(group[n_test + n_val :])
    return Split(
        train=rng.permutation(np.concatenate(train)),
        validation=np.sort(np.concatenate(validation)),
        test=np.sort(np.concatenate(test)),
    )
