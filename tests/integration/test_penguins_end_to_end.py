"""Upload penguins (missing values, string columns) -> search on a worker -> predict over HTTP."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from tests.integration.conftest import Service, submit, upload_csv

pytestmark = pytest.mark.integration

REQUIRED_HYPERPARAMETERS = {"num_layers", "units", "activation", "dropout", "batch_norm", "optimizer",
                            "learning_rate", "lr_schedule", "batch_size", "l1", "l2", "class_weight"}


def test_penguins_search_and_serve(distributed: Service, penguins_csv: Path, penguins: pd.DataFrame) -> None:
    base = f"{distributed.url}/api/v1"
    dataset = upload_csv(distributed, penguins_csv)
    types = {c["name"]: c["type"] for c in dataset["columns"]}
    assert types["species"] == "categorical" and types["bill_length_mm"] == "numeric"

    job = submit(distributed, dataset_id=dataset["id"], target="species", tuner="bayesian",
                 max_trials=3, max_epochs=30, patience=5, seed=7)
    job = distributed.wait_for_job(job["id"])
    assert job["state"] == "succeeded", (job["error"], distributed.logs())
    assert job["trials_done"] == 3 and job["task"] == "multiclass"
    assert job["best_score"] is not None and job["model_id"]

    board = distributed.http.get(f"{base}/jobs/{job['id']}/trials", timeout=10).json()
    trials = board["trials"]
    assert len(trials) == 3 and len({t["trial_id"] for t in trials}) == 3
    scores = [t["score"] for t in trials]
    assert scores == sorted(scores) and scores[0] == pytest.approx(job["best_score"])
    for trial in trials:
        assert trial["state"] == "completed"
        assert set(trial["hyperparameters"]) >= REQUIRED_HYPERPARAMETERS
        history = distributed.http.get(f"{base}/jobs/{job['id']}/trials/{trial['trial_id']}/history", timeout=10).json()
        assert len(history["epochs"]) == trial["epochs_done"] > 0
        assert {"loss", "val_loss", "accuracy", "val_accuracy"} <= set(history["epochs"][0])
        assert [e["epoch"] for e in history["epochs"]] == list(range(len(history["epochs"])))

    model = distributed.http.get(f"{base}/models/{job['model_id']}", timeout=10).json()
    assert model["state"] == "ready" and model["task"] == "multiclass" and model["target"] == "species"
    assert model["classes"] == ["Adelie", "Chinstrap", "Gentoo"]
    assert [c["name"] for c in model["input_schema"]] == [c for c in penguins.columns if c != "species"]
    assert set(model["hyperparameters"]) >= REQUIRED_HYPERPARAMETERS
    assert sum(model["split_sizes"].values()) == penguins["species"].notna().sum()
    # Three species, the largest 44 % of rows: what a user expects of penguins on rows the search never saw.
    assert model["test_metrics"]["accuracy"] >= 0.95, model["test_metrics"]
    assert {"accuracy", "balanced_accuracy", "log_loss", "roc_auc", "f1"} <= set(model["validation_metrics"])
    history = distributed.http.get(f"{base}/models/{job['model_id']}/history", timeout=10).json()["epochs"]
    # Retrained on every row after the test metrics were taken (the default): no validation curve.
    assert model["refit"] is True and model["refit_rows"] == sum(model["split_sizes"].values())
    assert history and {"loss", "accuracy"} <= set(history[0]) and "val_loss" not in history[0]

    rows = penguins.drop(columns=["species"]).astype(object)
    instances = rows.where(rows.notna(), None).to_dict("records")
    assert any(v is None for row in instances for v in row.values())  # missing values included
    everything = distributed.http.post(f"{base}/models/{job['model_id']}/predict", json={"instances": instances},
                                       timeout=60).json()
    predicted = everything["predictions"]
    assert len(predicted) == len(penguins) and set(predicted) <= set(model["classes"])
    # The dataset's own rows look like the training rows: one (mostly empty) warning list per row.
    assert len(everything["warnings"]) == len(penguins)
    assert sum(1 for found in everything["warnings"] if found) <= 0.05 * len(penguins), everything["warnings"]
    assert np.mean(np.array(predicted) == penguins["species"].to_numpy()) >= 0.95

    proba = distributed.http.post(f"{base}/models/{job['model_id']}/predict_proba", json={"instances": instances[:20]},
                                  timeout=60).json()
    assert proba["classes"] == model["classes"]
    matrix = np.array(proba["probabilities"])
    assert matrix.shape == (20, 3) and np.allclose(matrix.sum(axis=1), 1.0, atol=1e-6)
    assert [model["classes"][i] for i in matrix.argmax(axis=1)] == predicted[:20]

    # An island and a missing sex the model never saw still get a class and a distribution over the classes.
    unseen = dict(instances[0], island="Atlantis", sex=None)
    answered = distributed.http.post(f"{base}/models/{job['model_id']}/predict", json={"instances": [unseen]},
                                     timeout=30)
    assert answered.status_code == 200, answered.text
    assert len(answered.json()["predictions"]) == 1 and answered.json()["predictions"][0] in model["classes"]
    # ... and the answer says which value the model never saw (sex had missing values in training: no warning).
    assert answered.json()["warnings"] == [["island: 'Atlantis' was never seen in training"]]
    quiet = distributed.http.post(f"{base}/models/{job['model_id']}/predict",
                                  json={"instances": [unseen], "warnings": False}, timeout=30).json()
    assert "warnings" not in quiet and quiet["predictions"] == answered.json()["predictions"]
    spread = distributed.http.post(f"{base}/models/{job['model_id']}/predict_proba", json={"instances": [unseen]},
                                   timeout=30).json()["probabilities"]
    assert len(spread) == 1 and len(spread[0]) == 3 and abs(sum(spread[0]) - 1.0) < 1e-6
    bad = dict(instances[0], wingspan=3)
    del bad["island"]
    response = distributed.http.post(f"{base}/models/{job['model_id']}/predict", json={"instances": [bad]}, timeout=30)
    assert response.status_code == 422
    assert "island" in response.json()["message"] and "wingspan" in str(response.json()["errors"])

    # What the model found besides its score: which columns matter, how sure it is, what it trained on.
    importance = distributed.http.get(f"{base}/models/{job['model_id']}/importance", timeout=10).json()
    assert sorted(c["name"] for c in importance["columns"]) == sorted(model_columns := [
        c["name"] for c in model["input_schema"]])
    assert importance["columns"][0]["name"] in ("bill_length_mm", "bill_depth_mm", "flipper_length_mm", "island",
                                                "body_mass_g")
    assert importance["columns"][0]["mean"] > 0.05 and importance["rows"] == model["split_sizes"]["test"]
    calibration = model["calibration"]
    assert calibration["method"] == "temperature scaling" and calibration["uncalibrated"]["ece"] < 0.2
    profile = distributed.http.get(f"{base}/models/{job['model_id']}/profile", timeout=10).json()["columns"]
    assert [c["name"] for c in profile] == model_columns
    islands = next(c for c in profile if c["name"] == "island")["categories"]
    assert set(islands) == {"Biscoe", "Dream", "Torgersen"} and abs(sum(islands.values()) - 1.0) < 1e-6
    explained = distributed.http.post(f"{base}/models/{job['model_id']}/predict",
                                      json={"instances": instances[:3], "explain": True}, timeout=30).json()
    assert [e["explains"] for e in explained["explanations"]] == [f"P({p!r})" for p in explained["predictions"]]
    assert all(set(e["attributions"]) == set(model_columns) for e in explained["explanations"])

    # Drift: the penguins' own rows look like the training rows; heavier penguins do not. Every serving
    # process adds its counts to the store every AUTOML_DRIFT_FLUSH_S, so the report is polled until
    # every request above is counted.
    served = len(instances) + 20 + 3 + 3

    def drift_after(rows: int) -> dict[str, Any]:
        deadline = time.monotonic() + 60
        while True:
            report = distributed.http.get(f"{base}/models/{job['model_id']}/drift", timeout=10).json()
            if report["rows"] >= rows or time.monotonic() > deadline:
                return report
            time.sleep(0.5)

    report = drift_after(served)
    assert report["rows"] == served and report["drifted"] == [], report
    heavier = [dict(row, body_mass_g=(row["body_mass_g"] or 4000) + 3000) for row in instances]  # every row again
    distributed.http.post(f"{base}/models/{job['model_id']}/predict", json={"instances": heavier}, timeout=60)
    report = drift_after(served + len(heavier))
    assert report["rows"] == served + len(heavier) and report["drifted"] == ["body_mass_g"], report
    mass = next(c for c in report["columns"] if c["name"] == "body_mass_g")
    assert mass["out_of_range_share"] > 0.3 and mass["psi"] > report["threshold"]


def test_a_parquet_upload_keeps_its_types_and_trains(distributed: Service, penguins: pd.DataFrame,
                                                      tmp_path: Path) -> None:
    base = f"{distributed.url}/api/v1"
    frame = penguins.copy()
    # A real boolean column, missing where the mass is.
    frame["heavy"] = (frame["body_mass_g"] > 4200).astype("boolean").mask(frame["body_mass_g"].isna())
    path = tmp_path / "penguins.parquet"
    frame.to_parquet(path, index=False)
    with path.open("rb") as handle:
        answer = distributed.http.post(f"{base}/datasets", files={"file": ("penguins.parquet", handle)}, timeout=60)
    assert answer.status_code == 201, answer.text
    dataset = answer.json()
    assert dataset["source_format"] == "parquet" and dataset["n_rows"] == len(frame)
    columns = {c["name"]: c for c in dataset["columns"]}
    assert columns["species"]["type"] == "categorical" and columns["year"]["type"] == "numeric"
    assert columns["heavy"]["type"] == "boolean"
    assert columns["sex"]["missing"] == int(frame["sex"].isna().sum())
    job = submit(distributed, dataset_id=dataset["id"], target="heavy", tuner="random", max_trials=1,
                 max_epochs=5, ensemble_size=0, refit=False, search_space={"num_layers": 1})
    assert job["task"] == "binary" and job["classes"] == [False, True]
    job = distributed.wait_for_job(job["id"])
    assert job["state"] == "succeeded", (job["error"], distributed.logs())
