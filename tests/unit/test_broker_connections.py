"""The embedded broker (kombu's SQLAlchemy transport over SQLite) under the reaper's and /metrics'
repeated queue-depth checks: no connection may stay checked out, or an idle worker's pool runs
dry within minutes and the worker dies (seen in CI: "QueuePool limit of size 5 overflow 10
reached" in an idle `automl serve --with-worker`)."""

from __future__ import annotations

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
