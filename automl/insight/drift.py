"""Drift: do today's prediction inputs still look like the training rows?

What is kept of the inputs a model serves is not the rows but, per input column, counts over
the training profile's buckets (``automl.insight.profile``): for numbers, the decile bins of
the training values, the missing values and the values beyond the training range by more than
``RANGE_MARGIN`` of it; for booleans and categories, the training's most frequent values, all
others together, the values never seen in training, and the missing ones. Counts from any
number of serving processes and requests add up (``merge``), and the report compares their
shares with the training shares:

* the **population stability index** per column, PSI = sum over buckets of
  (observed share - training share) x ln(observed share / training share), shares floored at
  ``FLOOR``. Read as usual: below 0.1 stable, 0.1 to 0.25 a moderate shift, above
  ``THRESHOLD`` (0.25) a column is reported as drifted;
* the share of out-of-range numbers and of unseen categories, and the missing share against
  the training's.

A column is judged only once ``MIN_ROWS`` inputs have been counted.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from automl.insight.profile import RANGE_MARGIN, numeric_bins
from automl.preprocessing.features import known_categories
from automl.preprocessing.values import MISSING_TOKEN

THRESHOLD = 0.25
MIN_ROWS = 100
FLOOR = 1e-4


class Counter:
    """Counts one model's inputs per column over its training profile's buckets."""

    def __init__(self, features: list[dict[str, Any]], profile: list[dict[str, Any]]) -> None:
        self.columns = []
        for feature, column in zip(features, profile, strict=True):
            entry: dict[str, Any] = {"key": feature["key"], "name": column["name"], "kind": column["kind"]}
            if column["kind"] in ("numeric", "datetime"):
                entry["edges"] = np.asarray(column["bins"]["edges"], dtype="float64")
                low, high = column.get("min"), column.get("max")
                margin = RANGE_MARGIN * ((high - low) if low is not None and high is not None else 0.0)
                entry["range"] = (low - margin, high + margin) if low is not None and high is not None else None
            elif column["kind"] == "categorical":
                entry["top"] = list(column["categories"])
                entry["seen"] = known_categories(feature)
            self.columns.append(entry)

    def count(self, inputs: dict[str, np.ndarray]) -> dict[str, dict[str, Any]]:
        counts: dict[str, dict[str, Any]] = {}
        for column in self.columns:
            values = np.asarray(inputs[column["key"]]).reshape(-1)
            if column["kind"] == "categorical":
                counts[column["name"]] = _count_categories(values.astype(str), column["top"], column["seen"])
                continue
            numbers = values.astype("float64")
            finite = numbers[np.isfinite(numbers)]
            entry: dict[str, Any] = {"rows": int(values.size), "missing": int(values.size - finite.size)}
            if column["kind"] == "boolean":
                entry.update(categories={"true": int((finite > 0.5).sum()), "false": int((finite <= 0.5).sum())},
                             other=0, unseen=0)
            else:
                entry["bins"] = numeric_bins(column["edges"], finite).tolist()
                low_high = column["range"]
                entry["out_of_range"] = 0 if low_high is None else int(((finite < low_high[0])
                                                                       | (finite > low_high[1])).sum())
            counts[column["name"]] = entry
        return counts


def _count_categories(values: np.ndarray, top: list[str], seen: frozenset[str] | None) -> dict[str, Any]:
    kept, numbers = np.unique(values, return_counts=True)
    found = dict(zip(kept.tolist(), numbers.tolist(), strict=True))
    missing = found.pop(MISSING_TOKEN, 0)
    categories = {name: int(found.pop(name, 0)) for name in top}
    unseen = 0 if seen is None else sum(n for value, n in found.items() if value not in seen)
    return {"rows": int(values.size), "missing": int(missing), "categories": categories,
            "other": int(sum(found.values())), "unseen": int(unseen)}


def merge(total: dict[str, dict[str, Any]], more: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """``total`` + ``more``, column by column (``total`` is updated and returned)."""
    for name, counts in more.items():
        into = total.setdefault(name, {})
        for key, value in counts.items():
            if isinstance(value, dict):
                bucket = into.setdefault(key, {})
                for k, v in value.items():
                    bucket[k] = bucket.get(k, 0) + v
            elif isinstance(value, list):
                current = into.get(key) or [0] * len(value)
                into[key] = [a + b for a, b in zip(current, value, strict=True)]
            else:
                into[key] = into.get(key, 0) + value
    return total


def psi(expected: list[float], observed: list[float]) -> float:
    e = np.maximum(np.asarray(expected, dtype="float64"), FLOOR)
    o = np.maximum(np.asarray(observed, dtype="float64"), FLOOR)
    return float(np.sum((o - e) * np.log(o / e)))


def _shares(counts: list[int], rows: int) -> list[float]:
    return [c / rows for c in counts] if rows else [0.0] * len(counts)


def report(profile: list[dict[str, Any]], counts: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Per column: rows counted, PSI, drifted (None until ``MIN_ROWS``), missing shares, and the share of
    out-of-range numbers or unseen categories."""
    out = []
    for column in profile:
        seen = counts.get(column["name"])
        rows = int(seen["rows"]) if seen else 0
        entry: dict[str, Any] = {"name": column["name"], "kind": column["kind"], "rows": rows,
                                 "training_missing_share": column["missing_share"]}
        if not rows:
            out.append({**entry, "psi": None, "drifted": None, "missing_share": None})
            continue
        assert seen is not None
        if column["kind"] in ("numeric", "datetime"):
            expected = [*column["bins"]["shares"], column["missing_share"]]
            observed = _shares([*seen["bins"], seen["missing"]], rows)
            entry["out_of_range_share"] = round(seen["out_of_range"] / rows, 6)
        else:
            names = list(column["categories"])
            expected = [*(column["categories"][n] for n in names), column["other_share"], column["missing_share"]]
            observed = _shares([*(seen["categories"].get(n, 0) for n in names), seen["other"], seen["missing"]], rows)
            entry["unseen_share"] = round(seen["unseen"] / rows, 6)
        value = psi(expected, observed)
        out.append({**entry, "psi": round(value, 6), "drifted": value > THRESHOLD if rows >= MIN_ROWS else None,
                    "missing_share": round(seen["missing"] / rows, 6)})
    return out
