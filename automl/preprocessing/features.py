"""Feature specifications fitted on the training split, and raw value -> input array conversion.

The conversion rules are the model's input contract, shared by training and serving:
numeric and boolean columns become float32 with NaN for missing; categorical columns
become strings with "" for missing. Everything else (imputation, scaling, vocabularies)
happens inside the model.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

MAX_VOCABULARY = 1000
MISSING_TOKEN = ""


@dataclass(frozen=True)
class FeatureSpec:
    name: str  # column name as in the dataset
    key: str  # Keras input name (sanitised, unique)
    kind: str  # numeric | boolean | categorical
    mean: float = 0.0
    std: float = 1.0
    missing_indicator: bool = False
    vocabulary: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeatureSpec:
        return cls(**data)

    def public_schema(self) -> dict[str, Any]:
        """What a client needs to know to send this column."""
        schema: dict[str, Any] = {"name": self.name, "type": self.kind, "nullable": True}
        if self.kind == "categorical":
            schema["categories"] = [v for v in self.vocabulary if v != MISSING_TOKEN][:100]
        return schema


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
        if kind in ("numeric", "boolean"):
            values = column_to_array(train[name], kind)
            finite = values[np.isfinite(values)]
            mean = float(finite.mean()) if finite.size else 0.0
            std = float(finite.std()) if finite.size else 1.0
            if not math.isfinite(std) or std < 1e-12:
                std = 1.0
            specs.append(
                FeatureSpec(
                    name=name,
                    key=key,
                    kind=kind,
                    mean=mean,
                    std=std,
                    missing_indicator=bool(finite.size < values.size),
                )
            )
        else:
            strings = column_to_array(train[name], kind).ravel()
            counts = pd.Series(strings).value_counts()
            vocabulary = [str(v) for v in counts.index[:MAX_VOCABULARY]]
            specs.append(FeatureSpec(name=name, key=key, kind=kind, vocabulary=vocabulary))
    return specs


def column_to_array(series: pd.Series, kind: str) -> np.ndarray:
    """A stored dataset column -> the model's input array, shape (n, 1)."""
    if kind == "categorical":
        values = [MISSING_TOKEN if v is None or (isinstance(v, float) and math.isnan(v)) else str(v)
                  for v in series.astype("object").tolist()]
        return np.array(values, dtype=object).reshape(-1, 1)
    if kind == "boolean":
        numeric = series.astype("boolean").astype("Float64").to_numpy(dtype="float32", na_value=np.nan)
        return numeric.reshape(-1, 1)
    return pd.to_numeric(series, errors="coerce").to_numpy(dtype="float32", na_value=np.nan).reshape(-1, 1)


def frame_to_inputs(frame: pd.DataFrame, specs: list[FeatureSpec]) -> dict[str, np.ndarray]:
    return {spec.key: column_to_array(frame[spec.name], spec.kind) for spec in specs}
