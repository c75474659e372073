"""The serving processes' gunicorn worker (``api.gunicorn_worker``): it accepts a connection only while one
of its threads is free, on the gunicorn internals it relies on, and under a real gunicorn."""

from __future__ import annotations

import http.client
import inspect
import os
import selectors
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from gunicorn.config import Config
from gunicorn.workers.gthread import ThreadWorker

from api import gunicorn_conf
from api.gunicorn_worker import BalancedThreadWorker

ROOT = Path(__file__).resolve().parents[2]
HOLD_S = 0.5  # how long each request of the app below takes


def pid_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    """Answers with its process id after ``HOLD_S``: long enough that every client is connected meanwhile."""
    time.sleep(HOLD_S)
    body = str(os.getpid()).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


class FakeConnection:
    def __init__(self) -> None:
        self.closed = False

    def close(self, graceful: bool = False) -> None:
        self.closed = True


@pytest.fixture
def worker():
    """A worker as gunicorn's threaded worker sets itself up in its process, on a real listening socket, with
    each request held until the test lets it go."""
    cfg = Config()
    cfg.set("threads", 2)
    listener = socket.create_server(("127.0.0.1", 0))
    worker = BalancedThreadWorker(0, os.getpid(), [listener], None, 30, cfg, None)
    worker.tpool = ThreadPoolExecutor(max_workers=2)
    worker.poller = selectors.DefaultSelector()
    worker.method_queue.init()
    worker.release = threading.Semaphore(0)
    worker.handle = lambda conn: worker.release.acquire(timeout=10) and False  # False: close, no keep-alive
    yield worker
    for _ in range(4):
        worker.release.release()
    worker.tpool.shutdown(wait=True)
    worker.poller.close()
    worker.method_queue.close()
    listener.close()


def accepting(worker: BalancedThreadWorker) -> bool:
    try:
        worker.poller.get_key(worker.sockets[0])
    except KeyError:
        return False
    return True


def hand_back_finished(worker: BalancedThreadWorker, finished: int) -> None:
    """What the worker's main loop does when requests end: run the callbacks the threads queued for it,
    then turn accepting on again if it may (``ThreadWorker.run``)."""
    deadline = time.monotonic() + 10
    while worker.in_flight > 2 - finished and time.monotonic() < deadline:
        worker.method_queue.run_callbacks(None)
        time.sleep(0.01)
    worker.set_accept_enabled(worker.nr_conns < worker.worker_connections)


def test_stops_accepting_while_every_thread_is_busy_and_starts_again_when_one_is_free(worker):
    worker.set_accept_enabled(True)
    assert accepting(worker)
    first, second = FakeConnection(), FakeConnection()
    worker.nr_conns = 2
    worker.enqueue_req(first)
    assert accepting(worker), "one of two threads is still free"
    worker.enqueue_req(second)
    assert not accepting(worker), "both threads are busy: a new connection should go to another process"
    # The main loop asks for accepting again on every turn while it holds fewer connections than its cap:
    worker.set_accept_enabled(worker.nr_conns < worker.worker_connections)
    assert not accepting(worker)

    worker.release.release()  # one request ends
    hand_back_finished(worker, 1)
    assert worker.in_flight == 1 and worker.nr_conns == 1
    assert accepting(worker)
    assert first.closed or second.closed


def test_gunicorns_threaded_worker_still_has_what_the_worker_relies_on():
    """A gunicorn upgrade that renames or reshapes these fails here rather than in production."""
    for name, parameters in (("enqueue_req", ["self", "conn"]), ("finish_request", ["self", "conn", "fs"]),
                             ("set_accept_enabled", ["self", "enabled"])):
        assert list(inspect.signature(getattr(ThreadWorker, name)).parameters) == parameters, name
    run = inspect.getsource(ThreadWorker.run)
    assert "self.set_accept_enabled(can_accept)" in run  # the loop turns accepting back on each turn
    assert gunicorn_conf.worker_class == "api.gunicorn_worker.BalancedThreadWorker"


def test_under_gunicorn_simultaneous_clients_are_spread_over_the_processes():
    """Two processes of two threads, four clients connecting at once on keep-alive connections: each process
    answers two of them, and keeps answering them on the same connections."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-w", "2", "--threads", "2", "--keep-alive", "30",
         "-k", "api.gunicorn_worker.BalancedThreadWorker", "-b", f"127.0.0.1:{port}",
         "tests.unit.test_gunicorn_worker:pid_app"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while True:  # both processes up: two requests at once answered by two pids
            try:
                with ThreadPoolExecutor(2) as pool:
                    if len(set(pool.map(lambda _: _get(port), range(2)))) == 2:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                server.terminate()
                pytest.fail(f"gunicorn did not start: {server.communicate(timeout=30)[1].decode()[-2000:]}")
            time.sleep(0.2)
        connections = [http.client.HTTPConnection("127.0.0.1", port, timeout=10) for _ in range(4)]
        start = threading.Barrier(4)

        def ask(connection: http.client.HTTPConnection) -> tuple[str, str]:
            start.wait()
            connection.request("GET", "/")
            answer = connection.getresponse()
            return answer.read().decode(), answer.getheader("Connection", "")

        with ThreadPoolExecutor(4) as pool:
            first = list(pool.map(ask, connections))
            start.reset()
            again = list(pool.map(ask, connections))
        pids = [pid for pid, _ in first]
        assert sorted(pids.count(p) for p in set(pids)) == [2, 2], pids
        assert [pid for pid, _ in again] == pids, "kept-alive connections stay with their process"
        assert all(header.lower() == "keep-alive" for _, header in first + again)
        for connection in connections:
            connection.close()
    finally:
        server.terminate()
        server.wait(30)


def _get(port: int) -> str:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", "/")
        return connection.getresponse().read().decode()
    finally:
        connection.close()
