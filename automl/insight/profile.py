"""The training profile: per input column, what the model saw in its training rows.

Numbers: missing share, minimum, maximum, mean, deciles, and the share of rows in each decile
bin (the reference a population stability index compares new inputs with). Booleans and
categories: the share of each value (the ``TOP_CATEGORIES`` most frequent, the rest together
as ``other_share``) and the missing share. Dates are profiled as numbers (days since 1970-01-01
UTC, what the model and the drift monitor count in) and shown as ISO 8601 text (``shown``). Saved
with the model and shown by ``GET /api/v1/models/{id}/profile``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from automl.datasets.dates import days_to_text
from automl.preprocessing.features import FeatureSpec
from automl.preprocessing.values import MISSING_TOKEN

TOP_CATEGORIES = 20
RANGE_MARGIN = 0.1  # a number beyond the training range by more than this share of it is out of range
                    # (input warnings and drift alike)
DECILES = np.linspace(0.0, 1.0, 11)


def _share(count: float, total: int) -> float:
    return round(float(count) / total, 6) if total else 0.0


def numeric_bins(edges: list[float], values: np.ndarray) -> np.ndarray:
    """Counts of ``values`` (finite ones) per bin: below the first edge, between edges, from the last on."""
    return np.bincount(np.searchsorted(np.asarray(edges, dtype="float64"), values, side="right"),
                       minlength=len(edges) + 1)


def column_profile(feature: FeatureSpec, values: np.ndarray) -> dict[str, Any]:
    values = values.reshape(-1)
    total = int(values.size)
    base: dict[str, Any] = {"name": feature.name, "kind": feature.kind, "rows": total}
    if feature.kind == "categorical":
        strings = values.astype(str)
        missing = strings == MISSING_TOKEN
        kept, counts = np.unique(strings[~missing], return_counts=True)
        order = np.argsort(-counts, kind="stable")[:TOP_CATEGORIES]
        top = {str(kept[i]): _share(counts[i], total) for i in order}
        return {**base, "missing_share": _share(missing.sum(), total), "distinct": int(kept.size),
                "categories": top, "other_share": _share(counts.sum() - counts[order].sum(), total)}
    numbers = values.astype("float64")
    finite = numbers[np.isfinite(numbers)]
    missing_share = _share(total - finite.size, total)
    if feature.kind == "boolean":
        return {**base, "missing_share": missing_share,
                "categories": {"true": _share((finite > 0.5).sum(), total),
                               "false": _share((finite <= 0.5).sum(), total)}, "other_share": 0.0}
    if finite.size == 0:
        return {**base, "missing_share": missing_share, "min": None, "max": None, "mean": None,
                "quantiles": [], "bins": {"edges": [], "shares": [0.0]}}
    quantiles = np.quantile(finite, DECILES)
    edges = [float(e) for e in np.unique(quantiles[1:-1])]
    counts = numeric_bins(edges, finite)
    return {**base, "missing_share": missing_share, "min": float(finite.min()), "max": float(finite.max()),
            "mean": float(finite.mean()), "quantiles": [float(q) for q in quantiles],
            "bins": {"edges": edges, "shares": [_share(c, total) for c in counts]}}


def training_profile(features: list[FeatureSpec], x_train: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    """One entry per input column, in the model's input order."""
    return [column_profile(feature, x_train[feature.key]) for feature in features]


def shown(profile: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The profile as users read it: a date column's minimum, maximum, mean, deciles and bin edges as ISO
    8601 text (a date alone where it falls on midnight UTC), every other column as it is."""
    def as_text(value: Any) -> Any:
        return days_to_text(float(value)) if isinstance(value, int | float) else value

    out = []
    for column in profile:
        if column.get("kind") == "datetime":
            column = {**column, **{key: as_text(column.get(key)) for key in ("min", "max", "mean")},
                      "quantiles": [as_text(q) for q in column.get("quantiles", [])]}
            if "bins" in column:
                column["bins"] = {**column["bins"], "edges": [as_text(e) for e in column["bins"]["edges"]]}
        out.append(column)
    return out
