"""Raw JSON instances -> model input arrays, with errors that name the row and column.

Follows the conversion contract in ``automl.preprocessing.features``: numbers and booleans
become float32 (NaN when missing), categories become strings ("" when missing).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from automl.datasets.schema import FALSE_WORDS, TRUE_WORDS
from automl.errors import InvalidInstances
from automl.preprocessing.features import MISSING_TOKEN

MAX_REPORTED_ERRORS = 50
FLOAT32_MAX = float(np.finfo(np.float32).max)  # models compute in float32: larger numbers become infinite
OUT_OF_RANGE = f"number out of range (the model takes magnitudes up to {FLOAT32_MAX:.3g})"


class _BadValue(ValueError):
    pass


def _number(value: Any) -> float:
    if value is None:
        return math.nan
    if isinstance(value, bool):
        raise _BadValue(f"expected a number or null, got {value!r}")
    if isinstance(value, (int, float)):
        try:
            number = float(value)
        except OverflowError:
            raise _BadValue(OUT_OF_RANGE) from None
    elif isinstance(value, str):
        if not value.strip():
            return math.nan
        try:
            number = float(value)
        except ValueError:
            raise _BadValue(f"expected a number or null, got {value!r}"[:200]) from None
    else:
        raise _BadValue(f"expected a number or null, got {type(value).__name__}")
    if not math.isfinite(number):
        raise _BadValue("NaN and Infinity are not allowed; send null for a missing value")
    if abs(number) > FLOAT32_MAX:
        raise _BadValue(OUT_OF_RANGE)
    return number


def _boolean(value: Any) -> float:
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
    raise _BadValue(f"expected true, false or null, got {value!r}")


def _category(value: Any) -> str:
    if value is None:
        return MISSING_TOKEN
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, (int, float)):
        if isinstance(value, float) and not math.isfinite(value):
            raise _BadValue("NaN and Infinity are not allowed; send null for a missing value")
        return str(value)
    raise _BadValue(f"expected a string or null, got {type(value).__name__}")


_CONVERTERS = {"numeric": _number, "boolean": _boolean, "categorical": _category}
_FAST_TYPES = {"numeric": (float, int), "boolean": (bool,), "categorical": (str,)}


def _fast_inputs(instances: list[Any], features: list[dict[str, Any]]) -> dict[str, np.ndarray] | None:
    """The common case in a few vectorised steps: every instance an object with exactly the input
    columns, numbers as finite numbers, booleans as booleans, categories as strings, nothing missing.
    None when any value needs the careful path below (which also words the errors)."""
    names = {f["name"] for f in features}
    if not all(type(instance) is dict and instance.keys() == names for instance in instances):
        return None
    arrays: dict[str, np.ndarray] = {}
    for kind, allowed in _FAST_TYPES.items():
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
                columns[name].append(_CONVERTERS[feature["kind"]](instance[name]))
            except _BadValue as exc:
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
