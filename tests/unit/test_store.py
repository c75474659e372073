from __future__ import annotations

import json
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


def test_best_trial_and_leaderboard_give_ties_to_the_earlier_trial(store: Store) -> None:
    """The job's best trial (and so its interim model) and the leaderboard rank as the final model does:
    scores within the tie tolerance of the best go to the trial that started first."""
    job_id = _job(store)
    scores = {"0": 0.30, "1": 0.0004, "2": None, "3": 0.0000001, "4": 0.0009, "5": 0.002}
    with store.session() as session:
        searches.start_trial(session, job_id, "7", 7, {"units": 7})
        searches.finish_trial(session, job_id, "7", "completed", None, None, None)  # no finite score to rank by
        assert searches.get_job(session, job_id).best_trial_id is None
        for number, (trial_id, score) in enumerate(scores.items()):
            searches.start_trial(session, job_id, trial_id, number, {"units": number})
            state = "failed" if score is None else "completed"
            searches.finish_trial(session, job_id, trial_id, state, score, 0, None)
        searches.start_trial(session, job_id, "6", 6, {"units": 6})  # still running
    with store.session() as session:
        job = searches.get_job(session, job_id)
        # "3" has the lowest loss, but "1" started earlier and is within 0.001 of it; "4" too, but later.
        assert (job.best_trial_id, job.best_score) == ("1", 0.0004)
        assert [t.trial_id for t in searches.leaderboard(session, job)] == ["1", "3", "4", "5", "0", "2", "6", "7"]
        job.objective_direction, job.objective = "max", "val_accuracy"
        assert [t.trial_id for t in searches.leaderboard(session, job)][:2] == ["0", "5"]


def test_migration_0009_folds_the_option_columns_into_options_and_back(tmp_path: Path) -> None:
    from alembic import command
    from sqlalchemy import create_engine, text

    from automl.store.db import alembic_config

    url = f"sqlite:///{tmp_path / 'old.db'}"
    config = alembic_config(url)
    command.upgrade(config, "0008")
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text(
            "INSERT INTO datasets (id, name, kind, source_format, path, n_rows, n_columns, size_bytes, columns, "
            "created_at) VALUES ('d', 'd', 'tabular', 'csv', '/d', 10, 2, 1, '[]', '2026-11-30 00:00:00')"))
        connection.execute(text(
            "INSERT INTO jobs (id, dataset_id, target, task, requested_task, tuner, objective, objective_direction, "
            "max_trials, max_epochs, patience, seed, state, trials_done, attempts, created_at, executions_per_trial, "
            "target_score, refit, ensemble_size, mixed_precision) VALUES ('old', 'd', 'y', 'binary', 'auto', 'random', "
            "'val_loss', 'min', 3, 5, 2, 0, 'succeeded', 3, 1, '2026-11-30 00:00:00', 2, 0.8, true, 1, false)"))
        connection.execute(text("INSERT INTO trials (job_id, trial_id, number, state, hyperparameters, epochs_done, "
                                "attempts, started_at) VALUES ('old', 't0', 0, 'completed', '{}', 3, 1, "
                                "'2026-11-30 00:00:00')"))
        connection.execute(text("INSERT INTO job_lanes (job_id, lane, generation, done, release_requested, sent_at) "
                                "VALUES ('old', 0, 0, true, false, '2026-11-30 00:00:00')"))  # ON DELETE CASCADE
    children = "SELECT (SELECT count(*) FROM trials), (SELECT count(*) FROM job_lanes)"
    command.upgrade(config, "head")
    with engine.connect() as connection:
        (stored,) = connection.execute(text("SELECT options FROM jobs WHERE id = 'old'")).one()
        # Rebuilding the jobs table left the rows that reference it alone.
        assert tuple(connection.execute(text(children)).one()) == (1, 1)
    assert json.loads(stored) == {"executions_per_trial": 2, "target_score": 0.8, "refit": True, "ensemble_size": 1,
                                  "mixed_precision": False}
    command.downgrade(config, "0008")
    with engine.connect() as connection:
        row = connection.execute(text("SELECT executions_per_trial, target_score, refit, ensemble_size, "
                                      "mixed_precision FROM jobs WHERE id = 'old'")).one()
    assert tuple(row) == (2, 0.8, 1, 1, 0)
    engine.dispose()
