"""Prediction requests -> one converted ``Batch``: one small adapter per input kind.

As BentoML's IO descriptors do, each kind of request body has one adapter, and every adapter
produces the same thing, a ``Batch`` that ``Predictor.predict`` / ``probabilities`` run:

* ``json_instances``: JSON ``instances``, table rows as objects or images as ``{"b64": ...}``
  (the predict routes and TensorFlow Serving's);
* ``image_files``: uploaded image files (multipart), in the order sent;
* ``table_chunk``: a chunk of a CSV/Parquet file being batch-scored (``automl.serving.batch``
  reads the file a chunk at a time and writes the answer).

Table values become arrays by the rules in ``automl.preprocessing.values``, which training
uses too; images are decoded by ``automl.preprocessing.pixels`` as the training images were.
Every problem is an ``InvalidInstances`` that names the row and column (or file) at fault.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import pandas as pd

from automl.errors import InvalidInstances, UnsupportedForTask
from automl.preprocessing.values import FLOAT32_MAX, PLAIN_TYPES, VALUE_RULES, BadValue, cells_to_array
from automl.serving.images import decode_files, decode_instances

MAX_REPORTED_ERRORS = 50


class ModelInputs(Protocol):
    """What an adapter needs to know of a model (a ``Predictor`` is one): the kind of input it takes,
    its columns, and its image size and channels."""

    kind: str  # "tabular" or "image"
    features: list[dict[str, Any]]
    targets: list[str]
    image: dict[str, Any]


@dataclass(frozen=True)
class Batch:
    """Rows converted for one model: what every adapter produces and every prediction takes."""

    inputs: Any  # tables: {input key: (n, 1) array}; images: a list of (height, width, channels) uint8 arrays
    rows: int
    files: list[str] | None = None  # uploaded image files' names, in the order of the rows


def json_instances(predictor: ModelInputs, instances: list[Any]) -> Batch:
    """JSON ``instances``: objects of column values for a table model, ``{"b64": ...}`` for an image model."""
    if predictor.kind == "image":
        images = decode_instances(instances, predictor.image["channels"])
        return Batch(images, len(images))
    return Batch(instances_to_inputs(instances, predictor.features, predictor.targets), len(instances))


def image_files(predictor: ModelInputs, files: list[tuple[str, bytes]]) -> Batch:
    """Uploaded ``(file name, bytes)`` image files (image models only)."""
    if predictor.kind != "image":
        raise UnsupportedForTask("This model takes table rows, not image files; send JSON instances or a "
                                 "CSV/Parquet file in the field 'file'.")
    images = decode_files(files, predictor.image["channels"])
    return Batch(images, len(images), [name for name, _ in files])


def table_chunk(predictor: ModelInputs, frame: pd.DataFrame, first_row: int) -> Batch:
    """Rows of a batch-scored file (``first_row``: the chunk's first row, counted from 1)."""
    return Batch(chunk_to_inputs(frame, predictor.features, first_row), len(frame))


# --- JSON table rows ----------------------------------------------------------------------------


def _fast_inputs(instances: list[Any], features: list[dict[str, Any]]) -> dict[str, np.ndarray] | None:
    """The common case in a few vectorised steps: every instance an object with exactly the input
    columns, numbers as finite numbers, booleans as booleans, categories as strings, nothing missing.
    None when any value needs the careful path below (which also words the errors)."""
    names = {f["name"] for f in features}
    if not all(f["kind"] in PLAIN_TYPES for f in features):
        return None  # dates are text to parse, one by one
    if not all(type(instance) is dict and instance.keys() == names for instance in instances):
        return None
    arrays: dict[str, np.ndarray] = {}
    for kind, allowed in PLAIN_TYPES.items():
        block = [f for f in features if f["kind"] == kind]
        if not block:
            continue
        rows = [[instance[f["name"]] for f in block] for instance in instances]
        if not all(type(value) in allowed for row in rows for value in row):
            return None
        if kind == "categorical":
            matrix = np.array(rows, dtype=object).reshape(len(rows), len(block))
        else:
            try:
                values = np.array(rows, dtype="float64")
            except OverflowError:
                return None
            if not (np.abs(values) <= FLOAT32_MAX).all():  # also false for NaN and infinities
                return None
            matrix = values.astype("float32")
        for i, feature in enumerate(block):
            arrays[feature["key"]] = matrix[:, i:i + 1]
    return arrays


def _names(names: list[Any], shown: int = 20) -> str:
    """At most ``shown`` names (an instance may carry any number of keys), each cut to 80 characters."""
    listed = ", ".join(str(n)[:80] for n in names[:shown])
    return listed + (f" and {len(names) - shown} more" if len(names) > shown else "")


def instances_to_inputs(
    instances: list[Any], features: list[dict[str, Any]], targets: list[str] | None = None
) -> dict[str, np.ndarray]:
    """Validate every instance; raise ``InvalidInstances`` listing every problem found.

    Target columns in an instance are ignored (clients often send back a training row).
    """
    if not instances:
        raise InvalidInstances("'instances' is empty; send at least one row.", {"instances": ["empty list"]})
    fast = _fast_inputs(instances, features)
    if fast is not None:
        return fast
    names = [f["name"] for f in features]
    known = set(names)
    ignored = set(targets or [])
    columns: dict[str, list[Any]] = {f["name"]: [] for f in features}
    errors: dict[str, list[str]] = {}

    def add(where: str, problem: str) -> None:
        if len(errors) < MAX_REPORTED_ERRORS:
            errors.setdefault(where, []).append(problem)

    for row, instance in enumerate(instances):
        if not isinstance(instance, dict):
            add(f"instances.{row}", "must be an object mapping column names to values")
            continue
        missing = [n for n in names if n not in instance]
        unknown = [k for k in instance if k not in known and k not in ignored]
        if missing:
            add(f"instances.{row}", f"missing columns: {_names(missing)} (send null for a missing value)")
        if unknown:
            add(f"instances.{row}", f"unknown columns: {_names(unknown)}")
        for feature in features:
            name = feature["name"]
            if name not in instance:
                continue
            try:
                columns[name].append(VALUE_RULES[feature["kind"]](instance[name]))
            except BadValue as exc:
                add(f"instances.{row}.{name}", str(exc))
    if errors:
        first_key = next(iter(errors))
        raise InvalidInstances(
            f"{len(errors)} problem(s) in 'instances', first at {first_key}: {errors[first_key][0]}. "
            "Each instance must have exactly the model's input columns.",
            errors,
        )
    arrays: dict[str, np.ndarray] = {}
    for feature in features:
        values = columns[feature["name"]]
        dtype: Any = object if feature["kind"] == "categorical" else "float32"
        arrays[feature["key"]] = np.asarray(values, dtype=dtype).reshape(-1, 1)
    return arrays


# --- file chunks -------------------------------------------------------------------------------


def chunk_to_inputs(frame: pd.DataFrame, features: list[dict[str, Any]], first_row: int) -> dict[str, np.ndarray]:
    """Model input arrays for one chunk; ``InvalidInstances`` naming the row (counted from 1, header
    excluded) and column of each problem."""
    arrays: dict[str, np.ndarray] = {}
    errors: dict[str, list[str]] = {}
    for feature in features:
        series = frame[feature["name"]]
        cells = cells_to_array(series, feature["kind"])
        for index in np.flatnonzero(cells.bad)[:MAX_REPORTED_ERRORS]:
            if len(errors) < MAX_REPORTED_ERRORS:
                errors[f"row {first_row + int(index)}, column {feature['name']}"] = [
                    f"{cells.problem}; got {str(series.iloc[int(index)])[:80]!r}"]
        arrays[feature["key"]] = cells.array
    if errors:
        where, (problem,) = next(iter(errors.items()))
        raise InvalidInstances(f"{len(errors)} problem(s) in the file, first at {where}: {problem}.", errors)
    return arrays
