"""Dates and date-times as the service reads them: ISO 8601 text (or Parquet's typed date-times) ->
days since 1970-01-01 UTC.

One set of rules for a whole column (profiling an upload, training, batch scoring) and for one JSON
value (a prediction), which give the same number for the same text: a time zone or ``Z`` converts to
UTC, a time without one is taken as UTC, a date alone is its midnight. Other forms (05/17/2024,
17.05.2024) are ambiguous between countries and stay text.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd

# A date, an optional time (to the minute or finer) and an optional UTC offset or Z: what
# ``datetime.fromisoformat`` and pandas' ISO8601 parser both read alike.
ISO_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?)?(?:Z|[+-]\d{2}:?\d{2})?")
_MORE_THAN_MICROSECONDS = re.compile(r"(\.\d{6})\d+")  # fromisoformat takes at most six digits
SECONDS_PER_DAY = 86_400.0
EPOCH = datetime(1970, 1, 1)


def text_to_days(text: str) -> float | None:
    """One ISO 8601 date or date-time -> days since 1970-01-01 UTC; None if ``text`` is not one."""
    text = text.strip()
    if not ISO_DATETIME.fullmatch(text):
        return None
    try:
        moment = datetime.fromisoformat(_MORE_THAN_MICROSECONDS.sub(r"\1", text))
    except ValueError:  # 2024-13-01, 2024-02-30
        return None
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return (moment - EPOCH).total_seconds() / SECONDS_PER_DAY


def column_to_days(series: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """A column -> (days since 1970-01-01 UTC as float64, NaN where missing or not a date; which filled
    cells are not ISO 8601 dates). Typed date-times (Parquet) are taken as they are."""
    if pd.api.types.is_datetime64_any_dtype(series):
        moments = series.dt.tz_convert("UTC") if series.dt.tz is not None else series.dt.tz_localize("UTC")
        return _moments_to_days(moments), np.zeros(len(series), dtype=bool)
    text = series.astype("string").str.strip()
    present = (text.fillna("") != "").to_numpy(dtype=bool)
    iso = text.fillna("").str.fullmatch(ISO_DATETIME.pattern).to_numpy(dtype=bool)
    moments = pd.Series(pd.to_datetime(text.where(iso), format="ISO8601", utc=True, errors="coerce"))
    days = _moments_to_days(moments)
    beyond = iso & np.isnan(days)  # what pandas could not represent: read one by one
    for row in np.flatnonzero(beyond):
        found = text_to_days(str(text.iloc[row]))
        days[row] = np.nan if found is None else found
    return days, present & np.isnan(days)


def _moments_to_days(moments: pd.Series) -> np.ndarray:
    """UTC moments (of whatever resolution pandas chose) -> days since 1970-01-01, NaN for NaT."""
    micro = moments.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy(dtype="datetime64[us]")
    return np.where(np.isnat(micro), np.nan, micro.astype("int64") / (SECONDS_PER_DAY * 1e6))


def days_to_text(days: float) -> str | None:
    """Days since 1970-01-01 UTC -> ISO 8601 text (a date alone at midnight): how dates are shown back."""
    if not math.isfinite(days):
        return None
    seconds = round(days * SECONDS_PER_DAY)
    shown = EPOCH + timedelta(seconds=seconds)
    return shown.date().isoformat() if seconds % 86_400 == 0 else shown.isoformat()
