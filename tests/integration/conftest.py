"""Real parts, really started: PostgreSQL, Redis (db 15, flushed), a Celery worker, the API server.

No eager mode and no mocks: the API and the worker are separate processes started with the
same ``automl`` command that ``make run`` and the deployment use.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis
import requests

REDIS_URL = "redis://127.0.0.1:6379/15"
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"
JOB_TIMEOUT_S = 600
# Short leases and a busy reaper, so that recovery from a killed worker takes seconds in tests.
FAST_RECOVERY = {"AUTOML_JOB_LEASE_S": "8", "AUTOML_REAPER_INTERVAL_S": "1", "AUTOML_REQUEUE_AFTER_S": "30"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(condition: Callable[[], Any], timeout: float, what: str, interval: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


@contextmanager
def pg_schema(prefix: str = "t") -> Iterator[str]:
    """A database URL whose tables live in a fresh schema of the real `test` database, dropped after."""
    schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/test?options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    with pg_schema() as url:
        yield url


@pytest.fixture(scope="session")
def redis_url() -> str:
    redis.Redis.from_url(REDIS_URL).flushdb()
    return REDIS_URL


@dataclass
class Service:
    url: str
    log_dir: Path
    env: dict[str, str] | None = None  # what its processes were started with, to start more beside them
    key: str = ""  # an admin API key

    @cached_property
    def http(self) -> requests.Session:
        """HTTP with this service's admin key on every request."""
        return as_key(self.key)

    def logs(self) -> str:
        return "\n".join(p.read_text(errors="replace")[-4000:] for p in sorted(self.log_dir.glob("*.log")))

    def wait_for_job(self, job_id: str, timeout: float = JOB_TIMEOUT_S) -> dict[str, Any]:
        def finished() -> dict[str, Any] | None:
            job: dict[str, Any] = self.http.get(f"{self.url}/api/v1/jobs/{job_id}", timeout=10).json()
            return job if job["state"] in ("succeeded", "failed", "cancelled") else None

        try:
            result: dict[str, Any] = wait_until(finished, timeout, f"job {job_id}", interval=1)
        except AssertionError:
            raise AssertionError(f"job {job_id} did not finish; logs:\n{self.logs()}") from None
        return result


def as_key(key: str) -> requests.Session:
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {key}"
    return session


def create_key(env: dict[str, str], team: str, admin: bool = False, role: str | None = None) -> str:
    """A key made the way operators make them: `automl keys create`."""
    args = [sys.executable, "-m", "api.cli", "keys", "create", "--team", team] + (["--admin"] if admin else [])
    args += ["--role", role] if role else []
    result = subprocess.run(args, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def _spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    handle = log.open("wb")
    return subprocess.Popen([sys.executable, "-m", "api.cli", *args], env=env, stdout=handle,
                            stderr=subprocess.STDOUT, start_new_session=True)


def _stop(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


def _wait_healthy(url: str, processes: list[subprocess.Popen[bytes]], log_dir: Path) -> None:
    def healthy() -> bool:
        if any(p.poll() is not None for p in processes):
            logs = "\n".join(p.read_text() for p in log_dir.glob("*.log"))
            raise AssertionError(f"a service process exited early:\n{logs}")
        try:
            return requests.get(f"{url}/healthz", timeout=5).status_code == 200
        except requests.RequestException:  # not listening yet, or still importing
            return False

    wait_until(healthy, 120, "the API to answer /healthz")


@contextmanager
def serving(root: Path, env: dict[str, str], *args: str, log: str = "api.log") -> Iterator[str]:
    """`automl serve` (with ``args``, e.g. ``--with-worker``) on a free port with ``env``: its URL once it
    answers /healthz; stopped on exit."""
    port = free_port()
    process = _spawn(["serve", "--port", str(port), *args], env, root / log)
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_healthy(url, [process], root)
        yield url
    finally:
        _stop([process])


def _base_env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTOML_")}
    env.update({"AUTOML_DATA_DIR": str(data_dir), "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1"})
    return env


@pytest.fixture(scope="session")
def distributed(tmp_path_factory: pytest.TempPathFactory, pg_url: str, redis_url: str) -> Iterator[Service]:
    """API (``automl serve``: the API server) and a separate worker, on PostgreSQL and Redis: the production shape."""
    root = tmp_path_factory.mktemp("distributed")
    env = _base_env(root / "var")
    env.update({"AUTOML_DATABASE_URL": pg_url, "AUTOML_BROKER_URL": redis_url, "AUTOML_LOG_FORMAT": "json",
                **FAST_RECOVERY})
    port = free_port()
    key = create_key(env, "ops", admin=True)
    processes = [
        _spawn(["worker", "--concurrency", "1"], env, root / "worker.log"),
        _spawn(["serve", "--port", str(port), "--workers", "2"], env, root / "api.log"),
    ]
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, processes, root)
        wait_until(lambda: "ready." in (root / "worker.log").read_text(), 120, "the worker to be ready")
        yield Service(url=url, log_dir=root, env=env, key=key)
    finally:
        _stop(processes)


@pytest.fixture(scope="session")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """What `make run` starts: one command, SQLite metadata and a SQLite broker, no servers."""
    root = tmp_path_factory.mktemp("embedded")
    env = _base_env(root / "var")
    port = free_port()
    processes = [_spawn(["serve", "--port", str(port), "--with-worker"], env, root / "serve.log")]
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, processes, root)
        yield Service(url=url, log_dir=root, env=env, key=(root / "var" / "admin-key").read_text().strip())
    finally:
        _stop(processes)


@pytest.fixture(scope="session")
def penguins_model(distributed: Service, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A small penguins classifier (categorical and missing values) trained by the distributed stack."""
    from palmerpenguins import load_penguins

    dataset = upload_frame(distributed, load_penguins(), tmp_path_factory.mktemp("penguins"), "penguins")
    job = submit(distributed, dataset_id=dataset["id"], target="species", tuner="random", max_trials=1,
                 max_epochs=5, seed=21, search_space={"num_layers": 1, "dropout": 0.0})
    finished = distributed.wait_for_job(job["id"])
    assert finished["state"] == "succeeded", finished
    return str(finished["model_id"])


def upload_csv(service: Service, path: Path) -> dict[str, Any]:
    with path.open("rb") as handle:
        response = service.http.post(f"{service.url}/api/v1/datasets", files={"file": (path.name, handle)}, timeout=60)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def upload_frame(service: Service, frame: Any, folder: Path, name: str) -> dict[str, Any]:
    """Write a DataFrame as CSV and upload it, as a client would."""
    path = folder / f"{name}.csv"
    frame.to_csv(path, index=False)
    return upload_csv(service, path)


def submit(service: Service, **body: Any) -> dict[str, Any]:
    response = service.http.post(f"{service.url}/api/v1/jobs", json=body, timeout=30)
    assert response.status_code == 202, response.text
    job: dict[str, Any] = response.json()
    assert job["state"] in ("queued", "running")  # an idle worker may take it before the answer is written
    return job
