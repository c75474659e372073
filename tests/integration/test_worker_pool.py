"""A worker's pool process loads TensorFlow as it starts, before any job reaches it (a job's time budget
runs from its first step, so the import used to come out of the first trial's time), and the worker's
parent process never loads it (TensorFlow and fork do not mix)."""

from __future__ import annotations

from pathlib import Path

import psutil
import pytest

from tasks.celery_app import POOL_READY
from tests.integration.conftest import _base_env, _spawn, _stop, wait_until

pytestmark = pytest.mark.integration


def _loads_tensorflow(process: psutil.Process) -> bool:
    try:
        return any("tensorflow" in Path(m.path).name for m in process.memory_maps())
    except psutil.NoSuchProcess:  # a pool process that ended while it was read
        return False


def test_pool_process_loads_tensorflow_before_its_first_task(tmp_path: Path) -> None:
    env = _base_env(tmp_path / "var")  # embedded broker and store: nothing queued, no task ever sent
    log = tmp_path / "worker.log"
    worker = _spawn(["worker", "--concurrency", "1"], env, log)
    try:
        parent = psutil.Process(worker.pid)

        def pool_process() -> psutil.Process | None:
            assert worker.poll() is None, log.read_text(errors="replace")
            children = parent.children()
            return children[0] if children and _loads_tensorflow(children[0]) else None

        child = wait_until(pool_process, 180, "the pool process to load TensorFlow", interval=1)
        wait_until(lambda: POOL_READY in log.read_text(errors="replace"), 60,
                   "the pool process to say so")
        assert not _loads_tensorflow(parent), "the worker's parent process loaded TensorFlow"
        text = log.read_text(errors="replace")
        assert child.is_running() and "Timed out waiting for UP message" not in text, text
        assert "could not load TensorFlow" not in text, text
    finally:
        _stop([worker])
