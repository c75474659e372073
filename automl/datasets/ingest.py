"""Turn an uploaded file into a stored dataset: parse, check, profile, write atomically.

The upload is parsed once here; the canonical copy is a Parquet file, so workers never
re-parse CSV dialects. Either the whole dataset folder and its record exist, or neither.
"""

from __future__ import annotations

import io
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq

from automl.datasets.images import ingest_archive, is_zip, label_profile
from automl.datasets.limits import (
    MAX_COLUMNS,
    UploadLimits,
    check_field_sizes,
    check_header,
    check_names,
    too_many_columns,
)
from automl.datasets.schema import profile_columns, to_boolean
from automl.errors import InvalidDataset, TooLarge

PARQUET_MAGIC = b"PAR1"
CANONICAL_FILE = "data.parquet"


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
    with path.open("rb") as handle:
        return check_header(handle.readline(1_000_000), filename, max_columns)


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


def _check_parquet_footer(path: Path, filename: str, limits: UploadLimits) -> None:
    """Rows, columns and uncompressed size from the file's footer, before any data is read: a few MB of
    Parquet can inflate to many GB."""
    metadata = pq.ParquetFile(path).metadata
    if metadata.num_columns > limits.max_columns:
        raise too_many_columns(filename, metadata.num_columns, limits.max_columns)
    if metadata.num_rows > limits.max_rows:
        raise TooLarge(f"'{filename}' has {metadata.num_rows:,} rows; at most {limits.max_rows:,} are accepted "
                       "(AUTOML_MAX_ROWS). Upload a sample, or split the table.")
    # Decoded, a cell takes at least 8 bytes in memory (a number, or a string's pointer) besides what the
    # footer counts (its uncompressed pages are still run-length and dictionary encoded: tiny for repeats).
    encoded = sum(metadata.row_group(i).total_byte_size for i in range(metadata.num_row_groups))
    inflated = encoded + 8 * metadata.num_rows * metadata.num_columns
    if inflated > limits.max_table_bytes:
        raise TooLarge(f"'{filename}' holds about {inflated:,} bytes once read ({metadata.num_rows:,} rows x "
                       f"{metadata.num_columns} columns); at most {limits.max_table_bytes:,} are accepted "
                       "(AUTOML_MAX_TABLE_BYTES). Upload fewer rows or columns.")


def _read_parquet(path: Path, filename: str, limits: UploadLimits) -> pd.DataFrame:
    try:
        _check_parquet_footer(path, filename, limits)
        schema = pq.read_schema(path)
        check_names([str(n).strip() for n in schema.names])
        frame = pq.read_table(path).to_pandas()
    except (InvalidDataset, TooLarge):
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
    if frame.shape[0] > limits.max_rows:
        raise TooLarge(f"'{filename}' has {frame.shape[0]:,} rows; at most {limits.max_rows:,} are accepted "
                       "(AUTOML_MAX_ROWS). Upload a sample, or split the table.")
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
