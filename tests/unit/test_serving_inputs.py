from __future__ import annotations

import math

import pytest

from automl.errors import InvalidInstances
from automl.serving.adapters import instances_to_inputs

FEATURES = [
    {"name": "age", "key": "age", "kind": "numeric"},
    {"name": "smoker", "key": "smoker", "kind": "boolean"},
    {"name": "city name", "key": "city_name", "kind": "categorical"},
]


def test_converts_raw_values_and_missing() -> None:
    arrays = instances_to_inputs(
        [
            {"age": 31, "smoker": "yes", "city name": "Oslo"},
            {"age": None, "smoker": None, "city name": None, "target": 1},
            {"age": "42.5", "smoker": False, "city name": 7},
        ],
        FEATURES,
        targets=["target"],
    )
    assert arrays["age"].shape == (3, 1) and arrays["age"].dtype.name == "float32"
    assert arrays["age"][0, 0] == 31 and math.isnan(arrays["age"][1, 0]) and arrays["age"][2, 0] == 42.5
    assert arrays["smoker"][:, 0].tolist()[0] == 1.0 and math.isnan(arrays["smoker"][1, 0])
    assert arrays["city_name"][:, 0].tolist() == ["Oslo", "", "7"]


@pytest.mark.parametrize(
    ("instance", "where", "needle"),
    [
        ({"age": "old", "smoker": True, "city name": "x"}, "instances.0.age", "expected a number"),
        ({"age": float("nan"), "smoker": True, "city name": "x"}, "instances.0.age", "NaN"),
        ({"age": 10**400, "smoker": True, "city name": "x"}, "instances.0.age", "out of range"),
        ({"age": 1e39, "smoker": True, "city name": "x"}, "instances.0.age", "out of range"),
        ({"age": True, "smoker": True, "city name": "x"}, "instances.0.age", "expected a number"),
        ({"age": 1, "smoker": "maybe", "city name": "x"}, "instances.0.smoker", "true, false"),
        ({"age": 1, "smoker": True, "city name": ["x"]}, "instances.0.city name", "string"),
        ({"age": 1, "smoker": True}, "instances.0", "missing columns: city name"),
        ({"age": 1, "smoker": True, "city name": "x", "zip": 1}, "instances.0", "unknown columns: zip"),
        ("not an object", "instances.0", "must be an object"),
    ],
)
def test_rejects_with_named_location(instance: object, where: str, needle: str) -> None:
    with pytest.raises(InvalidInstances) as caught:
        instances_to_inputs([instance], FEATURES)
    assert where in caught.value.errors
    assert needle in " ".join(caught.value.errors[where])


def test_empty_instances() -> None:
    with pytest.raises(InvalidInstances, match="empty"):
        instances_to_inputs([], FEATURES)


def test_the_vectorised_path_agrees_with_the_careful_one() -> None:
    rows = [{"age": 30 + i * 0.5, "smoker": i % 2 == 0, "city name": f"c{i % 3}"} for i in range(20)]
    fast = instances_to_inputs(rows, FEATURES)  # every value plain: the vectorised path
    careful = instances_to_inputs([{**row, "target": 0} for row in rows], FEATURES, targets=["target"])
    for key in fast:
        assert fast[key].dtype == careful[key].dtype and fast[key].shape == (20, 1)
        assert fast[key].tolist() == careful[key].tolist()


def test_training_json_and_batch_scoring_convert_the_same_values_alike() -> None:
    """One conversion: a stored (typed) column as training reads it, the same rows as JSON instances,
    and as CSV text cells as batch scoring reads them give identical arrays, missing values included."""
    import io

    import numpy as np
    import pandas as pd

    from automl.preprocessing.features import FeatureSpec, frame_to_inputs
    from automl.serving.adapters import chunk_to_inputs

    stored = pd.DataFrame({
        "age": pd.Series([31.0, None, 42.5, -1e30], dtype="float64"),
        "smoker": pd.Series([True, None, False, True], dtype="boolean"),
        "city name": pd.Series(["Oslo", None, "7", "Bergen"], dtype="object"),
    })
    specs = [FeatureSpec(name=f["name"], key=f["key"], kind=f["kind"]) for f in FEATURES]
    trained = frame_to_inputs(stored, specs)
    as_json = instances_to_inputs(
        [{k: (None if pd.isna(v) else (bool(v) if k == "smoker" else v)) for k, v in row.items()}
         for row in stored.astype(object).to_dict("records")], FEATURES)
    text = stored.astype(object).where(stored.notna(), "").to_csv(index=False)
    as_cells = chunk_to_inputs(pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False), FEATURES, 1)
    for key in trained:
        assert trained[key].dtype == as_json[key].dtype == as_cells[key].dtype
        for other in (as_json, as_cells):
            if trained[key].dtype == object:
                assert trained[key].tolist() == other[key].tolist()
            else:
                np.testing.assert_array_equal(trained[key], other[key])
    assert trained["city_name"][:, 0].tolist() == ["Oslo", "", "7", "Bergen"]
    assert np.isnan(trained["age"][1, 0]) and np.isnan(trained["smoker"][1, 0])
