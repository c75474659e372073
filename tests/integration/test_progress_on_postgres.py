"""Progress records on the real PostgreSQL: histories readable mid-trial, leases exclusive."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from api import create_app
from automl.settings import Settings
from automl.store import Store, coordination, searches
from automl.store.records import DatasetRecord, JobRecord
from tasks.reporting import StoreReporter
from tests.conftest import client_for

pytestmark = pytest.mark.integration


@pytest.fixture
def store(pg_url: str) -> Store:
    settings = Settings(database_url=pg_url)
    store = Store(settings.sqlalchemy_url)
    store.migrate()
    return store


def _job(store: Store, job_id: str) -> None:
    with store.session() as session:
        session.add(DatasetRecord(id=f"d{job_id}", name="d", source_format="csv", path="/x", n_rows=1,
                                  n_columns=2, size_bytes=1, columns=[]))
        session.flush()
        session.add(JobRecord(id=job_id, dataset_id=f"d{job_id}", target="t", task="binary",
                              requested_task="auto", tuner="random", objective="val_loss",
                              objective_direction="min", max_trials=3, max_epochs=2, patience=1, seed=0))
        session.flush()
        coordination.create_lanes(session, job_id, 2)


def test_history_is_readable_while_the_trial_runs(store: Store, pg_url: str, tmp_path: Path) -> None:
    _job(store, "live")
    with store.session() as session:
        assert coordination.claim_lane(session, "live", 0, 0, "me", 60) == coordination.ACQUIRED
    reporter = StoreReporter(store, "live", "me", lane=0)
    reporter.trial_started("0", 0, {"num_layers": 2})
    reporter.epoch_ended("0", 0, {"loss": 0.9, "val_loss": 1.0})
    reporter.epoch_ended("0", 1, {"loss": 0.7, "val_loss": 0.8})

    app = create_app(Settings(data_dir=tmp_path, database_url=pg_url, broker_url="redis://127.0.0.1:1/0"),
                     migrate=False)
    try:
        history = client_for(app).get("/api/v1/jobs/live/trials/0/history").get_json()
    finally:  # its warm-up thread would go on reading the schema this test's fixture drops
        app.extensions["automl"].warmup.stop()
    assert history["state"] == "running"
    assert history["epochs"] == [{"epoch": 0, "execution": 0, "loss": 0.9, "val_loss": 1.0},
                                 {"epoch": 1, "execution": 0, "loss": 0.7, "val_loss": 0.8}]
    assert not reporter.should_stop()

    with store.session() as session:  # a duplicate delivery of the same step is turned away
        assert coordination.claim_lane(session, "live", 0, 0, "other", 60) == coordination.BUSY
        assert coordination.running_elsewhere(session, "live", 1) == {"0"}
        assert coordination.running_elsewhere(session, "live", 0) == set()
    with store.session() as session:  # the reaper gave the lane to another worker
        coordination.release_lane(session, "live", 0, "me", advance=False)
        assert coordination.claim_lane(session, "live", 0, 0, "other", 60) == coordination.ACQUIRED
    reporter.epoch_ended("0", 2, {"loss": 0.6})
    assert reporter.should_stop() and reporter.interrupted()
    events = [e.kind for e in _events(store, "live")]
    assert events == ["trial_started", "epoch_ended", "epoch_ended", "epoch_ended"]


def _events(store: Store, job_id: str) -> list[object]:
    with store.session() as session:
        return list(searches.events_after(session, job_id, 0))


def test_cancel_and_budget_stop_every_lane_at_its_next_epoch(store: Store) -> None:
    _job(store, "stop")
    with store.session() as session:
        assert coordination.claim_lane(session, "stop", 1, 0, "me", 60) == coordination.ACQUIRED
    reporter = StoreReporter(store, "stop", "me", lane=1)
    reporter.trial_started("3", 3, {})
    reporter.epoch_ended("3", 0, {"loss": 1.0})
    assert not reporter.should_stop()
    with store.session() as session:
        searches.request_cancel(session, "stop")
    reporter.epoch_ended("3", 1, {"loss": 0.9})
    assert reporter.should_stop() and not reporter.interrupted()  # ends the trial with what it has


def _winners(store: Store, claim: Callable[[Session, str], bool], contenders: int = 8) -> list[str]:
    """Owners that won ``claim`` when all contenders try at the same moment, each in its own transaction."""
    winners: list[str] = []
    barrier = threading.Barrier(contenders)

    def attempt(owner: str) -> None:
        barrier.wait()
        with store.session() as session:
            if claim(session, owner):
                winners.append(owner)

    threads = [threading.Thread(target=attempt, args=(f"w{i}",)) for i in range(contenders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return winners


def test_only_one_of_many_concurrent_workers_claims_a_lane(store: Store) -> None:
    _job(store, "lanes")

    def claim(session: Session, owner: str) -> bool:
        return coordination.claim_lane(session, "lanes", 0, 0, owner, 60) == coordination.ACQUIRED

    assert len(_winners(store, claim)) == 1


def test_only_one_of_many_concurrent_workers_gets_the_lease(store: Store) -> None:
    _job(store, "race")
    assert len(_winners(store, lambda session, owner: coordination.acquire_lease(session, "race", owner, 60))) == 1
