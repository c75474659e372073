"""Columns of dates: recognised at upload, converted alike on every path, learned from by the calendar."""

from __future__ import annotations

import io
import math
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest

from automl.datasets.dates import days_to_text
from automl.datasets.ingest import ingest_file, load_frame
from automl.datasets.schema import infer_type, profile_columns
from automl.datasets.targets import resolve_multilabel, resolve_target
from automl.errors import InvalidInstances, InvalidJobRequest
from automl.preprocessing.features import calendar_parts, fit_features, frame_to_inputs
from automl.preprocessing.layers import CalendarFeatures, build_inputs
from automl.preprocessing.values import BadValue, cells_to_array, moment
from automl.serving.adapters import instances_to_inputs
from automl.serving.explain import Explainer

WRITTEN = [
    ("2024-05-17", 19860.0),
    ("2024-05-17 08:30", 19860 + 8.5 / 24),
    ("2024-05-17T08:30:00Z", 19860 + 8.5 / 24),
    ("2024-05-17T08:30:00+02:00", 19860 + 6.5 / 24),  # an offset converts to UTC
    ("2024-05-17T08:30:00.250-0530", 19860 + (14 + 0.25 / 3600) / 24),
    ("2024-05-17T08:30:00.123456789", 19860 + (8.5 + 0.123456 / 3600) / 24),  # nanoseconds: cut to micro
    ("1967-06-30", -916.0),
    ("1600-01-01", -135140.0),  # before pandas' nanosecond range: read one by one, alike
]


@pytest.mark.parametrize(("text", "days"), WRITTEN)
def test_a_date_is_the_same_number_from_json_and_from_a_file(text: str, days: float) -> None:
    assert math.isclose(moment(text), days, abs_tol=1e-6)
    cells = cells_to_array(pd.Series([text, " " + text + " "], dtype=object), "datetime")
    assert not cells.bad.any()
    assert np.allclose(cells.array.ravel(), np.float32(days), atol=1e-3)  # float32: about 3 minutes at 2024


@pytest.mark.parametrize("text", ["17/05/2024", "05/17/2024", "2024-13-01", "2024-05-32", "20240517", "soon"])
def test_what_is_not_an_iso_date_is_refused_with_what_to_send(text: str) -> None:
    with pytest.raises(BadValue, match="ISO 8601 date"):
        moment(text)
    cells = cells_to_array(pd.Series([text, "2024-05-17", None, ""], dtype=object), "datetime")
    assert cells.bad.tolist() == [True, False, False, False]
    assert np.isnan(cells.array[[0, 2, 3], 0]).all() and "ISO 8601" in cells.problem
    assert math.isnan(moment(None)) and math.isnan(moment("  "))


def test_typed_date_times_from_parquet_keep_their_instant() -> None:
    naive = pd.Series(pd.to_datetime(["2024-05-17 08:30", None]))
    paris = naive.dt.tz_localize("Europe/Paris")  # UTC+2 in May
    assert np.allclose(cells_to_array(naive, "datetime").array[0], np.float32(19860 + 8.5 / 24))
    assert np.allclose(cells_to_array(paris, "datetime").array[0], np.float32(19860 + 6.5 / 24))
    assert np.isnan(cells_to_array(paris, "datetime").array[1, 0])
    assert days_to_text(19860.0) == "2024-05-17" and days_to_text(19860 + 8.5 / 24) == "2024-05-17T08:30:00"


def test_a_column_of_iso_dates_is_profiled_as_datetime(tmp_path: Path) -> None:
    assert infer_type(pd.Series(["2024-05-17", "2024-05-18", None])) == "datetime"
    assert infer_type(pd.Series(pd.to_datetime(["2024-05-17", "2024-05-18"]))) == "datetime"
    # One cell in a hundred may be something else (it is taken as missing); more, and it is text.
    mostly = [f"2024-01-{d:02d}" for d in range(1, 29)] * 4 + ["unknown"]
    assert infer_type(pd.Series(mostly)) == "datetime"
    assert infer_type(pd.Series([*mostly[:50], "unknown"])) == "categorical"
    long = [f"20{y:02d}-0{m}-1{d}" for y in range(10, 25) for m in range(1, 10) for d in range(10)]  # 1,350
    assert infer_type(pd.Series([*long, *["later"] * 13])) == "datetime"  # under 1 %
    assert infer_type(pd.Series([*long, *["later"] * 14])) == "categorical"  # over 1 %, all after the 1,000th
    assert infer_type(pd.Series(["17/05/2024", "18/05/2024"])) == "categorical"  # day or month first? unknown
    assert infer_type(pd.Series(["2024", "2025"], dtype=object)) == "categorical"  # years alone are no dates

    frame = pd.DataFrame({"day": ["2024-05-17", "2023-01-02T10:00:00Z", None], "y": [1, 2, 3]})
    profile = {c["name"]: c for c in profile_columns(frame)}["day"]
    assert profile["type"] == "datetime" and profile["missing"] == 1
    assert profile["stats"] == {"min": "2023-01-02T10:00:00", "max": "2024-05-17"}

    path = tmp_path / "dated.csv"
    path.write_text(frame.to_csv(index=False))
    stored = ingest_file(path, "dated.csv", tmp_path / "store")
    assert {c["name"]: c["type"] for c in stored.columns}["day"] == "datetime"
    assert load_frame(stored.path)["day"].tolist()[:2] == ["2024-05-17", "2023-01-02T10:00:00Z"]  # kept as written


def test_a_date_cannot_be_the_target() -> None:
    types = {"day": "datetime", "x": "numeric", "flag": "boolean"}
    values = pd.Series([f"2024-01-{d:02d}" for d in range(1, 29)])
    with pytest.raises(InvalidJobRequest, match="holds dates"):
        resolve_target("day", types, values)
    with pytest.raises(InvalidJobRequest, match="hold dates"):
        resolve_multilabel(["flag", "day"], types, pd.DataFrame({"flag": [True] * 28, "day": values}))


def test_calendar_parts_follow_what_varies_in_the_training_dates() -> None:
    daily = np.arange(19000.0, 19800.0)  # two years and more, every weekday
    assert calendar_parts(daily) == ["weekday", "year"]
    assert calendar_parts(daily[::7]) == ["year"]  # every Thursday: the weekday says nothing
    assert calendar_parts(daily[::30]) == ["year"]  # monthly figures: the weekday is noise
    assert calendar_parts(daily[:20]) == ["weekday"]  # twenty days: no time of year to learn
    assert calendar_parts(np.array([19860.25, 19860.5, 19861.25])) == ["day"]
    assert calendar_parts(np.array([])) == []


def test_the_calendar_layer_knows_the_week_the_year_and_the_day(tmp_path: Path) -> None:
    friday_noon, monday, summer, winter = 19860.5, 19856.0, 19860.0, 19860.0 + 365.2425 / 2
    layer = CalendarFeatures(["weekday", "year", "day"])
    out = np.asarray(layer(np.array([[friday_noon], [monday], [summer], [winter], [np.nan]], dtype="float32")))
    assert out.shape == (5, 11)
    assert out[0, :7].tolist() == [0, 0, 0, 0, 1, 0, 0] and out[1, :7].tolist() == [1, 0, 0, 0, 0, 0, 0]
    assert np.allclose(out[2, 7:9], -out[3, 7:9], atol=1e-3)  # half a year apart: opposite points of the cycle
    assert np.allclose(out[0, 9:], [0.0, -1.0], atol=1e-3)  # noon: half-way round the day
    assert (out[4] == 0).all()  # a missing date: nothing

    train = pd.DataFrame({"when": [f"{y}-0{m}-{d:02d}T{h:02d}:00" for y in (2023, 2024) for m in range(1, 7)
                                   for d in (1, 4, 9, 20) for h in (6, 18)], "y": 0.0})
    specs = fit_features(train, {"when": "datetime", "y": "numeric"}, {"y"})
    assert specs[0].calendar == ["weekday", "year", "day"]
    assert specs[0].public_schema()["type"] == "datetime" and "ISO 8601" in specs[0].public_schema()["format"]
    inputs, features = build_inputs(specs)
    model = keras.Model(inputs, features)
    model.save(tmp_path / "m.keras")
    reloaded = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True)
    raw = frame_to_inputs(pd.DataFrame({"when": ["2024-07-04T12:00:00Z", None]}), specs)
    assert np.allclose(np.asarray(reloaded.predict_on_batch(raw)), np.asarray(model.predict_on_batch(raw)))


def test_json_instances_with_dates_take_the_careful_path_and_name_a_bad_one() -> None:
    features = [{"name": "when", "key": "when", "kind": "datetime"}, {"name": "x", "key": "x", "kind": "numeric"}]
    arrays = instances_to_inputs([{"when": "2024-05-17", "x": 1.0}, {"when": None, "x": 2}], features)
    assert arrays["when"].dtype == np.float32 and arrays["when"][0, 0] == 19860.0 and np.isnan(arrays["when"][1, 0])
    with pytest.raises(InvalidInstances) as caught:
        instances_to_inputs([{"when": "17/05/2024", "x": 1.0}], features)
    assert "instances.0.when" in caught.value.errors and "ISO 8601" in caught.value.message


def test_an_explanation_shows_a_date_baseline_as_a_date() -> None:
    explainer = Explainer.of([{"name": "when", "key": "when", "kind": "datetime", "median": 19860.0},
                              {"name": "x", "key": "x", "kind": "numeric", "median": 2.5}])
    assert explainer.baseline_values() == {"when": "2024-05-17", "x": 2.5}


def test_parquet_upload_of_typed_dates(tmp_path: Path) -> None:
    moments = pd.to_datetime(["2024-05-17 08:30", "2024-05-18", None], format="ISO8601").tz_localize("UTC")
    frame = pd.DataFrame({"at": moments, "y": [1.0, 2.0, 3.0]})
    buffer = io.BytesIO()
    frame.to_parquet(buffer)
    path = tmp_path / "dated.parquet"
    path.write_bytes(buffer.getvalue())
    stored = ingest_file(path, "dated.parquet", tmp_path / "store")
    assert {c["name"]: c["type"] for c in stored.columns}["at"] == "datetime"
    kept = load_frame(stored.path)["at"]
    assert np.allclose(cells_to_array(kept, "datetime").array[:2, 0], np.float32([19860 + 8.5 / 24, 19861.0]))
