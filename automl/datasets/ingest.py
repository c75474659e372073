"""Turn an uploaded file into a stored dataset: parse, check, profile, write atomically.

The upload is parsed once here; the canonical copy is a Parquet file, so workers never
re-parse CSV dialects. Either the whole dataset folder and its record exist, or neither.
"""

from __future__ import annotations

import csv
import io
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq

from automl.datasets.images import UploadLimits, ingest_archive, is_zip, label_profile
from automl.datasets.schema import profile_columns, to_boolean
from automl.errors import InvalidDataset

PARQUET_MAGIC = b"PAR1"
CANONICAL_FILE = "data.parquet"
MAX_COLUMNS = UploadLimits.max_columns
MAX_NAME_CHARS = 255


@dataclass(frozen=True)
class IngestedDataset:
    id: str
    name: str
    source_format: str
    path: Path
    n_rows: int
    n_columns: int
    size_bytes: int
    columns: list[dict[str, Any]]
    kind: str = "tabular"
    images: dict[str, Any] | None = None  # image datasets: classes, counts, sizes, unreadable files


def detect_format(path: Path, filename: str) -> str:
    """``parquet``, ``zip`` (images) or ``csv``, by content first (a misnamed file is still read right)."""
    with path.open("rb") as handle:
        head = handle.read(4096)
    if not head:
        raise InvalidDataset("The uploaded file is empty. Upload a CSV with a header row, a Parquet file, "
                             "or a zip archive of images.")
    if head.startswith(PARQUET_MAGIC):
        return "parquet"
    if is_zip(head):
        return "zip"
    if filename.lower().endswith(".zip"):
        raise InvalidDataset(f"'{filename}' is named .zip but is not a zip archive. Upload a zip of images.")
    if filename.lower().endswith(".parquet"):
        raise InvalidDataset(f"'{filename}' is named .parquet but is not a Parquet file (no PAR1 header).")
    if b"\x00" in head:
        raise InvalidDataset(
            f"'{filename}' looks like a binary file, not CSV or Parquet. Upload a UTF-8 CSV "
            "with a header row, or a Parquet file."
        )
    return "csv"


def read_csv_header(path: Path, filename: str, max_columns: int = MAX_COLUMNS) -> list[str]:
    """The header row's column names as written; raises ``InvalidDataset`` for a header we cannot use."""
    try:
        with path.open("rb") as handle:
            raw_header = handle.readline(1_000_000)
        header = next(csv.reader([raw_header.decode("utf-8-sig")]), [])
    except UnicodeDecodeError as exc:
        raise InvalidDataset(
            f"'{filename}' is not UTF-8 text (byte {exc.start} of the header). Save the CSV as UTF-8."
        ) from exc
    if len(header) > max_columns:
        raise _too_many_columns(filename, len(header), max_columns)
    stripped = [name.strip() for name in header]
    _check_names(stripped)
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


def _too_many_columns(filename: str, count: int, limit: int) -> InvalidDataset:
    more = "or more " if count >= limit else ""
    return InvalidDataset(f"'{filename}' has {count} {more}columns; at most {limit} are supported "
                          "(AUTOML_MAX_COLUMNS). Keep the feature columns and the target.")


def _check_names(names: list[str]) -> None:
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


def csv_parse_error(filename: str, exc: Exception) -> InvalidDataset:
    """A pandas parser or decoding error as a message that says what to fix."""
    if isinstance(exc, UnicodeDecodeError):
        return InvalidDataset(
            f"'{filename}' is not UTF-8 text (invalid byte at position {exc.start}). Save the CSV as UTF-8."
        )
    detail = str(exc).strip()
    # pandas says e.g. "Error tokenizing data. C error: Expected 4 fields in line 7, saw 5"
    if "C error: " in detail:
        detail = detail.split("C error: ", 1)[1]
    return InvalidDataset(
        f"'{filename}' is not a well-formed CSV: {detail}. Every row must have as many fields as the header."
    )


def _read_csv(path: Path, filename: str, limits: UploadLimits) -> pd.DataFrame:
    read_csv_header(path, filename, limits.max_columns)
    try:
        frame = pd.read_csv(
            path,
            encoding="utf-8-sig",
            skipinitialspace=True,
            on_bad_lines="error",
            low_memory=False,
        )
    except pd.errors.EmptyDataError as exc:
        raise InvalidDataset(f"'{filename}' has no data: it needs a header row and at least one data row.") from exc
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise csv_parse_error(filename, exc) from exc
    frame.columns = pd.Index([str(c).strip() for c in frame.columns])
    return frame


def _read_parquet(path: Path, filename: str, limits: UploadLimits) -> pd.DataFrame:
    try:
        schema = pq.read_schema(path)
        if len(schema.names) > limits.max_columns:
            raise _too_many_columns(filename, len(schema.names), limits.max_columns)
        _check_names([str(n).strip() for n in schema.names])
        frame = pq.read_table(path).to_pandas()
    except InvalidDataset:
        raise
    except Exception as exc:  # pyarrow raises many types for corrupt files
        raise InvalidDataset(f"'{filename}' could not be read as Parquet: {exc}") from exc
    frame.columns = pd.Index([str(c).strip() for c in frame.columns])
    if frame.columns.duplicated().any():
        dupes = sorted(set(frame.columns[frame.columns.duplicated()]))
        raise InvalidDataset(f"Column names must be unique; repeated: {', '.join(dupes)}.")
    return frame


def read_upload(path: Path, filename: str, limits: UploadLimits | None = None) -> tuple[pd.DataFrame, str]:
    limits = limits or UploadLimits()
    fmt = detect_format(path, filename)
    frame = _read_parquet(path, filename, limits) if fmt == "parquet" else _read_csv(path, filename, limits)
    if frame.shape[1] < 2:
        raise InvalidDataset(
            f"'{filename}' has {frame.shape[1]} column; a dataset needs at least two (features and a "
            "target). If this is a CSV, check that it is comma-separated."
        )
    if frame.shape[0] == 0:
        raise InvalidDataset(f"'{filename}' has a header but no data rows.")
    check_field_sizes(frame, filename, limits.max_field_chars)
    return frame, fmt


def _normalise(frame: pd.DataFrame, columns: list[dict[str, Any]]) -> pd.DataFrame:
    """Store each column in the dtype its inferred type implies."""
    out = pd.DataFrame(index=frame.index)
    for column in columns:
        name, kind = column["name"], column["type"]
        series = frame[name]
        if kind == "numeric":
            out[name] = pd.to_numeric(series, errors="coerce").astype("float64")
        elif kind == "boolean":
            out[name] = to_boolean(series)
        else:
            out[name] = series.map(lambda v: None if pd.isna(v) else str(v)).astype("object")
    return out


def ingest_file(upload: Path, filename: str, datasets_dir: Path,
                limits: UploadLimits | None = None) -> IngestedDataset:
    """Parse ``upload``, profile it and store it under ``datasets_dir/<id>/``.

    A CSV or Parquet file becomes ``data.parquet``; a zip of images becomes ``images/*.png``
    plus ``data.parquet`` indexing them with their labels. Raises ``InvalidDataset`` (or
    ``TooLarge``) with a message that says what to fix; writes nothing then.
    """
    fmt = detect_format(upload, filename)
    dataset_id = uuid.uuid4().hex
    final_dir = datasets_dir / dataset_id
    staging = datasets_dir / f".staging-{dataset_id}"
    staging.mkdir(parents=True)
    try:
        if fmt == "zip":
            ingested = ingest_archive(upload, filename, staging, limits or UploadLimits())
            frame, kind, summary = ingested.frame, "image", ingested.summary
            columns = label_profile(frame, ingested.label_columns)
            n_columns = len(ingested.label_columns)
            stored = frame
        else:
            frame, fmt = read_upload(upload, filename, limits)
            kind, summary = "tabular", None
            columns = profile_columns(frame)
            n_columns = int(frame.shape[1])
            stored = _normalise(frame, columns)
        stored.to_parquet(staging / CANONICAL_FILE, index=False)
        staging.rename(final_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    name = Path(filename).name or "dataset"
    return IngestedDataset(
        id=dataset_id,
        name=name[:255],
        source_format=fmt,
        path=final_dir / CANONICAL_FILE,
        n_rows=int(frame.shape[0]),
        n_columns=n_columns,
        size_bytes=upload.stat().st_size,
        columns=columns,
        kind=kind,
        images=summary,
    )


def load_frame(path: Path | str, columns: list[str] | None = None) -> pd.DataFrame:
    """Read a stored dataset (optionally only some columns)."""
    return pd.read_parquet(path, columns=columns)


def csv_bytes(frame: pd.DataFrame) -> bytes:
    """Serialize a frame as CSV (used by tests and fixtures)."""
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    return buffer.getvalue().encode()
