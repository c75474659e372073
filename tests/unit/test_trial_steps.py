"""Trial steps with real Keras Tuner and TensorFlow: failing trials, crashed trials, the failure streak,
and the Celery settings that long GPU work needs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sklearn.datasets import load_iris

from automl.datasets.ingest import ingest_file
from automl.errors import SearchFailed
from automl.hypermodels.mlp import TabularMLP
from automl.search.reporter import Claims, NullReporter
from automl.search.runner import run_trial_step
from automl.search.spec import SearchSpec
from automl.settings import Settings
from automl.store import Store, searches
from automl.store.records import DatasetRecord, JobRecord, TrialRecord
from tasks.celery_app import make_celery


class Recorder(NullReporter):
    def __init__(self, attempts: dict[str, int] | None = None) -> None:
        self.ended: list[tuple[str, str, str | None]] = []
        self.started: list[str] = []
        self.attempts = attempts or {}

    def trial_started(self, trial_id: str, number: int, hyperparameters: dict[str, Any]) -> None:
        self.started.append(trial_id)

    def trial_ended(self, trial_id: str, state: str, score: float | None, best_epoch: int | None,
                    message: str | None) -> None:
        self.ended.append((trial_id, state, message))

    def exclusive(self) -> Any:
        from contextlib import nullcontext

        return nullcontext(Claims(attempts=dict(self.attempts)))


def _spec(tmp_path: Path) -> SearchSpec:
    csv = tmp_path / "iris.csv"
    load_iris(as_frame=True).frame.to_csv(csv, index=False)
    ingested = ingest_file(csv, "iris.csv", tmp_path / "datasets")
    return SearchSpec(
        job_id="j", dataset_path=ingested.path, column_types={c["name"]: c["type"] for c in ingested.columns},
        targets=["target"], task="multiclass", classes=[0, 1, 2], tuner="random", objective="val_loss",
        direction="min", max_trials=3, max_epochs=2, patience=2, seed=1, work_dir=tmp_path / "job",
        overrides={"num_layers": {"values": [1, 2, 3]}, "units": {"fixed": 16}, "batch_size": {"fixed": 32}},
    )


def test_a_trial_that_raises_is_failed_with_its_error_and_the_search_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fit = TabularMLP.fit
    calls: list[int] = []

    def fit_or_fail(self: TabularMLP, hp: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(hp.values["num_layers"])
        if len(calls) == 2:  # the second trial's combination turns out not to work
            raise ValueError("this combination does not fit")
        return fit(self, hp, *args, **kwargs)

    monkeypatch.setattr(TabularMLP, "fit", fit_or_fail)
    spec = _spec(tmp_path)
    reporter = Recorder()
    outcomes = [run_trial_step(spec, reporter).outcome for _ in range(4)]
    assert outcomes == ["trial_ended", "trial_ended", "trial_ended", "exhausted"]
    assert [(trial_id, state) for trial_id, state, _ in reporter.ended] == [
        ("0", "completed"), ("1", "failed"), ("2", "completed")]
    assert "ValueError: this combination does not fit" in (reporter.ended[1][2] or "")


def test_an_unfinished_trial_is_rerun_first_and_given_up_after_repeated_crashes(tmp_path: Path) -> None:
    spec = _spec(tmp_path)
    first = Recorder()
    run_trial_step(spec, first)
    # A worker dies mid-trial: the trial was created (and saved as ongoing) but never ended.
    import keras_tuner as kt

    from automl.search.data import prepare
    from automl.search.runner import build_tuner

    tuner = build_tuner(spec, prepare(spec), NullReporter())
    orphan = tuner.oracle.create_trial("lane0")
    assert orphan.status == kt.engine.trial.TrialStatus.RUNNING
    tuner.save()

    rerun = Recorder(attempts={orphan.trial_id: 1})
    run_trial_step(spec, rerun)
    assert rerun.started == [orphan.trial_id]  # the interrupted trial comes back first, with its id

    tuner = build_tuner(spec, prepare(spec), NullReporter())
    crashed = tuner.oracle.create_trial("lane0")
    tuner.save()
    given_up = Recorder(attempts={crashed.trial_id: 2})
    run_trial_step(spec, given_up, max_attempts=2)
    assert given_up.ended[0][:2] == (crashed.trial_id, "failed")
    assert "died 2 times" in (given_up.ended[0][2] or "")
    assert given_up.started == []  # max_trials (3) are used up, so nothing new starts
    assert sorted(tuner.oracle.trials) == sorted(build_tuner(spec, prepare(spec), NullReporter()).oracle.trials)


def test_a_trial_step_keeps_the_imports_out_of_each_collection_and_later_models_are_still_freed(
    tmp_path: Path,
) -> None:
    """Keras and Keras Tuner run a full garbage collection three times a trial step; the libraries as
    imported are frozen out of them once, while what a step builds stays collectable."""
    import gc
    import weakref

    import keras

    run_trial_step(_spec(tmp_path), Recorder())
    assert gc.get_freeze_count() > 100_000  # TensorFlow, Keras and Keras Tuner's objects, at least
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])  # layers and model refer to each other
    gone = weakref.ref(model)
    del model
    keras.backend.clear_session()
    gc.collect()
    assert gone() is None


def test_a_streak_of_failed_trials_fails_the_job_naming_the_last_error(tmp_path: Path) -> None:
    from datetime import UTC, datetime, timedelta

    from tasks.search import _stop_reason

    store = Store(f"sqlite:///{tmp_path / 'meta.db'}")
    store.migrate()
    settings = Settings(data_dir=tmp_path, max_consecutive_failed_trials=3)
    spec = _spec(tmp_path)
    now = datetime.now(UTC)
    with store.session() as session:
        session.add(DatasetRecord(id="d", name="d", source_format="csv", path="/x", n_rows=1, n_columns=2,
                                  size_bytes=1, columns=[]))
        session.flush()
        session.add(JobRecord(id="j", dataset_id="d", target="t", task="multiclass", requested_task="auto",
                              tuner="random", objective="val_loss", objective_direction="min", max_trials=10,
                              max_epochs=2, patience=1, seed=0))
        session.flush()
        for number in range(2):
            session.add(TrialRecord(job_id="j", trial_id=str(number), number=number, state="failed",
                                    hyperparameters={}, attempts=1, message=f"Traceback\nValueError: bad {number}",
                                    started_at=now, finished_at=now + timedelta(seconds=number)))
    with store.session() as session:
        assert _stop_reason(session, searches.get_job(session, "j"), spec, settings) is None
        session.add(TrialRecord(job_id="j", trial_id="2", number=2, state="failed", hyperparameters={}, attempts=1,
                                message="Traceback\nResourceExhaustedError: OOM", started_at=now,
                                finished_at=now + timedelta(seconds=5)))
    with store.session() as session, pytest.raises(SearchFailed, match=r"3 trials in a row failed.*OOM"):
        _stop_reason(session, searches.get_job(session, "j"), spec, settings)


def test_celery_settings_fit_long_gpu_work() -> None:
    settings = Settings(broker_url="redis://127.0.0.1:6379/0", broker_visibility_timeout_s=7200)
    conf = make_celery(settings).conf
    assert conf.task_acks_late and conf.task_reject_on_worker_lost
    assert conf.worker_prefetch_multiplier == 1
    assert conf.task_soft_time_limit < conf.task_time_limit < 7200
    assert conf.broker_transport_options["visibility_timeout"] == 7200
    # A pool process serves trials until its memory passes the limit: no TensorFlow import per trial.
    assert conf.worker_max_tasks_per_child is None and conf.worker_max_memory_per_child == 2048 * 1024


def test_embedded_broker_is_polled_four_times_a_second(tmp_path: Path) -> None:
    """Each trial step waits for its own next message; at kombu's default (1 s) that was half a
    second per step on average. Measured from the worker's side: the connection's transport."""
    from tasks.celery_app import EMBEDDED_POLL_S

    app = make_celery(Settings(data_dir=tmp_path))
    with app.connection_for_read() as connection:
        assert connection.transport.polling_interval == EMBEDDED_POLL_S == 0.25


def test_embedded_broker_file_is_in_write_ahead_log_mode(tmp_path: Path) -> None:
    """One open reader must not block the worker that queues the next step (rollback-journal mode did)."""
    import sqlite3

    make_celery(Settings(data_dir=tmp_path))
    broker = tmp_path / "broker.db"
    connection = sqlite3.connect(broker)
    try:
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        reader = sqlite3.connect(broker)
        reader.execute("CREATE TABLE IF NOT EXISTS t (x INTEGER)")
        reader.commit()
        reader.execute("BEGIN")
        reader.execute("SELECT * FROM t").fetchall()  # a read transaction stays open
        connection.execute("INSERT INTO t VALUES (1)")  # and a writer goes through at once
        connection.commit()
        reader.close()
    finally:
        connection.close()


def _prepare_at_once(spec: SearchSpec, lanes: int) -> tuple[list[Any], list[BaseException]]:
    """``prepare(spec)`` on ``lanes`` threads released together; (what each returned, what any raised)."""
    import threading

    from automl.search.data import prepare

    start = threading.Barrier(lanes)
    results: list[Any] = []
    errors: list[BaseException] = []

    def lane() -> None:
        start.wait()
        try:
            results.append(prepare(spec))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=lane) for _ in range(lanes)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results, errors


def test_lanes_preparing_a_job_at_the_same_moment_share_one_whole_split(tmp_path: Path) -> None:
    # Two lanes of a new job both find no split file and write one; each must end with the job's
    # split, and no lane may fail on the other's rename (CI saw FileNotFoundError from this race).
    import numpy as np

    from automl.search.data import SPLIT_FILE

    spec = _spec(tmp_path)
    for attempt in range(5):
        (spec.work_dir / SPLIT_FILE).unlink(missing_ok=True)
        results, errors = _prepare_at_once(spec, 6)
        assert errors == [], errors
        assert len(results) == 6 and all(np.array_equal(r.y_test, results[0].y_test) for r in results), attempt
        assert sorted(p.name for p in spec.work_dir.iterdir()) == [SPLIT_FILE]  # no staging file left
