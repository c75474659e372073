"""The service as ``make run`` starts it (the API server + a Celery worker, embedded SQLite store and
broker) in a folder of the benchmark's choosing, for benchmarks that measure it from outside."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import pandas as pd
import requests

from tasks.celery_app import POOL_READY


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class LocalService:
    url: str
    root: Path
    api: subprocess.Popen[bytes]
    worker: subprocess.Popen[bytes] | None

    @property
    def key(self) -> str:
        """The admin key the embedded mode created on its first start in ``root``."""
        return (self.root / "admin-key").read_text().strip()

    @cached_property
    def http(self) -> requests.Session:
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {self.key}"
        return session

    def upload(self, frame: pd.DataFrame, name: str) -> dict[str, Any]:
        path = self.root / f"{name}.csv"
        frame.to_csv(path, index=False)
        with path.open("rb") as handle:
            response = self.http.post(f"{self.url}/api/v1/datasets", files={"file": (path.name, handle)}, timeout=120)
        response.raise_for_status()
        return dict(response.json())

    def run_job(self, timeout_s: float = 1800, **request: Any) -> dict[str, Any]:
        """Submit a job and wait for it to end; returns the finished job."""
        response = self.http.post(f"{self.url}/api/v1/jobs", json=request, timeout=30)
        response.raise_for_status()
        job_id = response.json()["id"]
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            job = dict(self.http.get(f"{self.url}/api/v1/jobs/{job_id}", timeout=10).json())
            if job["state"] in ("succeeded", "failed", "cancelled"):
                return job
            time.sleep(1)
        raise TimeoutError(f"job {job_id} still running after {timeout_s} s")

    def wait_ready(self, path: str = "/healthz", timeout_s: float = 180) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.api.poll() is not None:
                raise RuntimeError(f"the API exited with {self.api.returncode}; see {self.root / 'service.log'}")
            try:
                if requests.get(f"{self.url}{path}", timeout=2).ok:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.5)
        raise TimeoutError(f"{self.url}{path} not ready after {timeout_s} s")

    def wait_pool_ready(self, processes: int, since: int = 0, timeout_s: float = 180) -> None:
        """Until the worker's ``processes`` pool processes have loaded TensorFlow (``tasks.worker``: said in
        the log past byte ``since``), as a worker up before the job came has: the benchmarks time jobs, not
        the worker's start."""
        log = self.root / "service.log"
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with log.open("rb") as text:
                text.seek(since)  # only this start's lines, not the whole log again
                if text.read().decode(errors="replace").count(POOL_READY) >= processes:
                    return
            time.sleep(0.5)
        raise TimeoutError(f"the worker's pool processes not ready after {timeout_s} s; see {log}")


def _stop(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


@contextmanager
def local_service(root: Path, env: dict[str, str] | None = None, api_workers: int = 1,
                  with_worker: bool = True, concurrency: int = 1) -> Iterator[LocalService]:
    """API (``automl serve``) and optionally a Celery worker on ``root``; both stopped on exit."""
    full_env = {**os.environ, "AUTOML_DATA_DIR": str(root), "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})}
    port = free_port()
    log = (root / "service.log").open("ab")
    since = log.tell()  # a reused root's log holds earlier runs
    api = subprocess.Popen([sys.executable, "-m", "api.cli", "serve", "--port", str(port),
                            "--workers", str(api_workers)],
                           env=full_env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    worker = None
    if with_worker:
        time.sleep(1)  # the API migrates the database first
        worker = subprocess.Popen([sys.executable, "-m", "api.cli", "worker", "--concurrency", str(concurrency)],
                                  env=full_env,
                                  stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    service = LocalService(f"http://127.0.0.1:{port}", root, api, worker)
    try:
        service.wait_ready()
        if worker is not None:
            service.wait_pool_ready(concurrency, since)
        yield service
    finally:
        _stop([p for p in (worker, api) if p is not None])
        log.close()
