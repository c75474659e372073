"""Input warnings: where a prediction's row does not look like the training data.

Checked against what the model saw in training, which its feature specifications already
hold (``automl.preprocessing.features.FeatureSpec``): a category never seen in training, a
number outside the training range by more than ``RANGE_MARGIN`` of that range, a missing value
in a column that had none. Warnings never change a prediction; they tell the caller which
values the model is extrapolating on.

An unknown value is not reported as never seen where it proves nothing (a full vocabulary, a
column of names or identifiers: ``automl.preprocessing.features.known_categories``).

``InputProfile`` is built once per loaded model; checking a batch compares all its number
columns in one matrix operation, so a one-row answer pays a few microseconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from automl.insight.profile import RANGE_MARGIN
from automl.preprocessing.features import known_categories
from automl.preprocessing.values import MISSING_TOKEN

MISSING = "missing, and training never had it missing"


def _shown(value: Any) -> str:
    text = repr(value.item() if hasattr(value, "item") else value)
    return text if len(text) <= 60 else text[:57] + "..."


@dataclass(frozen=True)
class _Category:
    key: str
    name: str
    seen: frozenset[str] | None  # None: unknown values prove nothing here (see known_categories)
    missing_ok: bool


@dataclass(frozen=True)
class InputProfile:
    """What the model saw in training, per input column, arranged for checking whole batches."""

    keys: list[str]  # numeric and boolean columns
    names: list[str]
    low: np.ndarray  # the lowest value not reported (training minimum minus the margin; -inf for booleans)
    high: np.ndarray
    ranges: list[tuple[float, float] | None]  # the training range, to quote
    missing_ok: np.ndarray
    categories: list[_Category]

    @classmethod
    def of(cls, features: list[dict[str, Any]]) -> InputProfile:
        keys: list[str] = []
        names: list[str] = []
        low: list[float] = []
        high: list[float] = []
        ranges: list[tuple[float, float] | None] = []
        missing_ok: list[bool] = []
        categories: list[_Category] = []
        for feature in features:
            if feature["kind"] == "categorical":
                vocabulary = feature.get("vocabulary") or []
                categories.append(_Category(
                    feature["key"], feature["name"],
                    known_categories(feature), MISSING_TOKEN in vocabulary))
                continue
            keys.append(feature["key"])
            names.append(feature["name"])
            missing_ok.append(bool(feature.get("missing_indicator", False)))
            knots = feature.get("knots") or []
            if feature["kind"] == "numeric" and knots:
                first, last = float(knots[0]), float(knots[-1])
                margin = RANGE_MARGIN * (last - first)
                low.append(first - margin)
                high.append(last + margin)
                ranges.append((first, last))
            else:
                low.append(-np.inf)
                high.append(np.inf)
                ranges.append(None)
        return cls(keys, names, np.array(low), np.array(high), ranges, np.array(missing_ok, dtype=bool), categories)

    def warnings(self, inputs: dict[str, np.ndarray], rows: int) -> list[list[str]]:
        """Per row, what in it the model never saw in training (an empty list for a familiar row)."""
        out: list[list[str]] = [[] for _ in range(rows)]
        if self.keys:
            matrix = np.concatenate([inputs[key] for key in self.keys], axis=1)
            missing = np.isnan(matrix)
            flagged = (missing & ~self.missing_ok) | (matrix < self.low) | (matrix > self.high)
            for row, column in np.argwhere(flagged):
                name, span = self.names[column], self.ranges[column]
                if missing[row, column]:
                    out[row].append(f"{name}: {MISSING}")
                elif span is not None:
                    out[row].append(f"{name}: {_shown(matrix[row, column])} is outside the training range "
                                    f"[{span[0]:.6g}, {span[1]:.6g}]")
        for category in self.categories:
            values = inputs[category.key].reshape(-1)
            for row, value in enumerate(values):
                if value == MISSING_TOKEN:
                    if not category.missing_ok:
                        out[row].append(f"{category.name}: {MISSING}")
                elif category.seen is not None and value not in category.seen:
                    out[row].append(f"{category.name}: {_shown(value)} was never seen in training")
        return out
