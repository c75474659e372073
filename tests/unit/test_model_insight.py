"""What a model tells an analyst besides its score: permutation importance ranks the column the
target depends on first, calibration measures and fixes over-confidence (and the served model
carries the fix), and the training profile holds what the training rows held."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from automl.insight.calibration import calibrate, fit_temperature, reliability, scaled
from automl.insight.importance import permutation_importance
from automl.insight.profile import training_profile
from automl.preprocessing.features import fit_features, frame_to_inputs

COLUMNS = [("signal", "signal"), ("noise", "noise"), ("colour", "colour")]


def _table(n: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"signal": rng.normal(size=(n, 1)), "noise": rng.normal(size=(n, 1)),
            "colour": rng.choice(np.array(["red", "green", "blue"], dtype=object), size=(n, 1))}


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
def test_the_one_column_the_output_depends_on_ranks_first_by_a_clear_margin(task: str) -> None:
    x = _table(500)
    signal = x["signal"][:, 0]
    if task == "binary":
        y = (signal > 0).astype("float32").reshape(-1, 1)
        def predict(v: dict[str, np.ndarray]) -> np.ndarray:
            return 1 / (1 + np.exp(-5 * v["signal"]))
    elif task == "multiclass":
        y = np.digitize(signal, [-0.5, 0.5])
        def predict(v: dict[str, np.ndarray]) -> np.ndarray:
            return np.eye(3)[np.digitize(v["signal"][:, 0], [-0.5, 0.5])] * 0.9 + 0.1 / 3
    else:
        y = (3 * signal + np.random.default_rng(1).normal(scale=0.1, size=500)).reshape(-1, 1)
        def predict(v: dict[str, np.ndarray]) -> np.ndarray:
            return 3 * v["signal"]

    found = permutation_importance(predict, x, y, task, COLUMNS, seed=0)
    assert found["metric"] == ("r2" if task == "regression" else "accuracy")
    assert found["baseline"] > 0.99 and found["repeats"] == 5 and found["rows"] == 500
    first, *others = found["columns"]
    assert first["name"] == "signal" and first["mean"] > 0.3 and first["std"] < first["mean"] / 5
    assert all(c["mean"] == 0.0 and c["std"] == 0.0 for c in others)  # shuffling an unused column changes nothing


def test_importance_samples_large_test_splits_and_stops_repeating_when_out_of_time() -> None:
    x = _table(5000)
    y = (x["signal"][:, 0] > 0).astype("float32")

    def slow(v: dict[str, np.ndarray]) -> np.ndarray:
        import time
        time.sleep(0.05)
        return (v["signal"] > 0).astype("float64")

    found = permutation_importance(slow, x, y, "binary", COLUMNS, seed=0, seconds=0.12)
    assert found["rows"] == 2000  # MAX_ROWS
    assert 1 <= found["repeats"] < 5 and found["columns"][0]["name"] == "signal"


def test_a_calibrated_model_has_near_zero_ece_and_an_overconfident_one_is_fixed() -> None:
    rng = np.random.default_rng(0)
    p = rng.uniform(0.02, 0.98, size=(20_000, 1))
    y = (rng.uniform(size=p.shape) < p).astype("float64")
    assert reliability("binary", y, p)["ece"] < 0.02  # perfectly calibrated by construction
    assert 0.9 < fit_temperature("binary", y, p) < 1.1

    overconfident = scaled("binary", p, 0.4)  # log-odds times 2.5
    before = reliability("binary", y, overconfident)
    assert before["ece"] > 0.08
    assert fit_temperature("binary", y, overconfident) == pytest.approx(2.5, rel=0.05)
    half = len(y) // 2
    found = calibrate("binary", None, y[:half], overconfident[:half], y[half:], overconfident[half:], seed=0)
    assert found.applied and found.report["calibrated"]["ece"] < before["ece"] / 4
    assert found.report["calibrated"]["log_loss"] < found.report["uncalibrated"]["log_loss"]
    assert not calibrate("binary", False, y[:half], overconfident[:half], y[half:], overconfident[half:], 0).applied
    # Bins: each holds its own rows, and the rows add up.
    assert sum(b["count"] for b in before["bins"]) == len(y)


def test_temperature_scaling_keeps_the_predicted_class_of_every_task() -> None:
    rng = np.random.default_rng(2)
    probs = rng.dirichlet(np.ones(4), size=200)
    for temperature in (0.3, 3.0):
        out = scaled("multiclass", probs, temperature)
        assert np.allclose(out.sum(axis=1), 1.0) and (out.argmax(axis=1) == probs.argmax(axis=1)).all()
        binary = rng.uniform(size=(200, 1))
        assert ((scaled("binary", binary, temperature) > 0.5) == (binary > 0.5)).all()


def test_the_layer_computes_what_the_report_assumed() -> None:
    import keras

    from automl.hypermodels.calibration import TemperatureScaling

    probs = np.random.default_rng(3).dirichlet(np.ones(3), size=50).astype("float32")
    layer = TemperatureScaling(1.7, "softmax")
    assert np.allclose(np.asarray(layer(probs)), scaled("multiclass", probs, 1.7), atol=1e-5)
    binary = probs[:, :1]
    assert np.allclose(np.asarray(TemperatureScaling(0.6, "sigmoid")(binary)), scaled("binary", binary, 0.6),
                       atol=1e-5)
    assert keras.layers.deserialize(keras.layers.serialize(layer)).temperature == 1.7


def test_the_training_profile_holds_quantiles_bins_categories_and_missing_shares() -> None:
    frame = pd.DataFrame({"size": [float(i) for i in range(90)] + [None] * 10,
                          "colour": ["red"] * 50 + ["blue"] * 30 + [None] * 20,
                          "flag": [True, False] * 50})
    features = fit_features(frame, {"size": "numeric", "colour": "categorical", "flag": "boolean"}, set())
    size, colour, flag = training_profile(features, frame_to_inputs(frame, features))
    assert size["missing_share"] == 0.1 and size["min"] == 0 and size["max"] == 89
    assert len(size["quantiles"]) == 11 and size["quantiles"][5] == pytest.approx(44.5)
    assert sum(size["bins"]["shares"]) + size["missing_share"] == pytest.approx(1.0)
    assert len(size["bins"]["shares"]) == len(size["bins"]["edges"]) + 1
    assert colour["categories"] == {"red": 0.5, "blue": 0.3} and colour["missing_share"] == 0.2
    assert colour["distinct"] == 2 and colour["other_share"] == 0.0
    assert flag["categories"] == {"true": 0.5, "false": 0.5}


def _one_column_job(tmp_path: Path, calibrate_option: bool | None) -> object:
    from dataclasses import replace

    from automl.datasets.ingest import ingest_file
    from automl.search.local import run_local_search
    from automl.search.spec import SearchSpec

    rng = np.random.default_rng(0)
    n = 600
    frame = pd.DataFrame({"signal": rng.normal(size=n), "noise": rng.normal(size=n),
                          "colour": rng.choice(["red", "green", "blue"], size=n)})
    flip = rng.uniform(size=n) < 0.05
    frame["label"] = np.where((frame["signal"] > 0) ^ flip, "yes", "no")
    tmp_path.mkdir(parents=True, exist_ok=True)
    csv = tmp_path / "one_column.csv"
    frame.to_csv(csv, index=False)
    ingested = ingest_file(csv, "one_column.csv", tmp_path / "datasets")
    spec = SearchSpec(
        job_id="j", dataset_path=ingested.path, column_types={c["name"]: c["type"] for c in ingested.columns},
        targets=["label"], task="binary", classes=["no", "yes"], tuner="random", objective="val_loss",
        direction="min", max_trials=1, max_epochs=20, patience=5, seed=1, work_dir=tmp_path / "job",
        overrides={"units": {"fixed": 16}, "num_layers": {"fixed": 1}}, ensemble_size=1, refit=False,
    )
    return run_local_search(replace(spec, calibrate=calibrate_option)).trained


def test_a_finished_job_ranks_its_one_useful_column_first_and_serves_calibrated_probabilities(
        tmp_path: Path) -> None:
    from automl.registry import save_model, saved_model_archive
    from automl.serving.adapters import json_instances
    from automl.serving.predictor import Predictor

    trained = _one_column_job(tmp_path, calibrate_option=True)
    importance = trained.importance
    assert importance is not None and importance["metric"] == "accuracy" and importance["split"] == "test"
    ranked = [c["name"] for c in importance["columns"]]
    assert ranked[0] == "signal" and len(ranked) == 3
    assert importance["columns"][0]["mean"] > 0.2 > max(c["mean"] for c in importance["columns"][1:]) + 0.15

    calibration = trained.calibration
    assert calibration is not None and calibration["applied"] and calibration["method"] == "temperature scaling"
    assert {"ece", "log_loss", "bins"} <= set(calibration["uncalibrated"]) == set(calibration["calibrated"])
    assert trained.test_metrics["log_loss"] == pytest.approx(calibration["calibrated"]["log_loss"], abs=1e-4)
    assert [c["name"] for c in trained.profile or []] == ["signal", "noise", "colour"]

    # The served model carries the temperature: its probabilities are the calibrated ones.
    metadata = {"task": "binary", "target": "label", "classes": ["no", "yes"], "kind": "tabular",
                **trained.card(), "features": trained.features}
    folder = save_model(trained.model, metadata, tmp_path / "models", "calibrated")
    predictor = Predictor(folder)
    assert predictor.model.get_layer("temperature_scaling").temperature == pytest.approx(calibration["temperature"],
                                                                                        rel=1e-3)
    rows = [{"signal": s, "noise": 0.0, "colour": "red"} for s in (-2.0, -0.1, 0.1, 2.0)]
    probabilities = predictor.probabilities(json_instances(predictor, rows), mc_samples=None).mean
    inner = predictor.model.layers[-2]  # the uncalibrated model inside
    raw = np.asarray(inner.predict_on_batch(json_instances(predictor, rows).inputs))
    assert np.allclose(probabilities[:, 1], scaled("binary", raw, calibration["temperature"])[:, 0], atol=1e-5)
    assert probabilities[0, 1] < 0.5 < probabilities[3, 1]
    assert saved_model_archive(folder).exists()  # exports to TF Serving with the layer inside

    plain = _one_column_job(tmp_path / "plain", calibrate_option=False)
    assert plain.calibration is not None and not plain.calibration["applied"]
    assert plain.calibration["temperature"] == pytest.approx(calibration["temperature"], rel=1e-3)


def test_importance_and_profile_routes(tmp_path: Path) -> None:
    from api import create_app
    from automl.settings import Settings
    from automl.store.records import ModelRecord
    from tests.conftest import make_key
    from tests.seed import seed_team, tiny_model

    app = create_app(Settings(data_dir=tmp_path / "var"))
    store = app.extensions["automl"].store
    owned = seed_team(store, "alpha", tiny_model(tmp_path / "models"), tmp_path)
    importance = {"method": "permutation", "split": "test", "metric": "accuracy", "baseline": 0.9, "repeats": 5,
                  "rows": 40, "seconds": 0.1, "columns": [{"name": "size", "mean": 0.3, "std": 0.02},
                                                          {"name": "colour name", "mean": 0.0, "std": 0.0}]}
    mine, theirs = app.test_client(), app.test_client()
    mine.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {make_key(store, 'alpha')}"
    theirs.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {make_key(store, 'beta')}"
    base = f"/api/v1/models/{owned.model}"
    missing = mine.get(f"{base}/importance")
    assert missing.status_code == 404 and "table models" in missing.get_json()["message"]
    with store.session() as session:
        record = session.get(ModelRecord, owned.model)
        record.importance = importance
        record.profile = [{"name": "size", "kind": "numeric", "rows": 40, "missing_share": 0.0, "min": 1.5},
                          {"name": "when", "kind": "datetime", "rows": 40, "missing_share": 0.0, "min": 19860.0,
                           "max": 19860.5, "mean": 19860.25, "quantiles": [19860.0, 19860.5],
                           "bins": {"edges": [19860.25], "shares": [0.5, 0.5]}}]
    answer = mine.get(f"{base}/importance").get_json()
    assert answer["model_id"] == owned.model and answer["columns"][0] == {"name": "size", "mean": 0.3, "std": 0.02}
    assert mine.get(f"/api/v1/models/{owned.alias}/importance").get_json()["columns"] == answer["columns"]
    png = mine.get(f"{base}/importance.png", query_string={"width": 500})
    assert png.status_code == 200 and Image.open(io.BytesIO(png.data)).size[0] == 500
    size, when = mine.get(f"{base}/profile").get_json()["columns"]
    assert size["name"] == "size" and size["min"] == 1.5
    assert (when["min"], when["max"], when["mean"]) == ("2024-05-17", "2024-05-17T12:00:00", "2024-05-17T06:00:00")
    assert when["quantiles"] == ["2024-05-17", "2024-05-17T12:00:00"] and when["bins"] == {
        "edges": ["2024-05-17T06:00:00"], "shares": [0.5, 0.5]}
    assert mine.get(base).get_json()["importance"]["metric"] == "accuracy"
    for path in ("importance", "importance.png", "profile"):
        assert theirs.get(f"{base}/{path}").status_code == 404
