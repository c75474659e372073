"""Raw values -> the model's input arrays: the one conversion that training, JSON predictions and
batch scoring share.

The contract: numeric and boolean columns become float32 with NaN for missing; datetime columns
(ISO 8601 text: ``2024-05-17``, ``2024-05-17 08:30``, ``2024-05-17T08:30:00+02:00``; the rules are
``automl.datasets.dates``) become float32 days since 1970-01-01 UTC, NaN for missing; categorical
columns become strings with ``MISSING_TOKEN`` for missing. Everything else (imputation, scaling,
vocabularies, calendar features) happens inside the saved model.

Values arrive in two forms, each with one set of rules here:

* **typed values** (JSON instances): ``VALUE_RULES[kind](value)``. JSON has types, so a
  boolean sent for a number, or a NaN, is a mistake worth naming.
* **cells** (a stored dataset column, a CSV chunk read as text, a Parquet chunk):
  ``cells_to_array(series, kind)`` returns the array and which cells are not values of the
  kind, so training can take them as missing and batch scoring can name them.

Both accept the same boolean words, take the same markers of a missing number (``?``, ``n/a``, ``.``:
``automl.datasets.schema.MISSING_MARKERS``) as missing, and refuse the same magnitudes: float32 is
what the model computes in, and larger numbers would silently become infinite.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from automl.datasets.dates import column_to_days, text_to_days
from automl.datasets.schema import FALSE_WORDS, MISSING_MARKERS, TRUE_WORDS

MISSING_TOKEN = ""
FLOAT32_MAX = float(np.finfo(np.float32).max)
OUT_OF_RANGE = f"number out of range (the model takes magnitudes up to {FLOAT32_MAX:.3g})"
NOT_FINITE = "NaN and Infinity are not allowed; send null for a missing value"


class BadValue(ValueError):
    """A value that is not one of its column's kind; the message says what was expected."""


# --- typed values (JSON) ------------------------------------------------------------------------


def number(value: Any) -> float:
    if value is None:
        return math.nan
    if isinstance(value, bool):
        raise BadValue(f"expected a number or null, got {value!r}")
    if isinstance(value, (int, float)):
        try:
            result = float(value)
        except OverflowError:
            raise BadValue(OUT_OF_RANGE) from None
    elif isinstance(value, str):
        if not value.strip() or value.strip().lower() in MISSING_MARKERS:
            return math.nan
        try:
            result = float(value)
        except ValueError:
            raise BadValue(f"expected a number or null, got {value!r}"[:200]) from None
    else:
        raise BadValue(f"expected a number or null, got {type(value).__name__}")
    if not math.isfinite(result):
        raise BadValue(NOT_FINITE)
    if abs(result) > FLOAT32_MAX:
        raise BadValue(OUT_OF_RANGE)
    return result


def boolean(value: Any) -> float:
    if value is None:
        return math.nan
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, (int, float)) and value in (0, 1):
        return float(value)
    if isinstance(value, str):
        word = value.strip().lower()
        if not word:
            return math.nan
        if word in TRUE_WORDS:
            return 1.0
        if word in FALSE_WORDS:
            return 0.0
    raise BadValue(f"expected true, false or null, got {value!r}")


def category(value: Any) -> str:
    if value is None:
        return MISSING_TOKEN
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, (int, float)):
        if isinstance(value, float) and not math.isfinite(value):
            raise BadValue(NOT_FINITE)
        return str(value)
    raise BadValue(f"expected a string or null, got {type(value).__name__}")


DATETIME_PROBLEM = "expected an ISO 8601 date or date-time such as 2024-05-17 or 2024-05-17T08:30:00Z (or null)"


def moment(value: Any) -> float:
    """An ISO 8601 date or date-time (``automl.datasets.dates``) -> days since 1970-01-01 UTC."""
    if value is None:
        return math.nan
    if isinstance(value, str):
        if not value.strip():
            return math.nan
        days = text_to_days(value)
        if days is not None:
            return days
    raise BadValue(f"{DATETIME_PROBLEM}, got {value!r}"[:200])


VALUE_RULES: dict[str, Callable[[Any], Any]] = {"numeric": number, "boolean": boolean, "categorical": category,
                                                "datetime": moment}
PLAIN_TYPES: dict[str, tuple[type, ...]] = {"numeric": (float, int), "boolean": (bool,), "categorical": (str,)}
"""Per kind, the JSON types whose values need no rule beyond ``np.array`` (the vectorised path)."""


# --- cells (stored columns, CSV text, Parquet) --------------------------------------------------


@dataclass(frozen=True)
class Cells:
    """A column converted: the array (n, 1), the cells that are not values of the kind, and what was
    expected of them."""

    array: np.ndarray
    bad: np.ndarray
    problem: str


def _text(series: pd.Series) -> pd.Series:
    """Cells as stripped strings, missing where missing."""
    return series.astype("string").str.strip()


def _is_typed(series: pd.Series) -> bool:
    return bool(pd.api.types.is_bool_dtype(series) or pd.api.types.is_numeric_dtype(series))


def _numeric_cells(series: pd.Series) -> Cells:
    if _is_typed(series):
        values = series.astype("float64").to_numpy(dtype="float64", na_value=np.nan)
        bad = np.abs(values) > FLOAT32_MAX
        problem = f"Infinity and magnitudes over {FLOAT32_MAX:.3g} are not allowed; leave the cell empty when missing"
    else:
        text = _text(series)
        values = pd.to_numeric(text, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
        words = text.fillna("").str.lower()
        present = ((words != "") & ~words.isin(MISSING_MARKERS)).to_numpy(dtype=bool)
        bad = (present & np.isnan(values)) | (np.abs(values) > FLOAT32_MAX)
        problem = f"expected a number up to {FLOAT32_MAX:.3g} in magnitude (or an empty cell)"
    return Cells(np.where(bad, np.nan, values).astype("float32").reshape(-1, 1), bad, problem)


def _boolean_cells(series: pd.Series) -> Cells:
    problem = "expected true/false, yes/no, 1/0 (or an empty cell)"
    if _is_typed(series):
        values = series.astype("float64").to_numpy(dtype="float64", na_value=np.nan)
        bad = ~np.isnan(values) & ~np.isin(values, (0.0, 1.0))
    else:
        words = _text(series).str.lower()
        mapping = {**dict.fromkeys(TRUE_WORDS, 1.0), **dict.fromkeys(FALSE_WORDS, 0.0),
                   "1": 1.0, "0": 0.0, "1.0": 1.0, "0.0": 0.0}
        values = words.map(mapping).astype("Float64").to_numpy(dtype="float64", na_value=np.nan)
        bad = (words.fillna("") != "").to_numpy(dtype=bool) & np.isnan(values)
    return Cells(np.where(bad, np.nan, values).astype("float32").reshape(-1, 1), bad, problem)


def _categorical_cells(series: pd.Series) -> Cells:
    values = [MISSING_TOKEN if v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)) else str(v)
              for v in series.astype("object").tolist()]
    return Cells(np.array(values, dtype=object).reshape(-1, 1), np.zeros(len(values), dtype=bool), "")


def _datetime_cells(series: pd.Series) -> Cells:
    days, bad = column_to_days(series)
    return Cells(days.astype("float32").reshape(-1, 1), bad, DATETIME_PROBLEM)


_CELL_RULES: dict[str, Callable[[pd.Series], Cells]] = {
    "numeric": _numeric_cells, "boolean": _boolean_cells, "categorical": _categorical_cells,
    "datetime": _datetime_cells,
}


def cells_to_array(series: pd.Series, kind: str) -> Cells:
    """A column of cells -> the model's input array for a column of ``kind``; see ``Cells``."""
    return _CELL_RULES[kind](series.reset_index(drop=True))
