"""`make run`'s shape: one command, SQLite + SQLite broker, worker beside the API."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes

from tests.integration.conftest import Service, submit, upload_frame

pytestmark = pytest.mark.integration


def test_regression_with_hyperband(embedded: Service, tmp_path: Path) -> None:
    base = f"{embedded.url}/api/v1"
    frame = load_diabetes(as_frame=True).frame
    dataset = upload_frame(embedded, frame, tmp_path, "diabetes")
    job = submit(embedded, dataset_id=dataset["id"], target="target", tuner="hyperband",
                 max_trials=2, max_epochs=9, seed=3, objective="val_mae")
    assert job["task"] == "regression" and job["objective_direction"] == "min"
    job = embedded.wait_for_job(job["id"])
    assert job["state"] == "succeeded", (job["error"], embedded.logs())

    # Hyperband's first bracket trains its configurations for one epoch only (9 / 3 / 3 = 1 epoch at
    # the first rung): random or Bayesian search would train each trial to early stopping. The
    # final model is never that under-trained rung model: it trains on past its trial's epoch.
    trials = embedded.http.get(f"{base}/jobs/{job['id']}/trials", timeout=10).json()["trials"]
    epochs = sorted(t["epochs_done"] for t in trials)
    assert epochs == [1, 1], epochs
    model = embedded.http.get(f"{base}/models/{job['model_id']}", timeout=10).json()
    assert model["members"] and all(m["epochs"] > 1 for m in model["members"]), model["members"]
    assert model["task"] == "regression" and model["classes"] is None
    assert {"mae", "rmse", "r2"} <= set(model["test_metrics"])
    rows = frame.drop(columns=["target"])
    predictions = np.array(embedded.http.post(f"{base}/models/{job['model_id']}/predict",
                                              json={"instances": rows.to_dict("records")},
                                              timeout=60).json()["predictions"])
    assert len(predictions) == len(frame) and predictions.dtype == np.float64
    # The target's scale lives inside the model: predictions are in the target's units (disease
    # progression, 25-346), centred where the target is, not standardised values around 0.
    truth = frame["target"].to_numpy()
    assert abs(predictions.mean() - truth.mean()) < 0.15 * truth.mean()
    assert predictions.std() > 0.3 * truth.std()
    r2 = 1 - ((predictions - truth) ** 2).sum() / ((truth - truth.mean()) ** 2).sum()
    assert r2 > 0.3, r2  # default gradient boosting reaches about 0.4 on held-out rows
    instances = rows.head(5).to_dict("records")
    response = embedded.http.post(f"{base}/models/{job['model_id']}/predict_proba", json={"instances": instances},
                                  timeout=30)
    assert response.status_code == 422 and "regression" in response.json()["message"]


def test_binary_with_auc_objective(embedded: Service, tmp_path: Path) -> None:
    base = f"{embedded.url}/api/v1"
    data = load_breast_cancer(as_frame=True)
    frame = data.frame.iloc[:, [*range(8), -1]].copy()
    frame["target"] = np.where(frame["target"] == 1, "benign", "malignant")
    dataset = upload_frame(embedded, frame, tmp_path, "cancer")
    job = submit(embedded, dataset_id=dataset["id"], target="target", tuner="random",
                 max_trials=2, max_epochs=15, seed=5, objective="val_auc")
    assert job["task"] == "binary" and job["objective_direction"] == "max"
    job = embedded.wait_for_job(job["id"])
    assert job["state"] == "succeeded", (job["error"], embedded.logs())

    model = embedded.http.get(f"{base}/models/{job['model_id']}", timeout=10).json()
    assert model["classes"] == ["benign", "malignant"]
    assert model["test_metrics"]["roc_auc"] >= 0.85, model["test_metrics"]
    instances = frame.drop(columns=["target"]).head(10).to_dict("records")
    proba = embedded.http.post(f"{base}/models/{job['model_id']}/predict_proba", json={"instances": instances},
                               timeout=60).json()
    matrix = np.array(proba["probabilities"])
    assert matrix.shape == (10, 2) and np.allclose(matrix.sum(axis=1), 1.0)
    labels = embedded.http.post(f"{base}/models/{job['model_id']}/predict", json={"instances": instances},
                                timeout=60).json()["predictions"]
    assert labels == [proba["classes"][i] for i in matrix.argmax(axis=1)]
    assert pd.Series(labels).isin(["benign", "malignant"]).all()


def test_serve_with_worker_restarts_a_dead_worker_and_stops_quickly(tmp_path: Path) -> None:
    """`automl serve --with-worker` brings its worker back when it dies (saying why), the new worker
    trains, and Ctrl-C stops everything within seconds, without the API server killing its workers."""
    import os
    import signal
    import time

    import psutil
    import requests
    from sklearn.datasets import load_iris

    from tests.integration.conftest import _base_env, _spawn, _stop, _wait_healthy, free_port, wait_until

    env = _base_env(tmp_path / "var")
    port = free_port()
    log = tmp_path / "serve.log"
    serve = _spawn(["serve", "--port", str(port), "--with-worker"], env, log)
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_healthy(url, [serve], tmp_path)

        def worker_pid() -> int | None:
            for child in psutil.Process(serve.pid).children():
                if "worker" in child.cmdline():
                    return int(child.pid)
            return None

        first = wait_until(worker_pid, 120, "the worker process")
        wait_until(lambda: log.read_text().count("ready.") >= 1, 120, "the worker to be ready")
        os.kill(first, signal.SIGKILL)
        wait_until(lambda: "the worker exited (killed by SIGKILL); starting it again" in log.read_text(), 30,
                   "the supervisor to notice")
        second = wait_until(lambda: (pid := worker_pid()) not in (None, first) and pid, 60, "a new worker")
        assert second != first
        service = Service(url=url, log_dir=tmp_path, key=(tmp_path / "var" / "admin-key").read_text().strip())
        dataset = upload_frame(service, load_iris(as_frame=True).frame, tmp_path, "iris")
        job = submit(service, dataset_id=dataset["id"], target="target", max_trials=1, max_epochs=2,
                     ensemble_size=0, refit=False)
        assert service.wait_for_job(job["id"], timeout=300)["state"] == "succeeded", log.read_text()[-3000:]

        started = time.monotonic()
        os.killpg(serve.pid, signal.SIGINT)  # what Ctrl-C in a terminal sends
        serve.wait(timeout=60)
        took = time.monotonic() - started
        text = log.read_text()
        assert took < 15, (took, text[-2000:])
        assert "did not stop" not in text  # automl serve's own message for a child it had to kill
        assert "refused to gracefully stop" not in text and "Unexpected exit from worker" not in text  # granian's
        assert not psutil.pid_exists(second) or psutil.Process(second).status() == psutil.STATUS_ZOMBIE
        with pytest.raises(requests.ConnectionError):
            requests.get(f"{url}/healthz", timeout=3)
    finally:
        _stop([serve])
