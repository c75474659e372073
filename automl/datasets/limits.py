"""What one upload may hold, and the checks a table (an uploaded CSV or Parquet file, an image archive's
labels.csv) gets before it is used: columns, column names, cell sizes, rows, inflated size."""

from __future__ import annotations

import csv
from dataclasses import dataclass

import pandas as pd

from automl.errors import InvalidDataset

MAX_NAME_CHARS = 255


@dataclass(frozen=True)
class UploadLimits:
    """What one upload may hold (``AUTOML_MAX_*`` settings): archives the first five, tables the last
    four (``labels.csv`` its columns and field sizes too)."""

    max_members: int = 100_000
    max_total_bytes: int = 8 * 1024**3  # inflated, counted as read
    max_member_bytes: int = 64 * 1024**2
    max_ratio: float = 200.0  # inflated / compressed, per member
    max_pixels: int = 40_000_000  # per image (width x height)
    max_columns: int = 2000
    max_field_chars: int = 100_000
    max_rows: int = 20_000_000
    max_table_bytes: int = 4 * 1024**3  # a Parquet upload, uncompressed (from its footer)


MAX_COLUMNS = UploadLimits.max_columns


def check_header(raw_header: bytes, filename: str, max_columns: int = MAX_COLUMNS) -> list[str]:
    """A CSV header line's column names as written; ``InvalidDataset`` for a header we cannot use."""
    try:
        header = next(csv.reader([raw_header.decode("utf-8-sig")]), [])
    except UnicodeDecodeError as exc:
        raise InvalidDataset(
            f"'{filename}' is not UTF-8 text (byte {exc.start} of the header). Save the CSV as UTF-8."
        ) from exc
    if len(header) > max_columns:
        raise too_many_columns(filename, len(header), max_columns)
    stripped = [name.strip() for name in header]
    check_names(stripped)
    if any(not name for name in stripped):
        position = next(i for i, name in enumerate(stripped) if not name) + 1
        raise InvalidDataset(
            f"Column {position} of the header row has no name. Give every column a name in the first line."
        )
    duplicates = sorted({name for name in stripped if stripped.count(name) > 1})
    if duplicates:
        raise InvalidDataset(
            f"The header row repeats column names: {', '.join(duplicates)}. Column names must be unique.",
            errors={"columns": duplicates},
        )
    return header


def too_many_columns(filename: str, count: int, limit: int) -> InvalidDataset:
    more = "or more " if count >= limit else ""
    return InvalidDataset(f"'{filename}' has {count} {more}columns; at most {limit} are supported "
                          "(AUTOML_MAX_COLUMNS). Keep the feature columns and the target.")


def check_names(names: list[str]) -> None:
    long = next((n for n in names if len(n) > MAX_NAME_CHARS), None)
    if long is not None:
        raise InvalidDataset(f"The column name '{long[:40]}...' has {len(long)} characters; column names may have "
                             f"at most {MAX_NAME_CHARS}.")


def check_field_sizes(frame: pd.DataFrame, filename: str, max_chars: int) -> None:
    """Refuse a cell longer than ``max_chars`` (a text blob is no tabular feature), naming where it is."""
    for name in frame.columns:
        series = frame[name]
        if not (series.dtype == object or pd.api.types.is_string_dtype(series)):
            continue
        lengths = series.map(lambda v: len(v) if isinstance(v, (str, bytes)) else 0).to_numpy()
        if len(lengths) and lengths.max() > max_chars:
            row = int(lengths.argmax())
            raise InvalidDataset(
                f"'{filename}': the value in data row {row + 1}, column '{str(name)[:80]}', has {lengths[row]} "
                f"characters; cells may have at most {max_chars} (AUTOML_MAX_FIELD_CHARS). Shorten or drop that "
                "column: long text is not a tabular feature.", {"columns": [str(name)[:80]]})
