"""Lanes, revival, cancel, failure streaks and progress estimates on the metadata store (SQLite)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from automl.errors import NotReady
from automl.jobs import cancel_job, progress
from automl.store import Store, coordination, searches
from automl.store.records import DatasetRecord, JobRecord, JobState, LaneRecord, TrialRecord


@pytest.fixture
def store(tmp_path: Path) -> Store:
    store = Store(f"sqlite:///{tmp_path / 'meta.db'}")
    store.migrate()
    return store


def _job(store: Store, lanes: int = 2, max_trials: int = 4) -> str:
    with store.session() as session:
        session.add(DatasetRecord(id="d", name="d", source_format="csv", path="/x", n_rows=1, n_columns=2,
                                  size_bytes=1, columns=[]))
        session.flush()
        session.add(JobRecord(id="j", dataset_id="d", target="t", task="binary", requested_task="auto",
                              tuner="random", objective="val_loss", objective_direction="min",
                              max_trials=max_trials, max_epochs=2, patience=1, seed=0, parallel_trials=lanes))
        session.flush()
        coordination.create_lanes(session, "j", lanes)
    return "j"


def _claim(store: Store, lane: int, generation: int, owner: str, ttl: int = 60) -> str:
    with store.session() as session:
        return coordination.claim_lane(session, "j", lane, generation, owner, ttl)


def test_a_step_runs_once_and_old_copies_of_its_message_drop_out(store: Store) -> None:
    _job(store)
    assert _claim(store, 0, 0, "a") == coordination.ACQUIRED
    assert _claim(store, 0, 0, "b") == coordination.BUSY  # a redelivered copy while "a" works
    assert _claim(store, 1, 0, "b") == coordination.ACQUIRED  # the other lane is independent
    with store.session() as session:
        assert searches.get_job(session, "j").state == "running"
        assert coordination.release_lane(session, "j", 0, "a", advance=True) == 1
    assert _claim(store, 0, 0, "c") == coordination.STALE  # the copy arrives after the step finished
    assert _claim(store, 0, 1, "c") == coordination.ACQUIRED


def test_dead_workers_and_lost_messages_are_revived_once(store: Store) -> None:
    _job(store)
    assert _claim(store, 0, 0, "dead", ttl=60) == coordination.ACQUIRED
    with store.session() as session:
        coordination.set_lane_trial(session, "j", 0, "00")
        searches.start_trial(session, "j", "00", 0, {}, lane=0, worker="dead")
        assert coordination.lanes_to_revive(session, requeue_after_s=60) == []  # all fresh
    with store.session() as session:  # the lease runs out (no heartbeat), lane 1's message is lost
        lane0 = session.get(LaneRecord, ("j", 0))
        lane1 = session.get(LaneRecord, ("j", 1))
        assert lane0 is not None and lane1 is not None
        lane0.lease_expires_at = datetime.now(UTC) - timedelta(seconds=1)
        lane1.sent_at = datetime.now(UTC) - timedelta(seconds=120)
    with store.session() as session:  # messages wait in the broker: only the dead worker's lane
        assert coordination.lanes_to_revive(session, requeue_after_s=60, revive_idle=False) == [("j", 0, 0)]
    with store.session() as session:  # the queue is empty: lane 1's message is lost
        assert coordination.lanes_to_revive(session, requeue_after_s=60) == [("j", 1, 0)]
    with store.session() as session:  # a second reaper finds nothing left to do
        assert coordination.lanes_to_revive(session, requeue_after_s=60) == []
        trial = session.get(TrialRecord, ("j", "00"))
        assert trial is not None and trial.state == "interrupted" and trial.attempts == 1
    assert _claim(store, 0, 0, "alive") == coordination.ACQUIRED
    assert _interruptions(store) == [("00", "worker lost")]  # the stream says the attempt was abandoned


def _interruptions(store: Store) -> list[tuple[str, str]]:
    with store.session() as session:
        return [(e.data["trial_id"], e.data["reason"]) for e in searches.events_after(session, "j", 0)
                if e.kind == "trial_interrupted"]


def test_a_trial_restarted_after_its_pool_process_died_is_marked_interrupted_first(store: Store) -> None:
    """The worker's main process lives on and the step's message comes back: the trial, still recorded as
    running, is started again. The stream gets one ``trial_interrupted`` between the two starts."""
    from tasks.reporting import StoreReporter

    _job(store)
    assert _claim(store, 0, 0, "me") == coordination.ACQUIRED
    StoreReporter(store, "j", "me", lane=0).trial_started("1", 1, {})
    StoreReporter(store, "j", "me", lane=0).epoch_ended("1", 0, {"loss": 1.0})
    again = StoreReporter(store, "j", "me", lane=0)  # the new pool process
    again.trial_started("1", 1, {})
    with store.session() as session:
        kinds = [e.kind for e in searches.events_after(session, "j", 0)]
        trial = session.get(TrialRecord, ("j", "1"))
        assert trial is not None and trial.state == "running" and trial.attempts == 2
    assert kinds == ["trial_started", "epoch_ended", "trial_interrupted", "trial_started"]
    assert _interruptions(store) == [("1", "worker lost")]
    again.trial_ended("1", "completed", 0.5, 3, None)
    StoreReporter(store, "j", "me", lane=0).trial_started("2", 2, {})  # a first start: no marker
    assert _interruptions(store) == [("1", "worker lost")]
    StoreReporter(store, "j", "me", lane=0).trial_started("3", 3, {})  # its pool process dies too, twice
    StoreReporter(store, "j", "me", lane=0).trial_ended("3", "failed", None, None, "died 2 times")  # given up
    with store.session() as session:
        assert [e.kind for e in searches.events_after(session, "j", 0) if e.data.get("trial_id") == "3"] == [
            "trial_started", "trial_interrupted", "trial_ended"]


def test_a_hand_back_after_the_reaper_took_the_trial_adds_no_second_marker(store: Store) -> None:
    """A live worker whose lease expired (the machine stalled) hands its trial back after the reaper already
    re-queued it: one ``trial_interrupted``, the reaper's."""
    from tasks.reporting import StoreReporter

    _job(store)
    assert _claim(store, 0, 0, "slow") == coordination.ACQUIRED
    reporter = StoreReporter(store, "j", "slow", lane=0)
    reporter.trial_started("1", 1, {})
    with store.session() as session:
        coordination.set_lane_trial(session, "j", 0, "1")
        lane = session.get(LaneRecord, ("j", 0))
        assert lane is not None
        lane.lease_expires_at = datetime.now(UTC) - timedelta(seconds=1)
    with store.session() as session:
        assert coordination.lanes_to_revive(session, requeue_after_s=60, revive_idle=False) == [("j", 0, 0)]
    reporter.handed_back("1")
    assert _interruptions(store) == [("1", "worker lost")]
    with store.session() as session:
        trial = session.get(TrialRecord, ("j", "1"))
        assert trial is not None and trial.state == "interrupted" and trial.attempts == 1


def test_a_worker_that_hands_its_trial_back_says_why(store: Store) -> None:
    from tasks.reporting import StoreReporter

    _job(store)
    assert _claim(store, 0, 0, "me") == coordination.ACQUIRED
    reporter = StoreReporter(store, "j", "me", lane=0)
    reporter.trial_started("1", 1, {})
    reporter.release_requested = True  # the worker is shutting down
    reporter.handed_back("1")
    assert _interruptions(store) == [("1", "worker shutdown")]
    with store.session() as session:
        trial = session.get(TrialRecord, ("j", "1"))
        assert trial is not None and trial.state == "interrupted" and trial.attempts == 0  # not a crash


def test_finished_lanes_revive_the_final_training_when_its_worker_died(store: Store) -> None:
    _job(store)
    with store.session() as session:
        for lane in (0, 1):
            assert coordination.claim_lane(session, "j", lane, 0, "w", 60) == coordination.ACQUIRED
            coordination.release_lane(session, "j", lane, "w", advance=False, done=True)
        assert coordination.all_lanes_done(session, "j")
        assert coordination.acquire_lease(session, "j", "finisher", 60)
        assert coordination.lanes_to_revive(session, requeue_after_s=0.001) == []
        searches.get_job(session, "j").lease_expires_at = datetime.now(UTC) - timedelta(seconds=1)
    with store.session() as session:
        assert coordination.lanes_to_revive(session, requeue_after_s=60) == [("j", 0, 0)]
        assert searches.get_job(session, "j").lease_owner is None


def test_shutdown_asks_only_that_workers_lanes_to_hand_back(store: Store) -> None:
    _job(store)
    assert _claim(store, 0, 0, "host:10:11:ab") == coordination.ACQUIRED
    assert _claim(store, 1, 0, "host:100:12:cd") == coordination.ACQUIRED
    with store.session() as session:
        assert coordination.request_release(session, "host:10:") == 1
    with store.session() as session:
        flags = {lane.lane: lane.release_requested for lane in coordination.list_lanes(session, "j")}
    assert flags == {0: True, 1: False}


def test_cancelling_a_queued_job_ends_it_at_once(store: Store) -> None:
    _job(store)
    with store.session() as session:
        job = cancel_job(session, "j")
        assert job.state == "cancelled" and job.cancel_requested and job.finished_at is not None
    assert _claim(store, 0, 0, "late-worker") == coordination.FINISHED
    with store.session() as session:
        assert cancel_job(session, "j").state == "cancelled"  # idempotent
        assert [e.kind for e in searches.events_after(session, "j", 0)] == ["job_ended"]


def test_cancelling_a_running_job_asks_its_workers_to_stop(store: Store) -> None:
    _job(store)
    assert _claim(store, 0, 0, "a") == coordination.ACQUIRED
    with store.session() as session:
        job = cancel_job(session, "j")
        assert job.state == "running" and job.cancel_requested
    with store.session() as session:
        job = searches.get_job(session, "j")
        job.state = "succeeded"
    with store.session() as session, pytest.raises(NotReady, match="already succeeded"):
        cancel_job(session, "j")


def test_failure_streak_counts_trailing_failures_by_finishing_time(store: Store) -> None:
    _job(store, max_trials=10)
    now = datetime.now(UTC)
    with store.session() as session:
        for number, state in enumerate(["failed", "completed", "failed", "failed"]):
            session.add(TrialRecord(job_id="j", trial_id=str(number), number=number, state=state,
                                    hyperparameters={}, message=f"boom {number}", attempts=1,
                                    started_at=now, finished_at=now + timedelta(seconds=number)))
        session.add(TrialRecord(job_id="j", trial_id="9", number=9, state="running", hyperparameters={},
                                attempts=1, started_at=now))
    with store.session() as session:
        assert searches.failure_streak(session, "j") == (2, "boom 3")


def test_progress_reports_running_trials_and_a_time_estimate(store: Store) -> None:
    _job(store, lanes=2, max_trials=6)
    now = datetime.now(UTC)
    with store.session() as session:
        job = searches.get_job(session, "j")
        assert progress(session, job)["eta_s"] is None and progress(session, job)["elapsed_s"] is None
        job.state, job.started_at = "running", now - timedelta(seconds=40)
        for number in range(2):
            session.add(TrialRecord(job_id="j", trial_id=str(number), number=number, state="completed",
                                    hyperparameters={}, attempts=1, started_at=now - timedelta(seconds=40),
                                    finished_at=now - timedelta(seconds=30)))
        session.add(TrialRecord(job_id="j", trial_id="2", number=2, state="running", hyperparameters={},
                                attempts=1, lane=1, epochs_done=3, started_at=now - timedelta(seconds=4)))
        session.flush()
        searches.refresh_job_progress(session, "j")
        view = progress(session, job)
    assert view["trials_done"] == 2
    assert [(t["trial_id"], t["epoch"], t["lane"]) for t in view["running_trials"]] == [("2", 3, 1)]
    assert view["elapsed_s"] == pytest.approx(40, abs=2)
    # 3 trials not started, 10 s each on 2 lanes, plus ~6 s left of the running one.
    assert view["eta_s"] == pytest.approx(3 * 10 / 2 + 6, abs=1.5)


def test_a_lane_stops_training_when_another_lane_failed_the_job(store: Store) -> None:
    from tasks.reporting import StoreReporter

    _job(store)
    assert _claim(store, 1, 0, "me") == coordination.ACQUIRED
    reporter = StoreReporter(store, "j", "me", lane=1)
    reporter.trial_started("1", 1, {})
    reporter.epoch_ended("1", 0, {"loss": 1.0})
    assert not reporter.should_stop()
    with store.session() as session:
        searches.finish_job(session, "j", JobState.failed, error="3 trials in a row failed")
    reporter.epoch_ended("1", 1, {"loss": 0.9})
    assert reporter.should_stop() and not reporter.interrupted()


def test_the_reaper_judges_no_lease_right_after_this_machine_was_paused(tmp_path: Path) -> None:
    """A stall of the whole machine pauses every heartbeat with the reaper: a lease that expired meanwhile may
    be a live worker's, so the round right after such a pause judges none; the next one does."""
    from automl.settings import Settings
    from tasks.supervision import Reaper

    reaper = Reaper(app=None, settings=Settings(data_dir=tmp_path, job_lease_s=8, reaper_interval_s=1))
    swept: list[bool] = []
    reaper.sweep = lambda: swept.append(True) or 0  # type: ignore[method-assign]
    assert reaper.sweep_unless_paused(1.05) is True and swept == [True]  # an ordinary round
    assert reaper.sweep_unless_paused(1 + 8 / 4 + 0.5) is False and swept == [True]  # paused past a heartbeat
    assert reaper.sweep_unless_paused(1.0) is True and swept == [True, True]  # leases had their round to renew
