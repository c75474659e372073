"""Feature specifications fitted on the training split.

Raw values become input arrays by the rules in ``automl.preprocessing.values``, shared by
training and serving. Everything else (imputation, scaling, quantile maps,
vocabularies) happens inside the model, from the statistics fitted here: mean and standard
deviation, median and a robust (interquartile) scale, and up to ``MAX_KNOTS`` quantile
knots with their normal scores, so that any numeric transform or embedding a trial picks
can be built without looking at the data again.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from automl.preprocessing.values import MISSING_TOKEN, cells_to_array

MAX_VOCABULARY = 1000
# A text column in which more than this share of the training rows hold a value seen in no other row
# is a column of names or identifiers: no new row shares its values, so the model encodes none of
# them (AutoGluon drops such columns too). One-hot encoded, they let a network fit the training rows
# one by one instead of learning from the other columns: on Forbes2000's market values (company names)
# a 60 s job reached R^2 0.20 with them and 0.81-0.82 without (gradient boosting: 0.74).
IDENTIFIER_SHARE = 0.5
MAX_KNOTS = 33  # quantile knots per numeric column: 32 segments for the quantile map and PLE bins
# A numeric column of at most this many distinct whole numbers may also be one-hot encoded. Ids of
# places and groups often run past 100 (VietNamI's 194 communes, nlschools' 133 classes): at 100, a
# 60 s job there scored R^2 0.38 and 0.43 where gradient boosting, splitting the ids, reaches 0.50
# and 0.45; at 256, 0.51 and 0.47-0.48 (docs/benchmarks.md).
MAX_CODES = 256
# ... and at most this many one-hot code inputs in all: a table of image pixels uploaded as columns
# (784 columns of 0-255) would otherwise get 200,000 of them. Columns with the fewest codes keep theirs.
MAX_CODE_INPUTS = 1024


@dataclass(frozen=True)
class FeatureSpec:
    name: str  # column name as in the dataset
    key: str  # Keras input name (sanitised, unique)
    kind: str  # numeric | boolean | categorical
    mean: float = 0.0
    std: float = 1.0
    missing_indicator: bool = False
    vocabulary: list[str] = field(default_factory=list)
    median: float = 0.0
    robust_scale: float = 1.0  # 1 / interquartile range (half the range, then 1, when that is 0)
    knots: list[float] = field(default_factory=list)  # distinct training quantiles, increasing
    scores: list[float] = field(default_factory=list)  # the normal score of each knot's quantile level
    codes: list[float] = field(default_factory=list)  # whole-number columns: their distinct training values
    # Categorical: a column of names or identifiers (see IDENTIFIER_SHARE), whose values the model
    # does not encode.
    identifier: bool = False
    # Datetime: which calendar positions the model also takes from the date (``calendar_parts``).
    calendar: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeatureSpec:
        return cls(**data)

    def encoded_vocabulary(self) -> list[str]:
        """The categories the model gives a one-hot column or an embedding of their own; any other
        value is the lookup's unknown category. A column of identifiers keeps only the missing-value
        token, so the model still takes it as an input (the serving contract) and learns nothing from it."""
        return [MISSING_TOKEN] if self.identifier else self.vocabulary

    def public_schema(self) -> dict[str, Any]:
        """What a client needs to know to send this column."""
        schema: dict[str, Any] = {"name": self.name, "type": self.kind, "nullable": True}
        if self.kind == "categorical":
            schema["categories"] = [v for v in self.vocabulary if v != MISSING_TOKEN][:100]
            if self.identifier:
                schema["identifier"] = True  # names or identifiers: taken, but nothing is learned from them
        if self.kind == "datetime":
            schema["format"] = "ISO 8601 date or date-time (2024-05-17, 2024-05-17T08:30:00Z)"
        return schema


def known_categories(feature: dict[str, Any]) -> frozenset[str] | None:
    """The training values a categorical column's new value can be called unseen against, or None where
    an unknown value proves nothing: the vocabulary was full (``MAX_VOCABULARY``), so training also met
    values it could not keep, or the column holds names or identifiers, where every new row brings one.
    Shared by the input warnings and the drift monitor."""
    vocabulary = feature.get("vocabulary") or []
    if len(vocabulary) >= MAX_VOCABULARY or feature.get("identifier"):
        return None
    return frozenset(vocabulary) - {MISSING_TOKEN}


def input_key(name: str, taken: set[str]) -> str:
    key = re.sub(r"[^0-9A-Za-z_]", "_", name) or "col"
    if not key[0].isalpha():
        key = f"c_{key}"
    candidate, n = key, 1
    while candidate in taken:
        n += 1
        candidate = f"{key}_{n}"
    taken.add(candidate)
    return candidate


def fit_features(train: pd.DataFrame, column_types: dict[str, str], targets: set[str]) -> list[FeatureSpec]:
    """Statistics for every feature column (all but ``targets``), from the training rows only."""
    specs: list[FeatureSpec] = []
    taken: set[str] = set()
    for name, kind in column_types.items():
        if name in targets:
            continue
        key = input_key(name, taken)
        if kind in ("numeric", "boolean", "datetime"):
            values = column_to_array(train[name], kind)
            finite = values[np.isfinite(values)]
            mean = float(finite.mean()) if finite.size else 0.0
            std = float(finite.std()) if finite.size else 1.0
            if not math.isfinite(std) or std < 1e-12:
                std = 1.0
            knots, scores = quantile_knots(finite)
            specs.append(
                FeatureSpec(
                    name=name,
                    key=key,
                    kind=kind,
                    mean=mean,
                    std=std,
                    missing_indicator=bool(finite.size < values.size),
                    median=float(np.median(finite)) if finite.size else 0.0,
                    robust_scale=robust_scale(finite),
                    knots=knots,
                    scores=scores,
                    codes=integer_codes(finite) if kind != "boolean" else [],
                    calendar=calendar_parts(finite) if kind == "datetime" else [],
                )
            )
        else:
            strings = column_to_array(train[name], kind).ravel()
            counts = pd.Series(strings).value_counts()
            vocabulary = [str(v) for v in counts.index[:MAX_VOCABULARY]]
            once = int(counts[counts == 1].sum())
            specs.append(FeatureSpec(name=name, key=key, kind=kind, vocabulary=vocabulary,
                                     identifier=once > IDENTIFIER_SHARE * len(strings)))
    return limit_codes(specs)


def limit_codes(specs: list[FeatureSpec], max_inputs: int = MAX_CODE_INPUTS) -> list[FeatureSpec]:
    """Whole-number codes for at most ``max_inputs`` one-hot inputs in all, kept by the columns with the
    fewest codes; the others are numeric columns only."""
    kept: set[str] = set()
    total = 0
    for spec in sorted((s for s in specs if s.codes), key=lambda s: len(s.codes)):
        if total + len(spec.codes) > max_inputs:
            break
        kept.add(spec.key)
        total += len(spec.codes)
    return [s if not s.codes or s.key in kept else replace(s, codes=[]) for s in specs]


def calendar_parts(days: np.ndarray) -> list[str]:
    """Where in the calendar a datetime column's training values fall, where that can teach the model
    something: the day of the week where dates come days apart (a median gap under a week between the
    distinct days: daily rows, events; not monthly or weekly figures, whose weekday is noise), the
    time of year where they span a year or more, and the time of day where two or more times are seen.
    Trends, weekly and yearly seasons and daily cycles are common in dated rows, and a network would
    not find them in a count of days alone."""
    if days.size == 0:
        return []
    parts = []
    distinct = np.unique(np.floor(days))
    if distinct.size >= 3 and float(np.median(np.diff(distinct))) < 7:
        parts.append("weekday")
    if float(days.max() - days.min()) >= 365:
        parts.append("year")
    if np.unique(np.round(np.mod(days, 1.0) * 1440)).size >= 2:
        parts.append("day")
    return parts


def robust_scale(values: np.ndarray) -> float:
    """RealMLP's robust scale: 1 / IQR, else 2 / range, else 1 (a constant column)."""
    if values.size == 0:
        return 1.0
    q25, q75 = np.quantile(values, [0.25, 0.75])
    if q75 > q25:
        return float(1.0 / (q75 - q25))
    low, high = float(values.min()), float(values.max())
    return float(2.0 / (high - low)) if high > low else 1.0


def integer_codes(values: np.ndarray, max_codes: int = MAX_CODES) -> list[float]:
    """The distinct values of a column of whole numbers with 3 to ``max_codes`` of them, each seen at
    least twice on average (school ids, teacher years, counts): what a one-hot view of it needs."""
    if values.size == 0 or not np.all(values == np.round(values)):
        return []
    distinct = np.unique(values)
    if not 3 <= distinct.size <= max_codes or distinct.size > values.size / 2:
        return []
    return [float(v) for v in distinct]


def quantile_knots(values: np.ndarray, max_knots: int = MAX_KNOTS) -> tuple[list[float], list[float]]:
    """Distinct quantiles of ``values`` and the normal score of each one's level.

    Tied quantiles (a column that is 0 in 70 % of rows) collapse into one knot at the mean
    of their levels, so the knots increase strictly. The piecewise-linear map through
    (knot, score) is a quantile-to-normal transform; its segments are the bins of the
    piecewise-linear encoding.
    """
    if values.size == 0:
        return [], []
    from scipy.special import ndtri

    levels = np.linspace(0.0, 1.0, max_knots)
    quantiles = np.quantile(values.astype("float64"), levels)
    knots, grouped = np.unique(quantiles.astype("float32"), return_inverse=True)
    mean_levels = np.bincount(grouped, weights=levels) / np.bincount(grouped)
    edge = 0.5 / max(values.size, 2)
    scores = ndtri(np.clip(mean_levels, edge, 1.0 - edge))
    return [float(k) for k in knots], [round(float(z), 6) for z in scores]


def column_to_array(series: pd.Series, kind: str) -> np.ndarray:
    """A stored dataset column -> the model's input array, shape (n, 1) (a cell that is not a value of
    ``kind`` is missing)."""
    return cells_to_array(series, kind).array


def frame_to_inputs(frame: pd.DataFrame, specs: list[FeatureSpec]) -> dict[str, np.ndarray]:
    return {spec.key: column_to_array(frame[spec.name], spec.kind) for spec in specs}
