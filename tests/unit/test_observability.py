"""Request ids, JSON logs, /metrics and readiness, through the real app (SQLite store)."""

from __future__ import annotations

import io
import json
import logging
import os
from datetime import timedelta
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from api import create_app, metrics
from automl import observability
from automl.observability import configure_logging
from automl.settings import Settings
from automl.store.records import TrialRecord, utcnow
from tests.conftest import add_job, client_for

DEAD_BROKER = "redis://127.0.0.1:1/0"


@pytest.fixture
def client(tmp_path: Path) -> FlaskClient:
    app = create_app(Settings(data_dir=tmp_path / "var", broker_url=DEAD_BROKER))
    with app.extensions["automl"].store.session() as session:
        add_job(session)
        now = utcnow()
        session.add(TrialRecord(job_id="j", trial_id="0", number=0, state="completed", hyperparameters={},
                                started_at=now - timedelta(seconds=20), finished_at=now))
    return client_for(app)


def test_request_ids_are_echoed_or_made(client: FlaskClient) -> None:
    assert client.get("/healthz", headers={"X-Request-ID": "abc-123"}).headers["X-Request-ID"] == "abc-123"
    made = client.get("/healthz", headers={"X-Request-ID": "bad id; with spaces"}).headers["X-Request-ID"]
    assert len(made) == 32 and made.isalnum()
    more = {client.get("/healthz").headers["X-Request-ID"] for _ in range(50)}
    assert len(more | {made}) == 51 and all(len(i) == 32 and i.isalnum() for i in more)


def test_a_forked_process_makes_its_own_request_ids() -> None:
    """The API server forks its workers: ids made in two processes must not collide (each draws its own prefix)."""
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # the child writes three of its ids and leaves at once
        os.write(write, json.dumps([metrics._new_request_id() for _ in range(3)]).encode())
        os._exit(0)
    os.close(write)
    os.waitpid(child, 0)
    with os.fdopen(read) as pipe:
        theirs = json.loads(pipe.read())
    ours = [metrics._new_request_id() for _ in range(3)]
    assert not set(theirs) & set(ours)
    assert len({i[:16] for i in theirs}) == 1 and theirs[0][:16] != ours[0][:16]


def test_metrics_cover_requests_jobs_and_trials(client: FlaskClient) -> None:
    client.get("/healthz")
    client.get("/no/such/route")
    client.get("/api/v1/jobs/j")
    text = client.get("/metrics").get_data(as_text=True)
    assert 'automl_http_requests_total{method="GET",route="/healthz",status="200"}' in text
    assert 'automl_http_requests_total{method="GET",route="unmatched",status="404"}' in text
    assert ('automl_http_request_duration_seconds_bucket{le="0.005",method="GET",'
            'route="/api/v1/jobs/<string:job_id>",status="200"}') in text
    healthz = 'automl_http_requests_total{method="GET",route="/healthz",status="200"} '

    def healthz_count() -> float:
        text = client.get("/metrics").get_data(as_text=True)
        return float(text.split(healthz, 1)[1].split()[0])

    before = healthz_count()  # counters are the process's: other tests' requests are in them too
    client.get("/healthz")  # a label set seen before is counted again (its series is kept, not looked up)
    client.get("/healthz")
    assert healthz_count() == before + 2
    assert 'automl_jobs{state="queued"} 1.0' in text and 'automl_jobs{state="running"} 0.0' in text
    assert 'automl_trial_duration_seconds_bucket{le="15.0"} 0.0' in text  # the one trial took 20 s
    assert 'automl_trial_duration_seconds_bucket{le="30.0"} 1.0' in text
    assert 'automl_trial_duration_seconds_count 1.0' in text
    assert "automl_queue_depth" not in text  # the broker is down: no made-up depth
    assert "automl_busy_workers 0.0" in text


def test_readiness_needs_the_broker(client: FlaskClient) -> None:
    response = client.get("/readyz")
    body = response.get_json()
    assert response.status_code == 503 and body["broker"] is False and body["database"] is True
    assert "broker" in body.get("message", "") or not body["listed"]


def test_json_logs_carry_the_context_ids() -> None:
    configure_logging("INFO", "json")
    handler = next(h for h in logging.getLogger().handlers if getattr(h, "automl", False))
    assert isinstance(handler, logging.StreamHandler)
    sink = io.StringIO()
    previous = handler.setStream(sink)
    tokens = [observability.job_id.set("job1"), observability.trial_id.set("7")]
    try:
        logging.getLogger("automl.test").info("trial %s ended", "7", extra={"score": 0.5})
    finally:
        observability.trial_id.reset(tokens[1])
        observability.job_id.reset(tokens[0])
        handler.setStream(previous)
        configure_logging("INFO", "text")
    line = json.loads(sink.getvalue().strip().splitlines()[-1])
    assert line["message"] == "trial 7 ended" and line["level"] == "INFO" and line["logger"] == "automl.test"
    assert line["job_id"] == "job1" and line["trial_id"] == "7" and line["score"] == 0.5 and "time" in line
