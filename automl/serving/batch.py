"""Batch scoring: a CSV or Parquet file in, predictions as CSV or JSON out, in bounded memory.

The input is read ``chunk_rows`` rows at a time (pandas' chunked CSV reader, Parquet row
batches), each chunk is checked and converted by its adapter (``automl.serving.adapters.table_chunk``,
the same value rules as training), run through the model and appended to a temporary file. Only
when every row has been scored is the file handed back, so a bad row anywhere is a 4xx
that names it, never a half-written answer.

Columns the model does not use are ignored (files often carry ids); ``passthrough``
columns are copied into the CSV output. String cells written to CSV are escaped against
spreadsheet formula injection.
"""

from __future__ import annotations

import json
import re
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from automl.datasets.ingest import csv_parse_error, detect_format, read_csv_header
from automl.errors import InvalidDataset, InvalidInstances, TooLarge
from automl.serving.adapters import Batch, table_chunk
from automl.serving.explain import MAX_EXPLAINED_ROWS

if TYPE_CHECKING:
    from automl.serving.predictor import Predictor

CHUNK_ROWS = 50_000
OUTPUT_FORMATS = {"csv": "text/csv", "json": "application/json"}
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


def escape_formula(value: Any) -> Any:
    """A string a spreadsheet would run as a formula gets a leading ``'`` (OWASP's advice); plain
    numbers such as ``-1.5`` and non-strings are left alone."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES) and not _PLAIN_NUMBER.match(value):
        return "'" + value
    return value


@dataclass
class ScoredFile:
    """The finished answer: a temporary file positioned at its start (closing it deletes it)."""

    handle: IO[bytes]
    size: int
    rows: int
    media_type: str


# --- reading ------------------------------------------------------------------------------------


def _check_columns(filename: str, available: list[str], needed: list[str], passthrough: list[str]) -> None:
    missing = [name for name in needed if name not in available]
    unknown = [name for name in passthrough if name not in available]
    if missing:
        raise InvalidInstances(
            f"'{filename}' lacks the model's input column(s): {', '.join(missing)}. Send every input column "
            "(empty cells are missing values); other columns are ignored.",
            {"file": [f"missing columns: {', '.join(missing)}"]},
        )
    if unknown:
        raise InvalidInstances(
            f"passthrough names column(s) not in '{filename}': {', '.join(unknown)}.",
            {"passthrough": [f"not in the file: {', '.join(unknown)}"]},
        )


def read_chunks(path: Path, filename: str, needed: list[str], passthrough: list[str],
                chunk_rows: int = CHUNK_ROWS) -> Iterator[pd.DataFrame]:
    """The file's ``needed`` + ``passthrough`` columns, ``chunk_rows`` rows at a time."""
    columns = list(dict.fromkeys([*needed, *passthrough]))
    try:
        fmt = detect_format(path, filename)
    except InvalidDataset as exc:
        raise InvalidInstances(exc.message, exc.errors) from exc
    if fmt == "zip":
        raise InvalidInstances(f"'{filename}' is a zip archive; this model scores CSV or Parquet files of its "
                               "input columns.", {"file": ["zip archive"]})
    if fmt == "parquet":
        yield from _parquet_chunks(path, filename, columns, needed, passthrough, chunk_rows)
    else:
        yield from _csv_chunks(path, filename, columns, needed, passthrough, chunk_rows)


def _csv_chunks(path: Path, filename: str, columns: list[str], needed: list[str], passthrough: list[str],
                chunk_rows: int) -> Iterator[pd.DataFrame]:
    try:
        header = read_csv_header(path, filename)
    except InvalidDataset as exc:
        raise InvalidInstances(exc.message, exc.errors) from exc
    raw_name = {name.strip(): name for name in header}
    _check_columns(filename, list(raw_name), needed, passthrough)
    try:
        reader = pd.read_csv(path, chunksize=chunk_rows, usecols=[raw_name[c] for c in columns], dtype=str,
                             encoding="utf-8-sig", skipinitialspace=True, on_bad_lines="error")
        with reader:
            for chunk in reader:
                chunk.columns = pd.Index([str(c).strip() for c in chunk.columns])
                yield chunk[columns]
    except pd.errors.EmptyDataError as exc:
        raise InvalidInstances(f"'{filename}' has a header but no data rows.", {"file": ["no rows"]}) from exc
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        error = csv_parse_error(filename, exc)
        raise InvalidInstances(error.message, {"file": [error.message]}) from exc


def _parquet_chunks(path: Path, filename: str, columns: list[str], needed: list[str], passthrough: list[str],
                    chunk_rows: int) -> Iterator[pd.DataFrame]:
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
        names = [str(n).strip() for n in parquet.schema_arrow.names]
    except Exception as exc:  # pyarrow raises many types for corrupt files
        raise InvalidInstances(f"'{filename}' could not be read as Parquet: {exc}", {"file": ["unreadable"]}) from exc
    _check_columns(filename, names, needed, passthrough)
    raw = dict(zip(names, parquet.schema_arrow.names, strict=True))
    with parquet:
        try:
            for batch in parquet.iter_batches(batch_size=chunk_rows, columns=[raw[c] for c in columns]):
                chunk = batch.to_pandas()
                chunk.columns = pd.Index([str(c).strip() for c in chunk.columns])
                yield chunk
        except InvalidInstances:
            raise
        except Exception as exc:
            raise InvalidInstances(f"'{filename}' could not be read as Parquet: {exc}",
                                   {"file": ["unreadable"]}) from exc


# --- writing ------------------------------------------------------------------------------------


def _proba_columns(predictor: Predictor) -> list[str]:
    return [str(c) for c in predictor.proba_columns]


class _CsvWriter:
    """CSV through Arrow's writer (about 10x pandas' ``to_csv`` on float columns, measured here)."""

    def __init__(self, handle: IO[bytes], predictor: Predictor, proba: bool, passthrough: list[str],
                 explain: bool = False) -> None:
        import pyarrow as pa
        import pyarrow.csv as pa_csv

        self.predictor, self.proba, self.passthrough, self.explain = predictor, proba, passthrough, explain
        if proba:
            outputs = _proba_columns(predictor)
        elif predictor.task == "multilabel":
            outputs = list(predictor.targets)
        else:
            outputs = ["prediction"]
        explained = _explanation_columns(predictor) if explain else []
        clash = sorted(set(outputs + [name for name, _ in explained]) & set(passthrough))
        if clash:
            raise InvalidInstances(f"passthrough column(s) {', '.join(clash)} clash with output columns; "
                                   "rename them in the file.", {"passthrough": [f"clash: {', '.join(clash)}"]})
        numeric = proba or predictor.task == "regression"
        self.schema = pa.schema(
            [(escape_formula(name), pa.string()) for name in passthrough]
            + [(escape_formula(name), pa.float64() if numeric else pa.string()) for name in outputs]
            + [(escape_formula(name), pa.string() if name == "explains" else pa.float64()) for name, _ in explained]
        )
        self.explained = explained
        self.writer = pa_csv.CSVWriter(handle, self.schema, write_options=pa_csv.WriteOptions(quoting_style="needed"))

    @staticmethod
    def _strings(values: Any) -> list[str | None]:
        return [None if v is None or (isinstance(v, float) and v != v) else escape_formula(str(v)) for v in values]

    def write(self, frame: pd.DataFrame, batch: Batch) -> None:
        import pyarrow as pa

        columns: list[Any] = [self._strings(frame[name].astype("object")) for name in self.passthrough]
        if self.proba:
            probabilities = self.predictor.probabilities(batch).mean
            columns += [probabilities[:, i] for i in range(probabilities.shape[1])]
        else:
            predictions, _ = self.predictor.predict(batch)
            if self.predictor.task == "multilabel":
                columns += [self._strings(row[name] for row in predictions) for name in self.predictor.targets]
            elif self.predictor.task == "regression":
                columns.append(np.asarray(predictions, dtype="float64"))
            else:
                columns.append(self._strings(predictions))
        if self.explain:
            explanations = _explanations(self.predictor, batch)
            columns += [self._strings(e[path[0]] for e in explanations) if path == ("explains",)
                        else np.array([_dig(e, path) for e in explanations], dtype="float64")
                        for _, path in self.explained]
        self.writer.write_table(pa.Table.from_arrays(
            [pa.array(column, type=field.type) for column, field in zip(columns, self.schema, strict=True)],
            schema=self.schema,
        ))

    def close(self) -> None:
        self.writer.close()


def _explanation_columns(predictor: Predictor) -> list[tuple[str, tuple[str, ...]]]:
    """(CSV column, where its value is in an explanation) for each explanation column."""
    names = [f["name"] for f in predictor.features]
    if predictor.task == "multilabel":
        return [column for label in predictor.targets for column in (
            (f"explained_value:{label}", ("value", label)),
            *((f"attribution:{label}:{name}", ("attributions", label, name)) for name in names))]
    return [("explains", ("explains",)), ("explained_value", ("value",)),
            *((f"attribution:{name}", ("attributions", name)) for name in names)]


def _dig(explanation: dict[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = explanation
    for step in path:
        value = value[step]
    return value


def _explanations(predictor: Predictor, batch: Batch) -> list[dict[str, Any]]:
    """The batch's explanations, a slice at a time (one call explains at most ``MAX_EXPLAINED_ROWS``)."""
    step = max(1, MAX_EXPLAINED_ROWS // (len(predictor.features) + 1))
    found: list[dict[str, Any]] = []
    for start in range(0, batch.rows, step):
        rows = min(step, batch.rows - start)
        found += predictor.explanations(Batch({k: v[start:start + rows] for k, v in batch.inputs.items()}, rows))
    return found


class _JsonWriter:
    """The same document as the JSON endpoints answer, written a chunk at a time."""

    def __init__(self, handle: IO[bytes], predictor: Predictor, proba: bool) -> None:
        self.handle, self.predictor, self.proba, self.first = handle, predictor, proba, True
        opening = json.dumps(predictor.proba_header())[:-1] + ', "probabilities": [' if proba \
            else '{"predictions": ['
        handle.write(opening.encode())

    def write(self, frame: pd.DataFrame, batch: Batch) -> None:
        if self.proba:
            items: list[Any] = self.predictor.probabilities(batch).mean.tolist()
        else:
            items = self.predictor.predict(batch)[0]
        if not items:
            return
        body = json.dumps(items, default=str)[1:-1]
        self.handle.write((body if self.first else "," + body).encode())
        self.first = False

    def close(self) -> None:
        self.handle.write(b"]}")


def score_file(predictor: Predictor, path: Path, filename: str, *, proba: bool, output: str,
               passthrough: list[str], tmp_dir: Path, chunk_rows: int = CHUNK_ROWS, explain: bool = False,
               observe: Callable[[Batch], None] | None = None, max_rows: int | None = None,
               max_s: float | None = None) -> ScoredFile:
    """Score every row of the uploaded file at ``path``; see the module docstring. ``explain`` adds each
    row's explanation as columns of the CSV output; ``observe`` sees each converted chunk (drift counts).
    A file over ``max_rows`` rows, or one that takes over ``max_s`` seconds, is refused (``TooLarge``)
    as soon as that is known."""
    if proba:
        predictor.require_classifier()
    if explain and output != "csv":
        raise InvalidInstances("explain adds columns to CSV output only. Ask for text/csv, or send the rows as JSON "
                               "instances with explain: true.", {"explain": ["CSV output only"]})
    if passthrough and output != "csv":
        raise InvalidInstances("passthrough columns are written to CSV output only; JSON predictions are in the "
                               "file's row order. Ask for text/csv, or leave out passthrough.",
                               {"passthrough": ["CSV output only"]})
    needed = [f["name"] for f in predictor.features]
    handle = tempfile.TemporaryFile(dir=tmp_dir)  # noqa: SIM115 - handed to the response, which closes it
    try:
        writer: _CsvWriter | _JsonWriter = (
            _CsvWriter(handle, predictor, proba, passthrough, explain) if output == "csv"
            else _JsonWriter(handle, predictor, proba)
        )
        rows = 0
        started = time.monotonic()
        for chunk in read_chunks(path, filename, needed, passthrough, chunk_rows):
            if max_rows is not None and rows + len(chunk) > max_rows:
                raise TooLarge(f"'{filename}' has more than {max_rows:,} rows, the most one batch scoring takes "
                               "(AUTOML_BATCH_MAX_ROWS). Split the file and send the parts one by one.")
            if max_s is not None and time.monotonic() - started > max_s:
                raise TooLarge(f"Scoring '{filename}' took longer than {max_s:g} s (AUTOML_BATCH_MAX_S) after "
                               f"{rows:,} rows. Split the file and send the parts one by one.")
            batch = table_chunk(predictor, chunk, first_row=rows + 1)
            rows += len(chunk)
            if len(chunk):
                writer.write(chunk, batch)
                if observe is not None:
                    observe(batch)
        if rows == 0:
            raise InvalidInstances(f"'{filename}' has a header but no data rows.", {"file": ["no rows"]})
        writer.close()
        size = handle.tell()
        handle.seek(0)
        return ScoredFile(handle, size, rows, OUTPUT_FORMATS[output])
    except BaseException:
        handle.close()
        raise
