"""Operations on the production shape: /metrics summed over the API server's processes, JSON logs
that carry request ids (API) and job and trial ids (worker), the server's own lines as JSON too,
readiness with every dependency up."""

from __future__ import annotations

import json
import re
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests

from tests.integration.conftest import Service

pytestmark = pytest.mark.integration


def _json_lines(text: str) -> list[dict[str, Any]]:
    lines = []
    for line in text.splitlines():
        if line.startswith("{"):
            lines.append(json.loads(line))
    return lines


def _metric(text: str, name: str, missing: float | None = None, **labels: str) -> float:
    """A sample's value; ``missing``: its value when the series was never created (a counter not yet counted)."""
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    pattern = re.compile(rf"^{re.escape(name)}\{{(.*)\}} (\S+)$", re.MULTILINE)
    for found, value in pattern.findall(text):
        if ",".join(sorted(found.split(","))) == wanted:
            return float(value)
    if missing is not None:
        return missing
    raise AssertionError(f"{name}{{{wanted}}} not in /metrics")


def test_metrics_logs_and_readiness(distributed: Service, penguins_model: str) -> None:
    row = {"island": "Biscoe", "bill_length_mm": 45.0, "bill_depth_mm": 15.0, "flipper_length_mm": 215,
           "body_mass_g": 5000, "sex": "male", "year": 2008}
    before = distributed.http.get(f"{distributed.url}/metrics", timeout=30).text
    counted = _metric(before, "automl_predictions_total", missing=0.0, endpoint="predict")
    def predict(i: int) -> None:  # a connection of its own, several at once: both serving processes serve
        answer = requests.post(f"{distributed.url}/api/v1/models/{penguins_model}/predict",
                               json={"instances": [row, row]}, timeout=30,
                               headers={**distributed.http.headers, "X-Request-ID": f"ops-test-{i}"})
        assert answer.status_code == 200 and answer.headers["X-Request-ID"] == f"ops-test-{i}"

    with ThreadPoolExecutor(6) as pool:
        list(pool.map(predict, range(12)))
    served_by = {line["pid"] for line in _json_lines((distributed.log_dir / "api.log").read_text())
                 if str(line.get("request_id", "")).startswith("ops-test-")}
    assert len(served_by) == 2, served_by

    text = distributed.http.get(f"{distributed.url}/metrics", timeout=30).text  # whichever process answers
    assert _metric(text, "automl_predictions_total", endpoint="predict") == counted + 24
    assert penguins_model not in text  # the open endpoint names no model
    assert _metric(text, "automl_http_requests_total", method="POST", route="/api/v1/models/<string:model_id>/predict",
                   status="200") >= 12
    assert _metric(text, "automl_jobs", state="succeeded") >= 1
    assert re.search(r"^automl_queue_depth \d+\.0$", text, re.MULTILINE)  # Redis answers
    assert re.search(r"^automl_trial_duration_seconds_count [1-9]", text, re.MULTILINE)

    ready = distributed.http.get(f"{distributed.url}/readyz", timeout=30)
    assert ready.status_code == 200 and ready.json()["broker"] is True and ready.json()["database"] is True

    api_lines = _json_lines((distributed.log_dir / "api.log").read_text())
    started = [line for line in api_lines if line.get("logger") == "_granian" and "worker" in line["message"]]
    assert len(started) >= 2, api_lines[:5]  # the server's own lines ("Started worker-1") are JSON as well
    served = [line for line in api_lines if line.get("request_id") == "ops-test-3"]
    assert served and served[-1]["status"] == 200 and served[-1]["route"].endswith("/predict")
    worker_lines = _json_lines((distributed.log_dir / "worker.log").read_text())
    job_id = distributed.http.get(f"{distributed.url}/api/v1/models/{penguins_model}", timeout=10).json()["job_id"]
    of_job = [line for line in worker_lines if line.get("job_id") == job_id]
    assert of_job and any(line.get("trial_id") for line in of_job), worker_lines[-5:]
