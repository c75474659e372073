"""Per-prediction explanations for table models: how much each column moved this instance's output.

Method: baseline replacement (occlusion). For an instance x and each input column j, the column's
value is replaced by its training baseline (the median for numbers and booleans, the most frequent
category for categories) and the model is run again; column j's attribution is

    f(x) - f(x with column j at its baseline)

where f is the output explained: the value for regression (in the target's units), the
probability of the predicted class for binary and multiclass models (of the positive class
``classes[1]`` for binary), each label's probability for multilabel. A column the model does not
use gets exactly 0, and so does a column whose value is already its baseline. Attributions are
not additive (interactions are not split between columns); the answer gives f(x) and each
column's effect on it, largest effect first.

All the replaced copies of a request go through the model in one call (``instances x (columns +
1)`` rows), so explaining one row of a 30-column table costs one call on 31 rows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from automl.datasets.dates import days_to_text
from automl.errors import InvalidInstances
from automl.preprocessing.values import MISSING_TOKEN

MAX_EXPLAINED_ROWS = 200_000  # instances x (columns + 1) in one request


@dataclass(frozen=True)
class Explainer:
    keys: list[str]
    names: list[str]
    baselines: list[np.ndarray]  # one (1, 1) input array per column
    dates: frozenset[str] = frozenset()  # datetime columns, whose baselines are shown as dates

    @classmethod
    def of(cls, features: list[dict[str, Any]]) -> Explainer:
        keys, names, baselines = [], [], []
        for feature in features:
            keys.append(feature["key"])
            names.append(feature["name"])
            if feature["kind"] == "categorical":
                vocabulary = [v for v in feature.get("vocabulary") or [] if v != MISSING_TOKEN]
                baselines.append(np.array([[vocabulary[0] if vocabulary else MISSING_TOKEN]], dtype=object))
            else:
                baselines.append(np.array([[feature.get("median", 0.0)]], dtype="float32"))
        return cls(keys, names, baselines, frozenset(f["name"] for f in features if f["kind"] == "datetime"))

    def baseline_values(self) -> dict[str, Any]:
        """Each column's baseline, as a value a client would send."""
        return {name: days_to_text(base.item()) if name in self.dates else base.item()
                for name, base in zip(self.names, self.baselines, strict=True)}

    def explain(self, call: Callable[[dict[str, np.ndarray]], np.ndarray], inputs: dict[str, np.ndarray], rows: int,
                task: str, classes: list[Any] | None, targets: list[str]) -> list[dict[str, Any]]:
        """One explanation per instance: what is explained, its value, and each column's attribution."""
        width = len(self.keys) + 1
        if rows * width > MAX_EXPLAINED_ROWS:
            most = max(1, MAX_EXPLAINED_ROWS // width)
            raise InvalidInstances(
                f"Explaining {rows} instances of {len(self.keys)} columns runs the model on {rows * width} rows; "
                f"the limit is {MAX_EXPLAINED_ROWS}. Send at most {most} instances with explain: true.",
                {"instances": [f"at most {most} with explain"]})
        expanded = {}
        for key, values in inputs.items():
            copies = [values] * width
            if key in self.keys:
                j = self.keys.index(key)
                base = self.baselines[j].astype(values.dtype) if values.dtype.kind == "f" else self.baselines[j]
                copies[j + 1] = np.broadcast_to(base, values.shape)
            expanded[key] = np.concatenate(copies)
        out = np.asarray(call(expanded), dtype="float64").reshape(width, rows, -1)
        if task == "multilabel":
            return [{"explains": {name: f"P({pair[1]!r})" for name, pair in zip(targets, classes or [], strict=True)},
                     "value": dict(zip(targets, (float(v) for v in out[0, i]), strict=True)),
                     "attributions": {name: self._ranked(out[0, i, k] - out[1:, i, k])
                                      for k, name in enumerate(targets)}}
                    for i in range(rows)]
        if task == "multiclass":
            probs = out / out.sum(axis=2, keepdims=True)
            chosen = probs[0].argmax(axis=1)
            value = probs[:, np.arange(rows), chosen]  # (width, rows)
            explains = [f"P({(classes or [])[c]!r})" for c in chosen]
        else:
            value = out[:, :, 0]
            explains = ([f"P({(classes or [None, None])[1]!r})"] if task == "binary" else ["value"]) * rows
        return [{"explains": explains[i], "value": float(value[0, i]),
                 "attributions": self._ranked(value[0, i] - value[1:, i])} for i in range(rows)]

    def _ranked(self, effects: np.ndarray) -> dict[str, float]:
        order = np.argsort(-np.abs(effects), kind="stable")
        return {self.names[j]: round(float(effects[j]), 6) for j in order}
