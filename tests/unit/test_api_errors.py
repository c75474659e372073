"""Bad input: every case is a 4xx with one error body that says what to fix, and no residue."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from flask.testing import FlaskClient

from api import create_app
from automl.settings import Settings
from automl.store.records import ModelRecord
from tests.conftest import client_for

UNREACHABLE_BROKER = "redis://127.0.0.1:1/0"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "var", broker_url=UNREACHABLE_BROKER)


@pytest.fixture
def client(settings: Settings) -> FlaskClient:
    return client_for(create_app(settings))


def upload(client: FlaskClient, content: bytes, name: str = "data.csv") -> Any:
    return client.post("/api/v1/datasets", data={"file": (io.BytesIO(content), name)},
                       content_type="multipart/form-data")


def assert_error(response: Any, status: int, needle: str) -> dict[str, Any]:
    assert response.status_code == status, response.get_json()
    body: dict[str, Any] = response.get_json()
    assert body["code"] == status and needle in body["message"], body
    assert set(body) >= {"code", "status", "error", "message", "errors"}
    return body


@pytest.fixture
def dataset_id(client: FlaskClient) -> str:
    frame = pd.DataFrame({
        "x": range(40),
        "label": ["a"] * 20 + ["b"] * 19 + ["c"],
        "same": ["k"] * 40,
    })
    response = upload(client, frame.to_csv(index=False).encode())
    assert response.status_code == 201
    dataset: dict[str, Any] = response.get_json()
    assert [c["type"] for c in dataset["columns"]] == ["numeric", "categorical", "categorical"]
    return str(dataset["id"])


def test_upload_errors(client: FlaskClient, settings: Settings) -> None:
    assert_error(upload(client, b""), 422, "empty")
    assert_error(upload(client, b"a,b\n1,2\n3,4,5\n"), 422, "line 3")
    assert_error(upload(client, b"\x00\x01binary"), 422, "binary")
    body = assert_error(client.post("/api/v1/datasets", data={}, content_type="multipart/form-data"), 422, "file")
    assert "file" in body["errors"]
    assert list(settings.datasets_dir.iterdir()) == []
    assert client.get("/api/v1/datasets").get_json() == []


def test_unknown_ids_are_404(client: FlaskClient) -> None:
    assert_error(client.get("/api/v1/datasets/nope"), 404, "No dataset")
    assert_error(client.get("/api/v1/jobs/nope"), 404, "No job")
    assert_error(client.get("/api/v1/jobs/nope/trials"), 404, "No job")
    assert_error(client.get("/api/v1/models/nope"), 404, "No model")
    assert_error(client.post("/api/v1/models/nope/predict", json={"instances": [{}]}), 404, "No model")
    assert_error(client.post("/api/v1/jobs", json={"dataset_id": "nope", "target": "x"}), 404, "No dataset")


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"target": "colour"}, "Choose the target from: x, label, same"),
        ({"target": "same"}, "constant"),
        ({"target": "label"}, "'c' (1 row)"),
        ({"target": "label", "task": "regression"}, "numeric target"),
        ({"target": "x", "objective": "val_accuracy"}, "does not fit a regression task"),
        ({"target": "x", "task": "clustering"}, "task: Must be one of"),
        ({"target": "x", "max_trials": 0}, "max_trials"),
        ({"target": "x", "learning_rate": 3}, "learning_rate: Unknown field"),
        ({"target": "x", "max_trials": 100000}, "at most"),
        ({"target": "x", "search_space": {"num_layerz": 2}}, "fix: num_layerz"),
        ({"target": "x", "search_space": {"num_layers": {"min": 5, "max": 2}, "dropout": 2}},
         "fix: dropout, num_layers"),
        ({"target": "x", "search_space": {"class_weight": "balanced"}}, "fix: class_weight"),
        ({"target": "x", "search_space": []}, "search_space: Not a valid mapping"),
        ({"target": "x", "objective": "val_loss"}, "Fix the loss"),
        ({"target": "x", "tuner": "genetic"}, "tuner: Must be one of"),
        ({"target": "x", "time_budget_s": 0}, "time_budget_s"),
        ({"target": "x", "executions_per_trial": 50}, "executions_per_trial is at most"),
        ({"target": "x", "target_score": "high"}, "target_score"),
        ({"target": ["x", "nope"]}, "'nope'"),
        ({"target": ["label", "same"]}, "exactly 2"),
        ({"target": []}, "target"),
        ({"target": "x", "task": "multilabel"}, "several target columns"),
    ],
)
def test_job_request_errors(client: FlaskClient, dataset_id: str, body: dict[str, Any], needle: str) -> None:
    assert_error(client.post("/api/v1/jobs", json={"dataset_id": dataset_id, **body}), 422, needle)
    assert client.get("/api/v1/jobs").get_json() == []


def test_broker_down_is_503_and_creates_nothing(client: FlaskClient, dataset_id: str) -> None:
    response = client.post("/api/v1/jobs", json={"dataset_id": dataset_id, "target": "x", "max_trials": 1})
    assert_error(response, 503, "task queue is unreachable")
    assert client.get("/api/v1/jobs").get_json() == []


def test_predict_on_model_in_training_is_409(client: FlaskClient, dataset_id: str) -> None:
    services = client.application.extensions["automl"]
    with services.store.session() as session:
        from automl.store.records import JobRecord

        session.add(JobRecord(id="j", dataset_id=dataset_id, target="x", task="regression",
                              requested_task="auto", tuner="random", objective="val_loss",
                              objective_direction="min", max_trials=1, max_epochs=1, patience=1, seed=0))
        session.flush()
        session.add(ModelRecord(id="m", job_id="j", dataset_id=dataset_id, task="regression", target="x"))
    assert_error(client.post("/api/v1/models/m/predict", json={"instances": [{"label": "a"}]}), 409, "training")
    assert client.get("/api/v1/models/m").get_json()["state"] == "training"


def test_predict_payload_validation(client: FlaskClient) -> None:
    assert_error(client.post("/api/v1/models/m/predict", json={"instances": []}), 422, "instances")
    assert_error(client.post("/api/v1/models/m/predict", json={"rows": [{}]}), 422, "instances")
    response = client.post("/api/v1/models/m/predict", data="{not json", content_type="application/json")
    assert 400 <= response.status_code < 500
    for literal in ("NaN", "Infinity", "-Infinity"):  # not JSON, though Python's json module accepts them
        response = client.post("/api/v1/models/m/predict", data=f'{{"instances": [{{"x": {literal}}}]}}',
                               content_type="application/json")
        assert_error(response, 422, "not valid JSON")
    assert_error(client.post("/api/v1/models/m/predict", data="x=1", content_type="text/plain"), 415, "multipart")
    assert_error(client.post("/api/v1/models/m/predict", data={"file": "not a file"},
                             content_type="multipart/form-data"), 422, "field 'file'")
    assert_error(client.post("/api/v1/models/m/predict", data={}, content_type="multipart/form-data"), 422, "file")


def test_openapi_and_docs_are_served(client: FlaskClient) -> None:
    spec = client.get("/api/v1/openapi.json").get_json()
    for path in ["/api/v1/datasets", "/api/v1/jobs/{job_id}/trials/{trial_id}/history",
                 "/api/v1/models/{model_id}/predict_proba"]:
        assert path in spec["paths"]
    assert "JobCreate" in spec["components"]["schemas"]
    docs = client.get("/api/v1/docs")
    assert docs.status_code == 200 and b"/api/v1/docs/static/swagger-ui-bundle.js" in docs.data
    assert client.get("/api/v1/docs/static/swagger-ui-bundle.js").status_code == 200


def test_search_space_is_documented(client: FlaskClient) -> None:
    body = client.get("/api/v1/search-space").get_json()
    names = {hp["name"] for hp in body["hyperparameters"]}
    assert {"num_layers", "units", "shrink", "activation", "l1", "l2", "max_norm", "lr_schedule", "loss"} <= names
    assert body["tuners"] == ["bayesian", "random", "hyperband", "grid"]
    assert body["objectives"]["regression"]["val_rmse"] == "min"
    assert body["default_objectives"]["regression"] == "val_rmse"
    lr = next(hp for hp in body["hyperparameters"] if hp["name"] == "learning_rate")
    assert lr["sampling"] == "log" and lr["min"] < lr["default"] < lr["max"]
    binary = client.get("/api/v1/search-space?task=binary").get_json()
    assert "loss" not in {hp["name"] for hp in binary["hyperparameters"]} and list(binary["objectives"]) == ["binary"]
    assert_error(client.get("/api/v1/search-space?task=clustering"), 422, "task")


def test_every_domain_error_code_has_an_http_status() -> None:
    """A new error class without a row in the table would answer 400 whatever it means."""
    import automl.errors as domain
    from api.errors import ERROR_CODE_TO_HTTP_STATUS

    codes = {cls.code for cls in vars(domain).values()
             if isinstance(cls, type) and issubclass(cls, domain.AutomlError) and cls is not domain.AutomlError}
    assert codes and codes <= set(ERROR_CODE_TO_HTTP_STATUS), codes - set(ERROR_CODE_TO_HTTP_STATUS)
