"""Serving through the API server on PostgreSQL: deployed models warm at start, and batch scoring of
CSV and Parquet uploads up to a million rows."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import requests

from tests.conftest import SAME_MODEL
from tests.integration.conftest import Service, _spawn, _stop, free_port, wait_until

pytestmark = pytest.mark.integration

FEATURES = ["island", "bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g", "sex", "year"]


@pytest.fixture(scope="module")
def penguins() -> pd.DataFrame:
    from palmerpenguins import load_penguins

    frame = load_penguins()
    frame.insert(0, "customer", [f"=cmd|' /C calc'!A{i}" if i % 50 == 0 else f"c{i}" for i in range(len(frame))])
    return frame


def _json_rows(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [{k: (None if pd.isna(v) else (v.item() if hasattr(v, "item") else v)) for k, v in row.items()}
            for row in frame[FEATURES].to_dict("records")]


def _post_file(service: Service, model_id: str, route: str, name: str, content: bytes,
               accept: str = "text/csv", **form: str) -> requests.Response:
    return service.http.post(f"{service.url}/api/v1/models/{model_id}/{route}", files={"file": (name, content)},
                             data=form, headers={"Accept": accept}, timeout=600)


def test_deployed_models_are_loaded_before_a_new_serving_process_is_ready(
        distributed: Service, penguins_model: str, penguins: pd.DataFrame, tmp_path: Path) -> None:
    url = f"{distributed.url}/api/v1/models"
    assert distributed.http.post(f"{url}/{'f' * 32}/deploy", timeout=10).status_code == 404
    deployed = distributed.http.post(f"{url}/{penguins_model}/deploy", timeout=120)
    assert deployed.status_code == 200 and deployed.json()["deployed"] is True
    assert [m["id"] for m in distributed.http.get(f"{url}?deployed=true", timeout=10).json()] == [penguins_model]

    assert distributed.env is not None
    port = free_port()
    second = _spawn(["serve", "--port", str(port), "--workers", "1"], distributed.env, tmp_path / "api2.log")
    fresh = f"http://127.0.0.1:{port}"
    try:
        def probe() -> dict[str, Any] | None:
            if second.poll() is not None:
                raise AssertionError((tmp_path / "api2.log").read_text())
            try:
                answer = distributed.http.get(f"{fresh}/readyz", timeout=5)
            except requests.RequestException:
                return None
            assert answer.status_code in (200, 503), answer.text
            body: dict[str, Any] = answer.json()
            assert (answer.status_code == 200) == (body["status"] == "ready")
            if answer.status_code == 503:
                assert body["loaded"] < max(1, body["deployed_models"]), body  # not ready only while loading
            return body if answer.status_code == 200 else None

        ready = wait_until(probe, 180, "the new serving process to be ready")
        assert ready["deployed_models"] == 1 and ready["loaded"] == 1 and ready["failed"] == 0
        assert ready["database"] is True
        rows = _json_rows(penguins.head(3))
        answer = distributed.http.post(f"{fresh}/api/v1/models/{penguins_model}/predict", json={"instances": rows},
                                               timeout=30)
        assert answer.status_code == 200 and len(answer.json()["predictions"]) == 3
    finally:
        _stop([second])
        undeployed = distributed.http.delete(f"{url}/{penguins_model}/deploy", timeout=10)
    assert undeployed.status_code == 200 and undeployed.json()["deployed"] is False
    assert distributed.http.get(f"{url}?deployed=true", timeout=10).json() == []


def test_batch_scoring_csv_and_parquet(distributed: Service, penguins_model: str, penguins: pd.DataFrame) -> None:
    expected = distributed.http.post(f"{distributed.url}/api/v1/models/{penguins_model}/predict_proba",
                                     json={"instances": _json_rows(penguins)}, timeout=60).json()
    labels = distributed.http.post(f"{distributed.url}/api/v1/models/{penguins_model}/predict",
                                   json={"instances": _json_rows(penguins)}, timeout=60).json()["predictions"]

    as_csv = _post_file(distributed, penguins_model, "predict_proba", "rows.csv",
                        penguins.to_csv(index=False).encode(), passthrough="customer")
    assert as_csv.status_code == 200 and as_csv.headers["Content-Type"].startswith("text/csv"), as_csv.text
    assert as_csv.headers["X-Rows-Scored"] == str(len(penguins))
    table = pd.read_csv(io.StringIO(as_csv.text), dtype={"customer": str})
    assert list(table.columns) == ["customer", *expected["classes"]]
    assert table["customer"][0] == "'=cmd|' /C calc'!A0" and table["customer"][1] == "c1"  # formula escaped
    np.testing.assert_allclose(table[expected["classes"]].to_numpy(), np.array(expected["probabilities"]),
                               **SAME_MODEL)

    as_json = _post_file(distributed, penguins_model, "predict", "rows.parquet",
                         penguins.to_parquet(index=False), accept="application/json")
    assert as_json.status_code == 200 and as_json.json() == {"predictions": labels}

    broken = penguins.astype({"body_mass_g": object})
    broken.loc[200, "body_mass_g"] = "heavy"
    refused = _post_file(distributed, penguins_model, "predict", "rows.csv", broken.to_csv(index=False).encode())
    assert refused.status_code == 422 and "row 201, column body_mass_g" in refused.json()["message"]
    missing = _post_file(distributed, penguins_model, "predict", "rows.csv",
                         penguins.drop(columns=["island"]).to_csv(index=False).encode())
    assert missing.status_code == 422 and "island" in missing.json()["message"]
    unacceptable = _post_file(distributed, penguins_model, "predict", "rows.csv", b"a\n1\n", accept="image/png")
    assert unacceptable.status_code == 406


def test_a_million_rows_in_one_upload(distributed: Service, penguins_model: str, penguins: pd.DataFrame,
                                      tmp_path: Path) -> None:
    rows = 1_000_000
    big = pd.concat([penguins[FEATURES]] * (rows // len(penguins) + 1), ignore_index=True).iloc[:rows]
    big.insert(0, "n", np.arange(rows))
    path = tmp_path / "million.csv"
    big.to_csv(path, index=False)
    with path.open("rb") as handle:
        answer = distributed.http.post(f"{distributed.url}/api/v1/models/{penguins_model}/predict",
                                       files={"file": ("million.csv", handle)}, data={"passthrough": "n"},
                                       headers={"Accept": "text/csv"}, timeout=600, stream=True)
        assert answer.status_code == 200, answer.text
        out = tmp_path / "scored.csv"
        with out.open("wb") as sink:
            for block in answer.iter_content(1 << 20):
                sink.write(block)
    scored = pd.read_csv(out)
    assert len(scored) == rows and list(scored.columns) == ["n", "prediction"]
    assert (scored["n"].to_numpy() == np.arange(rows)).all()  # every row, in order
    first = distributed.http.post(f"{distributed.url}/api/v1/models/{penguins_model}/predict",
                                  json={"instances": _json_rows(big.iloc[-len(penguins):])}, timeout=60)
    assert list(scored["prediction"].iloc[-len(penguins):]) == first.json()["predictions"]
    assert distributed.http.get(f"{distributed.url}/readyz", timeout=10).json()["status"] == "ready"
