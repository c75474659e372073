"""Input warnings: each kind of unfamiliar value is named, familiar rows get none."""

from __future__ import annotations

import numpy as np
import pandas as pd

from automl.preprocessing.features import MAX_VOCABULARY, fit_features
from automl.serving.adapters import instances_to_inputs
from automl.serving.checks import InputProfile

TRAIN = pd.DataFrame({
    "age": np.linspace(20.0, 60.0, 50),  # range 40: the margin is 4
    "income": [None, *np.linspace(1.0, 2.0, 49)],  # had a missing value
    "smoker": [True, False] * 25,
    "city": ["oslo", "bergen"] * 25,
    "code": [f"c{i}" for i in range(50)],
})
TYPES = {"age": "numeric", "income": "numeric", "smoker": "boolean", "city": "categorical", "code": "categorical"}


def _warnings(rows: list[dict[str, object]], features: list[dict[str, object]] | None = None) -> list[list[str]]:
    features = features or [spec.to_dict() for spec in fit_features(TRAIN, TYPES, set())]
    return InputProfile.of(features).warnings(instances_to_inputs(rows, features), len(rows))


FAMILIAR = {"age": 30.0, "income": 1.5, "smoker": True, "city": "oslo", "code": "c3"}


def test_familiar_rows_and_values_within_the_margin_get_no_warning() -> None:
    rows = [FAMILIAR, {**FAMILIAR, "age": 63.9, "income": None}, {**FAMILIAR, "age": 16.1}]
    assert _warnings(rows) == [[], [], []]


def test_each_unfamiliar_value_is_named_on_its_own_row() -> None:
    rows = [FAMILIAR, {**FAMILIAR, "city": "tromso"}, {**FAMILIAR, "age": 64.5}, {**FAMILIAR, "age": None},
            {**FAMILIAR, "smoker": None, "city": None}]
    got = _warnings(rows)
    assert got[0] == []
    assert got[1] == ["city: 'tromso' was never seen in training"]
    assert got[2] == ["age: 64.5 is outside the training range [20, 60]"]
    assert got[3] == ["age: missing, and training never had it missing"]
    assert sorted(got[4]) == ["city: missing, and training never had it missing",
                              "smoker: missing, and training never had it missing"]


def test_a_column_whose_vocabulary_was_full_does_not_call_values_unseen() -> None:
    wide = pd.DataFrame({"tag": [f"t{i}" for i in range(MAX_VOCABULARY + 5)] * 2})  # each tag twice
    features = [spec.to_dict() for spec in fit_features(wide, {"tag": "categorical"}, set())]
    assert not features[0]["identifier"]
    assert _warnings([{"tag": "brand-new"}], features) == [[]]


def test_a_column_of_names_or_identifiers_does_not_call_new_ones_unseen() -> None:
    """``code`` holds a value of its own on every training row: each new row brings a new one."""
    features = [spec.to_dict() for spec in fit_features(TRAIN, TYPES, set())]
    assert [f["name"] for f in features if f.get("identifier")] == ["code"]
    assert _warnings([{**FAMILIAR, "code": "c999"}, {**FAMILIAR, "city": "tromso", "code": "c998"}], features) == [
        [], ["city: 'tromso' was never seen in training"]]
