from __future__ import annotations

import time
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from automl.store import Store, coordination, searches
from automl.store.records import Base
from tests.conftest import add_job


@pytest.fixture
def store(tmp_path: Path) -> Store:
    store = Store(f"sqlite:///{tmp_path / 'meta.db'}")
    store.migrate()
    return store


def test_migrations_match_the_records(store: Store) -> None:
    with store.engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert diff == []


def _job(store: Store) -> str:
    with store.session() as session:
        return add_job(session)


def test_lease_excludes_a_second_owner_until_expiry(store: Store) -> None:
    job_id = _job(store)
    with store.session() as session:
        assert coordination.acquire_lease(session, job_id, "a", ttl_s=1)
    with store.session() as session:
        assert not coordination.acquire_lease(session, job_id, "b", ttl_s=1)
        assert coordination.renew_lease(session, job_id, "a", ttl_s=1)
        assert not coordination.renew_lease(session, job_id, "b", ttl_s=1)
    deadline = time.monotonic() + 5
    acquired = False
    while time.monotonic() < deadline and not acquired:
        with store.session() as session:
            acquired = coordination.acquire_lease(session, job_id, "b", ttl_s=60)
        time.sleep(0.1)
    assert acquired
    with store.session() as session:
        assert not coordination.renew_lease(session, job_id, "a", ttl_s=1)


def test_progress_is_recomputed_from_trials(store: Store) -> None:
    job_id = _job(store)
    with store.session() as session:
        searches.start_trial(session, job_id, "0", 0, {"units": 8})
        searches.record_epoch(session, job_id, "0", 0, {"loss": 1.0})
        searches.finish_trial(session, job_id, "0", "completed", 0.5, 0, None)
        searches.start_trial(session, job_id, "1", 1, {"units": 16})
        searches.finish_trial(session, job_id, "1", "completed", 0.25, 3, None)
        searches.start_trial(session, job_id, "2", 2, {"units": 32})
        searches.finish_trial(session, job_id, "2", "failed", None, None, "boom")
    with store.session() as session:
        job = searches.get_job(session, job_id)
        assert (job.trials_done, job.best_score, job.best_trial_id) == (3, 0.25, "1")
        # A retried trial starts again from epoch 0: its old epochs go.
        searches.start_trial(session, job_id, "0", 0, {"units": 8})
        assert searches.trial_history(session, job_id, "0") == []
