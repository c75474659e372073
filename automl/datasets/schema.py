"""Column type inference and profiling: numeric, boolean, datetime or categorical, with missing counts."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from automl.datasets.dates import column_to_days, days_to_text

TRUE_WORDS = frozenset({"true", "t", "yes", "y"})
FALSE_WORDS = frozenset({"false", "f", "no", "n"})
MAX_REPORTED_VALUES = 20


def _json_scalar(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def to_boolean(series: pd.Series) -> pd.Series:
    """Map a boolean-like column to pandas' nullable boolean dtype."""
    if pd.api.types.is_bool_dtype(series):
        return series.astype("boolean")

    def convert(value: Any) -> Any:
        if pd.isna(value):
            return pd.NA
        if isinstance(value, bool):
            return value
        word = str(value).strip().lower()
        if word in TRUE_WORDS:
            return True
        if word in FALSE_WORDS:
            return False
        return pd.NA

    return series.map(convert).astype("boolean")


BOOLEAN_WORDS = frozenset({"true", "false"})
# What spreadsheets, statistics packages and ARFF/OpenML exports write in a cell for a missing number.
# A column of numbers and these is numeric, these its missing values; so are they in a prediction.
MISSING_MARKERS = frozenset({"?", "-", "--", ".", "na", "n/a", "n.a.", "nan", "null", "none", "nil", "missing",
                             "unknown", "#n/a", "#na", "#value!", "#div/0!", "#ref!", "#num!"})
# A text column is a datetime column when at least this share of its filled cells are ISO 8601 dates
# (the others are taken as missing in training, and refused with a message in a prediction).
DATETIME_SHARE = 0.99


def infer_type(series: pd.Series) -> str:
    """``boolean`` only for values that are booleans (a bool column, or the words true and false);
    other two-valued text such as yes/no stays ``categorical``, so that predictions, classes and
    profiles show the values as they were uploaded. Text that is numbers but for ``MISSING_MARKERS``
    is ``numeric``; ISO 8601 dates (``DATETIME_SHARE`` of the cells) or a date-time dtype ``datetime``."""
    return _classify(series)[0]


def _classify(series: pd.Series) -> tuple[str, np.ndarray | None]:
    """``infer_type``'s answer, and for a text column of dates the days its filled cells hold (read once,
    for the profile too)."""
    if pd.api.types.is_bool_dtype(series):
        return "boolean", None
    if pd.api.types.is_numeric_dtype(series):
        return "numeric", None
    if pd.api.types.is_datetime64_any_dtype(series):
        return "datetime", None
    values = series.dropna()
    if len(values) == 0:
        return "categorical", None
    distinct = values.unique()
    if all(isinstance(v, bool | np.bool_) for v in distinct):
        return "boolean", None
    words = {str(v).strip().lower() for v in distinct}
    if words == BOOLEAN_WORDS:
        return "boolean", None
    if _numbers_and_missing_markers(words):
        return "numeric", None
    days = _dates(values)
    if days is not None:
        return "datetime", days
    return "categorical", None


def _numbers_and_missing_markers(words: set[str]) -> bool:
    """Distinct cells (stripped, lower case) that are numbers, but for missing markers (``?`` in an OpenML
    export, ``.`` from Stata), which kept pandas from reading the column as numbers."""
    numbers = words - MISSING_MARKERS - {""}
    if not numbers or numbers == words:
        return False
    return all(not pd.to_numeric(pd.Series(part), errors="coerce").isna().any()
               for part in _few_then_all(list(numbers)))


def _dates(values: pd.Series) -> np.ndarray | None:
    """The days of ``values`` (NaN where a cell is not a date) if at least ``DATETIME_SHARE`` of them are
    ISO 8601 dates, else None."""
    days = None
    for part in _few_then_all(values):
        days, bad = column_to_days(pd.Series(part))
        filled = int((~np.isnan(days)).sum() + bad.sum())
        if not filled or int(bad.sum()) > (1 - DATETIME_SHARE) * filled:
            return None
    return days  # the last part is every value


def _few_then_all(values: Any, few: int = 1000) -> list[Any]:
    """The first ``few`` values, then all of them: a text column that fails a test on its first rows
    (most of them) is not read whole, which on a million rows costs about a second a column."""
    if len(values) <= few:
        return [values]
    return [values.iloc[:few] if isinstance(values, pd.Series) else values[:few], values]


def profile_columns(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Per column: name, type, missing count, distinct count and a summary of the values."""
    profiles: list[dict[str, Any]] = []
    for name in frame.columns:
        series = frame[name]
        kind, days = _classify(series)
        if kind == "boolean":
            series = to_boolean(series)
        elif kind == "numeric":
            series = pd.to_numeric(series, errors="coerce")  # missing markers are missing
        profile: dict[str, Any] = {
            "name": str(name),
            "type": kind,
            "missing": int(series.isna().sum()),
            "unique": int(series.nunique(dropna=True)),
        }
        if kind == "numeric":
            described = series.describe()
            profile["stats"] = {
                key: _json_scalar(described.get(key)) for key in ("mean", "std", "min", "max")
            }
        elif kind == "datetime":
            if days is None:  # a typed date-time column
                days, _ = column_to_days(series)
            found = days[np.isfinite(days)]
            profile["stats"] = {"min": days_to_text(float(found.min())) if found.size else None,
                                "max": days_to_text(float(found.max())) if found.size else None}
        else:
            counts = series.astype("object").value_counts(dropna=True).head(MAX_REPORTED_VALUES)
            profile["top_values"] = {str(k): int(v) for k, v in counts.items()}
        profiles.append(profile)
    return profiles
