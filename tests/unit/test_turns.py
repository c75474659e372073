"""Teams take turns for workers: a step yields to another team that has a lane waiting and was served
less recently (or never); the team served longest ago never yields, and a lost message (stale
``sent_at``), a running lane, or a team that is being served right now never makes anyone wait."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from automl.settings import Settings
from automl.store import Store, coordination
from automl.store.records import DatasetRecord, JobRecord, LaneRecord, TrialRecord, utcnow

FRESH_S = 120


@pytest.fixture
def store(tmp_path: Path) -> Store:
    settings = Settings(data_dir=tmp_path / "var")
    settings.ensure_dirs()
    built = Store(settings.sqlalchemy_url)
    built.migrate()
    with built.session() as session:
        session.add(DatasetRecord(id="d", name="d", source_format="csv", path="x", n_rows=1, n_columns=1,
                                  size_bytes=1, columns=[]))
    return built


def _job(store: Store, job_id: str, team: str, served_ago_s: float | None, lane_sent_ago_s: float = 1,
         owner: str | None = None) -> None:
    now = utcnow()
    with store.session() as session:
        session.add(JobRecord(id=job_id, team=team, dataset_id="d", target="y", task="binary", requested_task="auto",
                              tuner="random", objective="val_loss", objective_direction="min", max_trials=9,
                              max_epochs=2, patience=1, seed=0, state="running" if served_ago_s else "queued"))
        session.flush()
        session.add(LaneRecord(job_id=job_id, lane=0, generation=1, sent_at=now - timedelta(seconds=lane_sent_ago_s),
                               owner=owner, lease_expires_at=now + timedelta(seconds=60) if owner else None))
        if served_ago_s is not None:
            session.add(TrialRecord(job_id=job_id, trial_id="t0", number=0, hyperparameters={},
                                    started_at=now - timedelta(seconds=served_ago_s)))


def yields(store: Store, team: str) -> bool:
    with store.session() as session:
        return coordination.should_yield(session, team, FRESH_S)


def test_one_team_never_yields(store: Store) -> None:
    _job(store, "a1", "big", served_ago_s=5)
    _job(store, "a2", "big", served_ago_s=50)
    assert not yields(store, "big")


def test_a_team_never_served_goes_first_and_then_turns_alternate(store: Store) -> None:
    _job(store, "a1", "big", served_ago_s=5)
    _job(store, "a2", "big", served_ago_s=10)
    _job(store, "b1", "small", served_ago_s=None)
    assert yields(store, "big") and not yields(store, "small")
    with store.session() as session:  # small's first trial starts now: big was served longer ago
        session.add(TrialRecord(job_id="b1", trial_id="t0", number=0, hyperparameters={}, started_at=utcnow()))
    assert not yields(store, "big") and yields(store, "small")  # now big was served longer ago: its turn
    # big's next trial starts: small was served longer ago, big yields again
    with store.session() as session:
        session.add(TrialRecord(job_id="a1", trial_id="t1", number=1, hyperparameters={},
                                started_at=utcnow() + timedelta(seconds=1)))
    assert yields(store, "big") and not yields(store, "small")


def test_a_lost_message_or_a_running_lane_makes_nobody_wait(store: Store) -> None:
    _job(store, "a1", "big", served_ago_s=5)
    _job(store, "b1", "small", served_ago_s=None, lane_sent_ago_s=FRESH_S + 10)  # its message is long gone
    assert not yields(store, "big")
    _job(store, "c1", "third", served_ago_s=100, owner="worker-2")  # running now: not waiting
    assert not yields(store, "big")


def test_a_team_served_right_now_is_not_waited_for(store: Store) -> None:
    """Its other lane may only wait for the running one (Hyperband's idle lanes): a worker must not idle."""
    _job(store, "a1", "big", served_ago_s=5)
    _job(store, "u1", "other", served_ago_s=60)  # a waiting lane...
    with store.session() as session:  # ...and a running one in the same team
        session.add(LaneRecord(job_id="u1", lane=1, generation=1, sent_at=utcnow(), owner="worker-2",
                               lease_expires_at=utcnow() + timedelta(seconds=60)))
    assert not yields(store, "big")
    with store.session() as session:  # its running step ends: now it waits, and was served longer ago
        lane = session.get(LaneRecord, ("u1", 1))
        assert lane is not None
        lane.owner, lane.lease_expires_at = None, None
    assert yields(store, "big")
