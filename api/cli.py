"""The ``automl`` command: ``serve``, ``worker``, ``db upgrade``.

``automl serve`` runs gunicorn; with ``--with-worker`` (what ``make run`` uses) it also
starts a Celery worker beside it and stops both together.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import click

from automl.settings import Settings


@click.group()
def main() -> None:
    """Keras AutoML service."""


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", default=2, show_default=True, type=int, help="gunicorn worker processes")
@click.option("--with-worker/--no-worker", default=False, help="Also start a Celery worker (embedded mode).")
def serve(host: str, port: int, workers: int, with_worker: bool) -> None:
    """Serve the REST API with gunicorn (migrates the database first)."""
    from automl.store import Store

    settings = Settings()
    settings.ensure_dirs()
    Store(settings.sqlalchemy_url).migrate()
    children: list[subprocess.Popen[bytes]] = []
    if with_worker:
        children.append(subprocess.Popen([sys.executable, "-m", "api.cli", "worker"]))
    server = subprocess.Popen(
        [
            sys.executable, "-m", "gunicorn",
            "--config", "python:api.gunicorn_conf",
            "--bind", f"{host}:{port}",
            "--workers", str(workers),
        ],
        env={**os.environ, "AUTOML_SKIP_MIGRATE": "1"},
    )
    children.append(server)
    click.echo(f"automl: API on http://{host}:{port} (docs: http://{host}:{port}/api/v1/docs)", err=True)

    def stop(signum: int, _frame: object) -> None:
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        while all(child.poll() is None for child in children):
            try:
                server.wait(timeout=1)
            except subprocess.TimeoutExpired:
                continue
    finally:
        stop(signal.SIGTERM, None)
        for child in children:
            try:
                child.wait(timeout=30)
            except subprocess.TimeoutExpired:
                child.kill()
    sys.exit(server.returncode or 0)


@main.command(context_settings={"ignore_unknown_options": True})
@click.option("--concurrency", type=int, default=None, help="Pool processes (default AUTOML_WORKER_CONCURRENCY).")
@click.option("--pool", default="prefork", show_default=True, type=click.Choice(["prefork", "solo", "threads"]))
@click.argument("celery_args", nargs=-1, type=click.UNPROCESSED)
def worker(concurrency: int | None, pool: str, celery_args: tuple[str, ...]) -> None:
    """Run a Celery worker that executes searches (TensorFlow is loaded in the pool children)."""
    from automl.store import Store
    from tasks.celery_app import QUEUE
    from tasks.worker import celery

    settings: Settings = celery.conf.automl_settings
    settings.ensure_dirs()
    Store(settings.sqlalchemy_url).migrate()
    argv = [
        "worker",
        "--queues", QUEUE,
        "--pool", pool,
        "--concurrency", str(concurrency or settings.worker_concurrency),
        "--loglevel", settings.log_level,
        *celery_args,
    ]
    celery.worker_main(argv)


@main.group()
def db() -> None:
    """Metadata database commands."""


@db.command()
def upgrade() -> None:
    """Apply Alembic migrations up to the newest revision."""
    from automl.store import Store

    settings = Settings()
    Store(settings.sqlalchemy_url).migrate()
    click.echo("database is up to date")


if __name__ == "__main__":
    main()
