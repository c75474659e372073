"""Per-prediction explanations by baseline replacement: a model whose output depends on one column
only attributes everything to it and exactly 0 to the others; the answer, batch scoring's columns
and the request limits."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from automl.errors import InvalidInstances
from automl.serving.explain import MAX_EXPLAINED_ROWS, Explainer
from tests.seed import CLASSES, ROW, SPECS

FEATURES = [s.to_dict() for s in SPECS]


def _size_only_model(folder: Path) -> Path:
    """A binary model whose probability is sigmoid(size - 4): it reads no other column."""
    import keras

    from automl.preprocessing.layers import build_inputs
    from automl.registry import save_model

    inputs, _ = build_inputs(SPECS)
    dense = keras.layers.Dense(1, activation="sigmoid")
    out = dense(keras.ops.nan_to_num(inputs["size"]))
    dense.set_weights([np.array([[1.0]], dtype="float32"), np.array([-4.0], dtype="float32")])
    metadata = {"task": "binary", "target": "label", "classes": CLASSES, "features": FEATURES}
    return save_model(keras.Model(inputs, out), metadata, folder, "size-only")


@pytest.fixture(scope="module")
def predictor(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from automl.serving.predictor import Predictor

    return Predictor(_size_only_model(tmp_path_factory.mktemp("models")))


def _sigmoid(v: float) -> float:
    return float(1 / (1 + np.exp(-v)))


def test_a_model_that_reads_one_column_attributes_everything_to_it(predictor: Any) -> None:
    from automl.serving.adapters import json_instances
    from automl.usecases.predictions import answer

    rows = [ROW, {**ROW, "size": 9.0, "colour name": "blue", "flag": False}, {**ROW, "size": None}]
    document = answer(predictor, json_instances(predictor, rows), proba=True, explain=True)
    baseline = predictor.explainer.baseline_values()
    assert baseline == {"size": 0.0, "flag": 0.0, "colour name": "red"}  # median 0 (SPECS has none), top category
    for row, probabilities, explained in zip(rows, document["probabilities"], document["explanations"], strict=True):
        assert explained["explains"] == f"P({CLASSES[1]!r})"
        assert explained["value"] == pytest.approx(probabilities[1], abs=1e-6)
        size = row["size"] or 0.0  # missing: the model sees 0 (nan_to_num), as at the baseline
        assert explained["attributions"]["size"] == pytest.approx(_sigmoid(size - 4) - _sigmoid(-4), abs=1e-5)
        assert explained["attributions"]["flag"] == 0.0 and explained["attributions"]["colour name"] == 0.0
        assert next(iter(explained["attributions"])) == "size" or explained["attributions"]["size"] == 0.0
    assert "explanations" not in answer(predictor, json_instances(predictor, [ROW]), proba=False)


def _fake(task: str) -> Any:
    """A call whose output depends on size only, for each task's shape."""
    def call(inputs: dict[str, np.ndarray]) -> np.ndarray:
        size = np.nan_to_num(inputs["size"].astype("float64"))
        if task == "regression":
            return 10 * size
        if task == "multilabel":
            return np.concatenate([_sig(size), 1 - _sig(size)], axis=1)
        return np.concatenate([_sig(size), 1 - _sig(size)], axis=1)  # multiclass: two classes
    return call


def _sig(v: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-(v - 4)))


@pytest.mark.parametrize("task", ["regression", "multiclass", "multilabel"])
def test_every_task_explains_its_own_output(task: str) -> None:
    from automl.serving.adapters import instances_to_inputs

    explainer = Explainer.of(FEATURES)
    inputs = instances_to_inputs([{**ROW, "size": 6.0}, {**ROW, "size": 1.0}], FEATURES)
    classes = [["no", "yes"], ["off", "on"]] if task == "multilabel" else ["a", "b"]
    found = explainer.explain(_fake(task), inputs, 2, task, classes, ["first", "second"])
    if task == "regression":
        assert [e["attributions"]["size"] for e in found] == pytest.approx([60.0, 10.0])
        assert found[0]["explains"] == "value" and found[0]["value"] == pytest.approx(60.0)
    elif task == "multiclass":  # the predicted class's probability: a for size 6, b for size 1
        assert [e["explains"] for e in found] == ["P('a')", "P('b')"]
        assert found[0]["attributions"]["size"] == pytest.approx(float(_sig(np.array(6.0)) - _sig(np.array(0.0))))
    else:
        assert set(found[0]["value"]) == {"first", "second"} and found[0]["explains"]["second"] == "P('on')"
        first = found[0]["attributions"]["first"]["size"]
        assert found[0]["attributions"]["second"]["size"] == pytest.approx(-first)
    for explanation in found:
        flat = explanation["attributions"] if task != "multilabel" else explanation["attributions"]["first"]
        assert flat["flag"] == 0.0 and flat["colour name"] == 0.0


def test_too_many_rows_to_explain_is_refused_with_the_limit() -> None:
    from automl.serving.adapters import instances_to_inputs

    explainer = Explainer.of(FEATURES)
    n = MAX_EXPLAINED_ROWS // 4 + 1  # 3 columns: 4 rows per instance
    inputs = instances_to_inputs([ROW] * n, FEATURES)
    with pytest.raises(InvalidInstances, match=f"Send at most {MAX_EXPLAINED_ROWS // 4} instances"):
        explainer.explain(_fake("regression"), inputs, n, "regression", None, ["y"])


def test_batch_scoring_adds_the_explanations_as_columns(predictor: Any, tmp_path: Path) -> None:
    from automl.serving.adapters import json_instances
    from automl.serving.batch import score_file
    from automl.usecases.predictions import answer

    rows = [ROW, {**ROW, "size": 7.5}, {**ROW, "size": None, "colour name": "blue"}]
    upload = tmp_path / "rows.csv"
    pd.DataFrame(rows).to_csv(upload, index=False)
    scored = score_file(predictor, upload, "rows.csv", proba=False, output="csv", passthrough=[], tmp_dir=tmp_path,
                        explain=True, chunk_rows=2)
    with scored.handle:
        written = pd.read_csv(io.BytesIO(scored.handle.read()))
    assert list(written.columns) == ["prediction", "explains", "explained_value", "attribution:size",
                                     "attribution:flag", "attribution:colour name"]
    expected = answer(predictor, json_instances(predictor, rows), proba=False, explain=True)["explanations"]
    assert written["attribution:size"].tolist() == pytest.approx([e["attributions"]["size"] for e in expected],
                                                                 abs=1e-6)
    assert (written["attribution:flag"] == 0).all() and (written["attribution:colour name"] == 0).all()
    with pytest.raises(InvalidInstances, match="CSV output only"):
        score_file(predictor, upload, "rows.csv", proba=False, output="json", passthrough=[], tmp_dir=tmp_path,
                   explain=True)


def test_the_predict_routes_take_explain(tmp_path: Path) -> None:
    from api import create_app
    from automl.settings import Settings
    from tests.conftest import make_key
    from tests.seed import seed_team, tiny_model

    app = create_app(Settings(data_dir=tmp_path / "var"))
    store = app.extensions["automl"].store
    owned = seed_team(store, "alpha", tiny_model(tmp_path / "models"), tmp_path)
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {make_key(store, 'alpha')}"
    for route in ("predict", "predict_proba"):
        answer = client.post(f"/api/v1/models/{owned.model}/{route}", json={"instances": [ROW], "explain": True})
        assert answer.status_code == 200, answer.get_json()
        (explained,) = answer.get_json()["explanations"]
        assert set(explained["attributions"]) == {"size", "flag", "colour name"}
    refused = client.post(f"/api/v1/models/{owned.model}/predict", json={"instances": [ROW], "explain": "very"})
    assert refused.status_code == 422 and "explain" in str(refused.get_json())
