"""A lane whose lease is held by a worker that died is carried on once the lease expires:
the message for it is turned away while the lease is live, and the reaper re-queues it after."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sklearn.datasets import load_iris

from automl.access import Scope
from automl.jobs import JobRequest, create_job
from automl.settings import Settings
from automl.store import Store
from automl.store.records import JobRecord, LaneRecord
from tasks.celery_app import make_celery, send_advance
from tests.integration.conftest import Service, upload_frame

pytestmark = pytest.mark.integration


def test_job_leased_by_a_dead_worker_completes(distributed: Service, pg_url: str, redis_url: str,
                                               tmp_path: Path) -> None:
    dataset = upload_frame(distributed, load_iris(as_frame=True).frame, tmp_path, "iris")

    settings = Settings(database_url=pg_url, broker_url=redis_url, data_dir=tmp_path)
    store = Store(settings.sqlalchemy_url)
    with store.session() as session:
        job = create_job(session, settings, JobRequest(dataset_id=dataset["id"], target="target", tuner="random",
                                                       max_trials=1, max_epochs=3, seed=1),
                         Scope("ops", admin=True))
        session.flush()
        lane = session.get(LaneRecord, (job.id, 0))
        assert lane is not None
        lane.owner = "dead-worker:1:1:x"
        lane.lease_expires_at = datetime.now(UTC) + timedelta(seconds=6)
        job_id = job.id
    send_advance(make_celery(settings), job_id, 0, 0)

    finished = distributed.wait_for_job(job_id, timeout=300)
    assert finished["state"] == "succeeded", (finished["error"], distributed.logs())
    with store.session() as session:
        record = session.get(JobRecord, job_id)
        assert record is not None and record.lease_owner is None
        lane = session.get(LaneRecord, (job_id, 0))
        assert lane is not None and lane.owner is None and lane.done
        assert record.started_at is not None and record.started_at >= record.created_at
    trials = distributed.http.get(f"{distributed.url}/api/v1/jobs/{job_id}/trials", timeout=10).json()["trials"]
    assert len(trials) == 1
