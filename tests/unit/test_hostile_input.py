"""The malicious-upload corpus (``tests.hostile``) and hostile predict payloads, replayed through the
API in process: each gets a 4xx whose message says what is wrong, nothing is written outside the
dataset's own folder, and the service stays healthy.

Body-size and form-part limits are enforced by the HTTP server: see
``tests/integration/test_limits_under_the_server.py``.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from flask import Flask
from flask.testing import FlaskClient

from api import create_app
from automl.settings import Settings
from tests.conftest import client_for
from tests.hostile import LIMITS, POLYGLOT_PAYLOAD, _zip, class_folders, polyglot_png, uploads
from tests.seed import ROW, seed_team, tiny_model

DATABASE_FILES = ("automl.db", "automl.db-wal", "automl.db-shm", "broker.db", "broker.db-wal", "broker.db-shm")


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Flask:
    root = tmp_path_factory.mktemp("hostile")
    app = create_app(Settings(data_dir=root / "var", **LIMITS))
    seed_team(app.extensions["automl"].store, "default", tiny_model(root / "models"), root)
    return app


@pytest.fixture(scope="module")
def client(app: Flask) -> FlaskClient:
    return client_for(app)


def files(app: Flask) -> set[str]:
    root = app.extensions["automl"].settings.resolved_data_dir
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and p.name not in DATABASE_FILES}


def upload(client: FlaskClient, filename: str, content: bytes) -> Any:
    return client.post("/api/v1/datasets", data={"file": (io.BytesIO(content), filename)},
                       content_type="multipart/form-data")


@pytest.mark.parametrize("item", uploads(), ids=lambda item: item.name)
def test_malicious_upload_is_refused_and_leaves_nothing(app: Flask, client: FlaskClient, item: Any) -> None:
    before = files(app)
    answer = upload(client, item.filename, item.content)
    body = answer.get_json()
    assert answer.status_code == item.status, (answer.status_code, body)
    assert item.needle in body["message"], body["message"]
    assert len(body["message"]) < 2000
    assert files(app) == before  # nothing kept: no dataset folder, no staging file, no stray member
    assert client.get("/healthz").status_code == 200
    assert client.get("/api/v1/datasets").status_code == 200


def test_polyglot_images_are_stored_re_encoded_inside_the_dataset_folder(app: Flask, client: FlaskClient) -> None:
    before = files(app)
    answer = upload(client, "poly.zip", _zip(class_folders(extra=[("1/poly.png", polyglot_png())])))
    assert answer.status_code == 201, answer.get_json()
    dataset_id = answer.get_json()["id"]
    added = files(app) - before
    assert added and all(path.startswith(f"datasets/{dataset_id}/") for path in added)
    stored = [p for p in (app.extensions["automl"].settings.datasets_dir / dataset_id / "images").iterdir()]
    assert len(stored) == 13
    assert not any(POLYGLOT_PAYLOAD in p.read_bytes() or b"PK\x03\x04" in p.read_bytes() for p in stored)


def test_formula_cells_are_stored_as_data(app: Flask, client: FlaskClient) -> None:
    formulas = ["=cmd|' /C calc'!A0", "+1+2", "-3+cmd", "@SUM(1)", "\tx", "plain"]
    rows = "\n".join(f"{i},\"{f}\"" for i, f in enumerate(formulas * 3))
    answer = upload(client, "formulas.csv", f"n,cell\n{rows}\n".encode())
    assert answer.status_code == 201, answer.get_json()
    stored = pd.read_parquet(app.extensions["automl"].settings.datasets_dir / answer.get_json()["id"]
                             / "data.parquet")
    assert stored["cell"].tolist()[:6] == formulas  # verbatim; escaped only where CSV is written (batch scoring)


def test_a_zip_that_is_not_an_image_archive_is_not_unpacked_anywhere(app: Flask, client: FlaskClient) -> None:
    before = files(app)
    nested = io.BytesIO()
    with zipfile.ZipFile(nested, "w") as archive:
        archive.writestr("inner.zip", _zip(class_folders()))
        archive.writestr("readme.txt", "hello")
    answer = upload(client, "nested.zip", nested.getvalue())
    assert answer.status_code == 422 and files(app) == before


PREDICT = "/api/v1/models/default-model/predict"


@pytest.mark.parametrize(("body", "needle"), [
    ('{"instances": [{"size": NaN, "flag": true, "colour name": "red"}]}', "not valid JSON"),
    ('{"instances": [{"size": Infinity, "flag": true, "colour name": "red"}]}', "not valid JSON"),
    ('{"instances": [{"size": 1e999, "flag": true, "colour name": "red"}]}', "not valid JSON"),
    ('{"instances": [{"size": 1e300, "flag": true, "colour name": "red"}]}', "out of range"),
    ('{"instances": "size=1"}', "Not a valid list"),
    ('{"instances": [1, 2]}', "must be an object"),
    ('{"instances": [{"size": {"$gt": 1}, "flag": true, "colour name": "red"}]}', "expected a number"),
    ('{"instances": [{"size": "abc", "flag": "maybe", "colour name": ["red"]}]}', "expected a number"),
    ('{"instances": []}', "between 1 and"),
    ('{"instances": [{}]}', "missing columns"),
    ('{"rows": []}', "instances"),
    ('[' * 5000 + ']' * 5000, "not valid JSON"),
    ('{"instances": [{"size": 1, "flag": true, "colour name": "red"}], "mc_samples": 100000000}', "mc_samples"),
    ("", "not valid JSON"),
])
def test_hostile_predict_payloads_are_4xx_with_a_reason(client: FlaskClient, body: str, needle: str) -> None:
    answer = client.post(PREDICT, data=body, content_type="application/json")
    assert 400 <= answer.status_code < 500, answer.get_data(as_text=True)[:500]
    message = answer.get_json()["message"]
    assert needle in message, message
    assert client.post(PREDICT, json={"instances": [ROW]}).status_code == 200  # still serving


def test_huge_instances_get_a_bounded_answer(client: FlaskClient) -> None:
    wide = {**ROW, **{f"extra{i}": i for i in range(100_000)}}
    answer = client.post(PREDICT, json={"instances": [wide, {"size": None}] * 3})
    assert answer.status_code == 422
    assert len(answer.get_data()) < 20_000 and "unknown columns: extra0, extra1" in answer.get_json()["message"]
    many = client.post(PREDICT, json={"instances": [{"size": "x"}] * 10_000})
    assert many.status_code == 422 and len(many.get_json()["errors"]) <= 50


@pytest.mark.parametrize(("content_type", "status"), [("text/plain", 415), ("application/x-www-form-urlencoded", 415)])
def test_predict_needs_json_or_a_file(client: FlaskClient, content_type: str, status: int) -> None:
    answer = client.post(PREDICT, data="instances=1", content_type=content_type)
    assert answer.status_code == status and "Send JSON" in answer.get_json()["message"]


def test_only_the_services_own_model_store_is_ever_loaded(tmp_path: Path) -> None:
    """No route takes a model file or a pickle: every Keras load goes through the registry with
    safe_mode=True, and nothing in the service unpickles."""
    root = Path(__file__).resolve().parents[2]
    sources = {p: p.read_text() for folder in ("api", "automl", "tasks") for p in (root / folder).rglob("*.py")}
    # (Keras Tuner's tuner.load_model rebuilds a trial from its hyperparameters and the worker's own
    # checkpoint: weights only.)
    loads = {p for p, text in sources.items() if "saving.load_model(" in text or "models.load_model(" in text}
    assert {p.name for p in loads} == {"registry.py"}, loads
    registry = (root / "automl" / "registry.py").read_text()
    calls = re.findall(r"load_model\([^)]*\)", registry)
    assert calls and all("safe_mode=True" in call for call in calls), calls
    for path, text in sources.items():
        for banned in ("pickle.load", "joblib.load", "dill.load", "safe_mode=False", "allow_pickle=True",
                       "enable_unsafe_deserialization"):
            assert banned not in text, (path, banned)


def test_json_bodies_have_their_own_limit_and_files_keep_theirs(tmp_path: Path) -> None:
    app = create_app(Settings(data_dir=tmp_path / "var", max_json_bytes=50_000))
    seed_team(app.extensions["automl"].store, "default", tiny_model(tmp_path / "models"), tmp_path)
    client = client_for(app)
    big = json.dumps({"instances": [ROW] * 2_000}).encode()  # about 100 KB
    refused = client.post(PREDICT, data=big, content_type="application/json")
    assert refused.status_code == 413 and "AUTOML_MAX_JSON_BYTES" in refused.get_json()["message"]
    assert "50,000" in refused.get_json()["message"] and "multipart" in refused.get_json()["message"]
    # Sent without a length (chunked), it is cut off at the limit while it is read.
    chunked = client.post(PREDICT, input_stream=io.BytesIO(big), content_type="application/json",
                          headers={"Transfer-Encoding": "chunked"},
                          environ_overrides={"wsgi.input_terminated": True})  # as granian marks every body
    assert chunked.status_code == 413, chunked.get_data(as_text=True)[:300]
    small = client.post(PREDICT, input_stream=io.BytesIO(json.dumps({"instances": [ROW]}).encode()),
                        content_type="application/json", headers={"Transfer-Encoding": "chunked"},
                        environ_overrides={"wsgi.input_terminated": True})
    assert small.status_code == 200 and len(small.get_json()["predictions"]) == 1  # read whole, not lost
    assert client.post(PREDICT, json={"instances": [ROW] * 100}).status_code == 200  # within the limit
    # The same rows as a CSV file go through: uploads keep AUTOML_MAX_UPLOAD_BYTES.
    rows = "size,flag,colour name\n" + "4.5,true,red\n" * 10_000
    scored = client.post(PREDICT, data={"file": (io.BytesIO(rows.encode()), "rows.csv")},
                         content_type="multipart/form-data")
    assert scored.status_code == 200 and scored.headers["X-Rows-Scored"] == "10000"
