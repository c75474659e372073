"""Workers killed, stopped and cut off from Redis mid-search; parallel trials on two workers.

Each test starts its own workers as subprocesses (the `automl worker` command) against a
private redis-server (so it can be restarted) and its own PostgreSQL schema, with short
leases and a busy reaper so that recovery takes seconds.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sklearn.datasets import load_breast_cancer

from tests.integration.conftest import (
    FAST_RECOVERY,
    Service,
    _base_env,
    _spawn,
    _stop,
    _wait_healthy,
    create_key,
    free_port,
    pg_schema,
    submit,
    upload_frame,
    wait_until,
)

pytestmark = pytest.mark.integration

# Trials long enough to be caught mid-training: no early stopping, small batches.
SLOW_TRIALS = {"tuner": "random", "max_epochs": 25, "patience": 25,
               "search_space": {"batch_size": 16, "num_layers": 1, "units": {"min": 16, "max": 32}}}


class RedisServer:
    def __init__(self, port: int, log: Path) -> None:
        self.port = port
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--logfile", str(self.log)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        wait_until(lambda: subprocess.run(["redis-cli", "-p", str(self.port), "ping"], capture_output=True,
                                          text=True).stdout.strip() == "PONG", 20, "redis-server to start")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()  # no persistence: everything queued or unacknowledged is lost
            self.process.wait(timeout=10)


@dataclass
class Stack:
    api: Service
    redis: RedisServer
    env: dict[str, str]
    root: Path
    api_process: subprocess.Popen[bytes]
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def restart_api(self) -> None:
        _stop([self.api_process])
        port = self.api.url.rsplit(":", 1)[1]
        self.api_process = _spawn(["serve", "--port", port, "--workers", "2"], self.env, self.root / "api2.log")
        _wait_healthy(self.api.url, [self.api_process], self.root)

    def start_worker(self, name: str, **extra_env: str) -> subprocess.Popen[bytes]:
        worker = _spawn(["worker", "--concurrency", "1"], {**self.env, **extra_env}, self.root / f"{name}.log")
        self.workers.append(worker)
        log = self.root / f"{name}.log"
        wait_until(lambda: "ready." in log.read_text(errors="replace"), 120, f"worker {name} to be ready")
        return worker

    def job(self, job_id: str) -> dict[str, Any]:
        body: dict[str, Any] = self.api.http.get(f"{self.api.url}/api/v1/jobs/{job_id}", timeout=10).json()
        return body

    def trials(self, job_id: str) -> list[dict[str, Any]]:
        body = self.api.http.get(f"{self.api.url}/api/v1/jobs/{job_id}/trials", timeout=10).json()
        return sorted(body["trials"], key=lambda t: t["number"])

    def running(self, job_id: str, number: int, min_epoch: int) -> dict[str, Any] | None:
        for trial in self.job(job_id)["running_trials"]:
            if trial["number"] == number and trial["epoch"] >= min_epoch:
                return trial
        return None

    def trial_worker_pids(self, job_id: str, number: int) -> tuple[int, int]:
        """(worker main process, pool process) from the trial's lease owner host:main:pool:tag."""
        trial = next(t for t in self.trials(job_id) if t["number"] == number)
        _, main, pool, _ = trial["worker"].rsplit(":", 3)
        return int(main), int(pool)

    def logs(self) -> str:
        logs = sorted(self.root.glob("*.log"))
        return "\n".join(f"== {p.name}\n{p.read_text(errors='replace')[-3000:]}" for p in logs)


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    with pg_schema("f") as database_url:
        redis_server = RedisServer(free_port(), tmp_path / "redis.log")
        redis_server.start()
        env = _base_env(tmp_path / "var")
        env.update({"AUTOML_DATABASE_URL": database_url, "AUTOML_BROKER_URL": redis_server.url, **FAST_RECOVERY})
        port = free_port()
        api = _spawn(["serve", "--port", str(port), "--workers", "2"], env, tmp_path / "api.log")
        service = Service(url=f"http://127.0.0.1:{port}", log_dir=tmp_path, key=create_key(env, "ops", admin=True))
        built = Stack(api=service, redis=redis_server, env=env, root=tmp_path, api_process=api)
        try:
            _wait_healthy(service.url, [api], tmp_path)
            yield built
        finally:
            _stop([built.api_process, *built.workers])
            redis_server.stop()


@pytest.fixture
def dataset(stack: Stack, tmp_path: Path) -> str:
    return str(upload_frame(stack.api, load_breast_cancer(as_frame=True).frame, tmp_path, "cancer")["id"])


def _finish(stack: Stack, job_id: str, timeout: float = 400) -> dict[str, Any]:
    try:
        return stack.api.wait_for_job(job_id, timeout=timeout)
    except AssertionError:
        raise AssertionError(f"job {job_id} did not finish:\n{stack.logs()}") from None


def _events(stack: Stack, job_id: str) -> list[tuple[str, dict[str, Any]]]:
    with stack.api.http.get(f"{stack.api.url}/api/v1/jobs/{job_id}/events", stream=True, timeout=60) as response:
        text = response.text
    events = []
    for block in text.split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line and not line.startswith(":"))
        if "event" in lines:
            events.append((lines["event"], json.loads(lines["data"])))
    return events


def _trial_markers(events: list[tuple[str, dict[str, Any]]], trial_id: str) -> list[tuple[str, str | None]]:
    """One trial's starts, interruptions (with their reason) and end (with its state), in stream order."""
    return [(kind, e.get("reason") or e.get("state")) for kind, e in events
            if e.get("trial_id") == trial_id and kind in ("trial_started", "trial_interrupted", "trial_ended")]


def test_sigkilled_worker_repeats_only_the_interrupted_trial(stack: Stack, dataset: str) -> None:
    first = stack.start_worker("a")
    job = submit(stack.api, dataset_id=dataset, target="target", max_trials=3, seed=3, **SLOW_TRIALS)
    wait_until(lambda: stack.running(job["id"], 1, min_epoch=3), 300, "trial 1 to be mid-training")
    os.killpg(first.pid, signal.SIGKILL)  # the whole worker: main process and pool process
    first.wait(timeout=10)
    stack.start_worker("b")

    finished = _finish(stack, job["id"])
    assert finished["state"] == "succeeded", (finished["error"], stack.logs())
    trials = stack.trials(job["id"])
    assert [t["trial_id"] for t in trials] == ["0", "1", "2"]  # unique, none lost
    assert [t["attempts"] for t in trials] == [1, 2, 1]  # only the interrupted trial ran twice
    assert all(t["state"] == "completed" for t in trials)
    events = _events(stack, job["id"])
    starts = [e["trial_id"] for kind, e in events if kind == "trial_started"]
    assert starts == ["0", "1", "1", "2"]
    # The abandoned attempt's epochs end with a marker, so a reader of the stream knows to drop them.
    assert _trial_markers(events, "1") == [("trial_started", None), ("trial_interrupted", "worker lost"),
                                           ("trial_started", None), ("trial_ended", "completed")]


def test_a_trial_that_kills_its_worker_every_time_is_given_up(stack: Stack, dataset: str) -> None:
    stack.start_worker("a")
    job = submit(stack.api, dataset_id=dataset, target="target", max_trials=3, seed=4, **SLOW_TRIALS)
    for attempt in (1, 2):
        def training(attempt: int = attempt) -> bool:
            trial = stack.running(job["id"], 1, min_epoch=1)
            return bool(trial) and trial["attempt"] == attempt  # type: ignore[index]

        wait_until(training, 300, f"trial 1, attempt {attempt}, to be training")
        _, pool = stack.trial_worker_pids(job["id"], 1)
        os.kill(pool, signal.SIGKILL)  # the pool process dies, as under the kernel's OOM killer

    finished = _finish(stack, job["id"])
    assert finished["state"] == "succeeded", (finished["error"], stack.logs())
    trials = stack.trials(job["id"])
    assert [(t["trial_id"], t["state"], t["attempts"]) for t in trials] == [
        ("0", "completed", 1), ("1", "failed", 2), ("2", "completed", 1)]
    assert "died 2 times" in trials[1]["message"]
    assert _trial_markers(_events(stack, job["id"]), "1") == [
        ("trial_started", None), ("trial_interrupted", "worker lost"), ("trial_started", None),
        ("trial_interrupted", "worker lost"), ("trial_ended", "failed")]


def test_sigterm_hands_the_running_trial_to_another_worker_at_once(stack: Stack, dataset: str) -> None:
    # Leases far longer than the test: a hand-over that waited for expiry would time out.
    slow_expiry = {"AUTOML_JOB_LEASE_S": "600"}
    workers = {stack.start_worker("a", **slow_expiry).pid: "a", stack.start_worker("b", **slow_expiry).pid: "b"}
    job = submit(stack.api, dataset_id=dataset, target="target", max_trials=2, seed=5, **SLOW_TRIALS)
    wait_until(lambda: stack.running(job["id"], 0, min_epoch=3), 300, "trial 0 to be mid-training")
    main, _ = stack.trial_worker_pids(job["id"], 0)
    holder = next(w for w in stack.workers if w.pid == main)
    stopped_at = time.monotonic()
    holder.send_signal(signal.SIGTERM)  # what Kubernetes sends the pod's main process

    holder.wait(timeout=60)
    exit_s = time.monotonic() - stopped_at

    def moved() -> bool:
        trial = stack.running(job["id"], 0, min_epoch=0)
        return bool(trial) and stack.trial_worker_pids(job["id"], 0)[0] != main

    wait_until(moved, 60, "trial 0 to restart on the other worker")
    handover_s = time.monotonic() - stopped_at
    finished = _finish(stack, job["id"])
    assert finished["state"] == "succeeded", (finished["error"], stack.logs())
    trials = stack.trials(job["id"])
    assert [(t["trial_id"], t["attempts"]) for t in trials] == [("0", 1), ("1", 1)]  # a hand-back is no crash
    kinds = [(kind, e.get("reason")) for kind, e in _events(stack, job["id"]) if kind == "trial_interrupted"]
    assert kinds == [("trial_interrupted", "worker shutdown")]
    assert exit_s < 60 and handover_s < 60, (exit_s, handover_s, workers[main])


def test_redis_and_api_restarts_mid_job_and_503_while_the_broker_is_down(stack: Stack, dataset: str) -> None:
    stack.start_worker("a")
    job = submit(stack.api, dataset_id=dataset, target="target", max_trials=3, seed=6, **SLOW_TRIALS)
    mid = wait_until(lambda: stack.running(job["id"], 0, min_epoch=2), 300, "trial 0 to be mid-training")
    stack.redis.stop()
    refused = stack.api.http.post(f"{stack.api.url}/api/v1/jobs", timeout=60,
                                  json={"dataset_id": dataset, "target": "target", "max_trials": 1})
    assert refused.status_code == 503, refused.text
    assert "queue is unreachable" in refused.json()["message"]
    assert stack.api.http.get(f"{stack.api.url}/api/v1/jobs/{job['id']}", timeout=10).status_code == 200
    # The broker stays away across a few epochs of the running trial, not just a blink.
    # (Read from the leaderboard: a fast trial may also finish while the broker is away, and its next step
    # then waits to be queued, which is the other half of this test.)
    wait_until(lambda: next(t for t in stack.trials(job["id"]) if t["number"] == 0)["epochs_done"]
               >= mid["epoch"] + 2, 120, "trial 0 to train two more epochs while the broker is down")
    stack.redis.start()
    stack.restart_api()  # the API keeps nothing of its own: all state is in the metadata store

    finished = _finish(stack, job["id"])
    assert finished["state"] == "succeeded", (finished["error"], stack.logs())
    assert [t["trial_id"] for t in stack.trials(job["id"])] == ["0", "1", "2"]
    listed = stack.api.http.get(f"{stack.api.url}/api/v1/jobs", timeout=10).json()
    assert [j["id"] for j in listed] == [job["id"]]  # the refused request left nothing behind


def test_parallel_trials_on_two_workers_share_one_search_state(stack: Stack, dataset: str) -> None:
    stack.start_worker("a")
    stack.start_worker("b")
    job = submit(stack.api, dataset_id=dataset, target="target", tuner="bayesian", max_trials=4, max_epochs=12,
                 patience=12, seed=7, parallel_trials=2, search_space=SLOW_TRIALS["search_space"])
    assert job["parallel_trials"] == 2

    def two_running() -> bool:
        current = stack.job(job["id"])
        assert current["state"] in ("queued", "running"), (current["state"], current["error"], stack.logs())
        return len(current["running_trials"]) == 2

    wait_until(two_running, 300, "two trials running at once")
    finished = _finish(stack, job["id"])
    assert finished["state"] == "succeeded", (finished["error"], stack.logs())

    trials = stack.trials(job["id"])
    assert sorted(t["trial_id"] for t in trials) == ["0", "1", "2", "3"]
    assert all(t["state"] == "completed" and t["attempts"] == 1 for t in trials)
    assert {t["lane"] for t in trials} == {0, 1}
    assert len({t["worker"].rsplit(":", 3)[1] for t in trials}) == 2  # both workers ran trials
    oracle = json.loads((stack.root / "var" / "jobs" / job["id"] / "tuner" / "oracle.json").read_text())
    assert sorted(oracle["end_order"]) == ["0", "1", "2", "3"] and len(oracle["end_order"]) == 4
    assert oracle["ongoing_trials"] == {} and oracle["retry_queue"] == []
    assert len(set(oracle["tried_so_far"])) == 4  # four distinct hyperparameter sets
    model = stack.api.http.get(f"{stack.api.url}/api/v1/models/{finished['model_id']}", timeout=10).json()
    assert model["state"] == "ready"


def test_jobs_share_one_worker_fairly(stack: Stack, dataset: str) -> None:
    stack.start_worker("a")
    quick = {"tuner": "random", "max_trials": 2, "max_epochs": 2, "search_space": {"num_layers": 1}}
    first = submit(stack.api, dataset_id=dataset, target="target", seed=8, **quick)
    second = submit(stack.api, dataset_id=dataset, target="target", seed=9, **quick)
    for job in (first, second):
        assert _finish(stack, job["id"])["state"] == "succeeded"
    started = sorted(
        (t["started_at"], name) for name, job in (("first", first), ("second", second))
        for t in stack.trials(job["id"])
    )
    order = [name for _, name in started]
    # One trial per message, each queueing the next at the back: the jobs take turns.
    assert order == ["first", "second"] * 2, order
