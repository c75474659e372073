"""The embedded broker (kombu's SQLAlchemy transport over SQLite) under the reaper's and /metrics'
repeated queue-depth checks: no connection may stay checked out, or an idle worker's pool runs
dry within minutes and the worker dies (seen in CI: "QueuePool limit of size 5 overflow 10
reached" in an idle `automl serve --with-worker`)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from kombu.transport.sqlalchemy import Channel

from automl.settings import Settings
from tasks.celery_app import make_celery, queue_depth, send_advance


def test_queue_depth_checks_return_their_connections(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "var")
    settings.ensure_dirs()
    app = make_celery(settings)
    send_advance(app, "job-1")
    for _ in range(20):  # more than the pool's 5 + 10: a leak would block for 30 s, then answer None
        assert queue_depth(app) == 1
    engine, _ = Channel._engines[settings.celery_broker_url.removeprefix("sqla+")]
    assert engine.pool.checkedout() == 0


REPOSITORY = Path(__file__).resolve().parents[2]
_QUEUE_AT_ONCE = """
import sys, time
from pathlib import Path
from automl.settings import Settings
from tasks.celery_app import make_celery, send_advance

root, me = Path(sys.argv[1]), sys.argv[2]
(root / f"ready-{me}").touch()
while not (root / "go").exists():  # the imports done in every process
    time.sleep(0.005)
start = float((root / "go").read_text())
while time.time() < start:  # then all at one instant
    pass
send_advance(make_celery(Settings(data_dir=root / "var")), f"job-{me}")
"""


def test_processes_starting_together_on_a_new_broker_file_all_queue(tmp_path: Path) -> None:
    """An API process and a worker started together on a new embedded broker both created the task
    queue's row; one of them failed on its uniqueness, and the first job was refused with a 503
    (seen starting ``benchmarks/serving.py``: "could not queue job ... 'NoneType' object has no
    attribute 'client'"). Three processes at once, five times over, each on a new file: every one
    queues its message (before the lock, about one process in five failed)."""
    for round_ in range(5):
        root = tmp_path / str(round_)
        root.mkdir()
        processes = [subprocess.Popen([sys.executable, "-c", _QUEUE_AT_ONCE, str(root), str(me)], cwd=REPOSITORY,
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                     for me in range(3)]
        while len(list(root.glob("ready-*"))) < 3 and all(process.poll() is None for process in processes):
            time.sleep(0.01)
        (root / "go.tmp").write_text(str(time.time() + 0.3))
        (root / "go.tmp").rename(root / "go")  # whole when it appears
        outputs = [process.communicate(timeout=120)[0] for process in processes]
        assert [process.returncode for process in processes] == [0, 0, 0], "\n".join(outputs)
        app = make_celery(Settings(data_dir=root / "var"))
        assert queue_depth(app) == 3
