"""The ``automl`` command. Server side: ``serve``, ``worker``, ``db upgrade``, ``keys create|list|revoke``;
client side (``automl.client.cli``, usable from a client-only install): ``upload``, ``train``,
``wait``, ``trials``, ``predict``, ``download``, ``datasets``, ``jobs``, ``models``.

``automl serve`` runs the HTTP server (``api.server``: granian); with ``--with-worker`` (what ``make run`` uses) it also
starts a Celery worker beside it and stops both together. On the first start of the
embedded mode (no database configured, no key yet) it creates an admin key and prints it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import datetime
from typing import TYPE_CHECKING

import click

from automl.client.cli import COMMANDS

if TYPE_CHECKING:
    from automl.settings import Settings
    from automl.store import Store


@click.group()
def main() -> None:
    """Keras AutoML service: run it (serve, worker, db, keys) or use it (upload, train, trials, predict, ...)."""


for _command in COMMANDS:
    main.add_command(_command)


def _server() -> tuple[type[Settings], type[Store]]:
    """The server's settings and store, imported only by the commands that run the service, so the
    client commands work where only the light client dependencies are installed."""
    try:
        from automl.settings import Settings
        from automl.store import Store
    except ImportError as exc:
        raise click.ClickException(
            f"this command runs the service and needs its dependencies ({exc.name} is missing): "
            "pip install 'keras-automl-service[server]'") from None
    return Settings, Store


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", default=2, show_default=True, type=int, help="API server processes")
@click.option("--with-worker/--no-worker", default=False, help="Also start a Celery worker (embedded mode).")
def serve(host: str, port: int, workers: int, with_worker: bool) -> None:
    """Serve the REST API (migrates the database first)."""
    Settings, Store = _server()
    settings = Settings()
    settings.ensure_dirs()
    store = Store(settings.sqlalchemy_url)
    store.migrate()
    _first_admin_key(settings, store)
    store.dispose()
    server = subprocess.Popen(
        [
            sys.executable, "-m", "api.server",
            "--host", host,
            "--port", str(port),
            "--workers", str(workers),
        ],
        env={**os.environ, "AUTOML_SKIP_MIGRATE": "1"},
        start_new_session=True,  # Ctrl-C reaches this process only; it stops each child once, in order
    )
    click.echo(f"automl: API on http://{host}:{port} (docs: http://{host}:{port}/api/v1/docs)", err=True)
    supervisor = _Supervisor(server, with_worker)
    signal.signal(signal.SIGTERM, supervisor.stop)
    signal.signal(signal.SIGINT, supervisor.stop)
    sys.exit(supervisor.run())


class _Supervisor:
    """``automl serve``'s children: the API server (its exit ends the service) and, with ``--with-worker``, a Celery
    worker that is started again when it dies (saying why), at most ``MAX_RESTARTS`` times in
    ``RESTART_WINDOW_S``. A stop (Ctrl-C, SIGTERM) sends each child one SIGTERM and waits ``STOP_WAIT_S``
    before killing what is left."""

    MAX_RESTARTS = 5
    RESTART_WINDOW_S = 300.0
    STOP_WAIT_S = 20.0

    def __init__(self, server: subprocess.Popen[bytes], with_worker: bool) -> None:
        self.server = server
        self.worker = self._start_worker() if with_worker else None
        self.restarts: list[float] = []
        self.stopping = False

    @staticmethod
    def _start_worker() -> subprocess.Popen[bytes]:
        return subprocess.Popen([sys.executable, "-m", "api.cli", "worker"], start_new_session=True)

    def stop(self, signum: int, _frame: object) -> None:
        if not self.stopping:
            click.echo(f"automl: stopping ({signal.Signals(signum).name})", err=True)
        self.stopping = True

    def run(self) -> int:
        try:
            while not self.stopping and self.server.poll() is None:
                if self.worker is not None and self.worker.poll() is not None:
                    self._worker_died(self.worker.returncode)
                time.sleep(0.2)
            if self.server.poll() is not None and not self.stopping:
                click.echo(f"automl: the API server exited ({_how(self.server.returncode)}); stopping", err=True)
        finally:  # the children live in sessions of their own: never leave them behind
            self._stop_children()
        return 0 if self.stopping else (self.server.returncode or 1)

    def _stop_children(self) -> None:
        children = [c for c in (self.server, self.worker) if c is not None]
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.STOP_WAIT_S
        for child in children:
            try:
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                click.echo(f"automl: process {child.pid} did not stop within {self.STOP_WAIT_S:.0f} s; killing it",
                           err=True)
                os.killpg(child.pid, signal.SIGKILL)
                child.wait()

    def _worker_died(self, code: int) -> None:
        now = time.monotonic()
        self.restarts = [t for t in self.restarts if now - t < self.RESTART_WINDOW_S] + [now]
        if len(self.restarts) > self.MAX_RESTARTS:
            click.echo(f"automl: the worker exited ({_how(code)}) {len(self.restarts)} times in "
                       f"{self.RESTART_WINDOW_S:.0f} s; not starting it again (jobs wait in the queue; see the log "
                       "above, then restart the service)", err=True)
            self.worker = None
            return
        click.echo(f"automl: the worker exited ({_how(code)}); starting it again (its running trials are handed "
                   "to the new one once their leases expire)", err=True)
        self.worker = self._start_worker()


def _how(code: int | None) -> str:
    if code is not None and code < 0:
        return f"killed by {signal.Signals(-code).name}"
    return f"exit code {code}"


@main.command(context_settings={"ignore_unknown_options": True})
@click.option("--concurrency", type=int, default=None, help="Pool processes (default AUTOML_WORKER_CONCURRENCY).")
@click.option("--pool", default="prefork", show_default=True, type=click.Choice(["prefork", "solo", "threads"]))
@click.argument("celery_args", nargs=-1, type=click.UNPROCESSED)
def worker(concurrency: int | None, pool: str, celery_args: tuple[str, ...]) -> None:
    """Run a Celery worker that executes searches (TensorFlow is loaded in the pool children)."""
    _, Store = _server()
    from tasks.celery_app import QUEUE
    from tasks.worker import celery

    settings: Settings = celery.conf.automl_settings
    if concurrency:
        # The pool processes size their TensorFlow threads by it (cores / concurrency).
        settings = settings.model_copy(update={"worker_concurrency": concurrency})
        celery.conf.automl_settings = settings
    settings.ensure_dirs()
    Store(settings.sqlalchemy_url).migrate()
    argv = [
        "worker",
        "--queues", QUEUE,
        "--pool", pool,
        "--concurrency", str(settings.worker_concurrency),
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
    Settings, Store = _server()
    settings = Settings()
    Store(settings.sqlalchemy_url).migrate()
    click.echo("database is up to date")


def _first_admin_key(settings: Settings, store: Store) -> None:
    """Embedded mode: without any key nobody could call the API, so the first start makes an admin key,
    prints it once and keeps it in ``<data_dir>/admin-key`` (readable by this user only)."""
    from automl.access import DEFAULT_TEAM, new_key
    from automl.store import api_keys

    path = settings.admin_key_file
    with store.session() as session:
        if api_keys.count_keys(session):
            if path.is_file():
                click.echo(f"automl: the admin API key is in {path}", err=True)
            return
        if settings.database_url is not None:
            click.echo("automl: no API key exists yet; create one with `automl keys create --team NAME --role admin`.",
                       err=True)
            return
        key = new_key()
        api_keys.add_key(session, key.key_id, key.digest, DEFAULT_TEAM, "admin", "embedded admin (first start)")
        # Written before the key is committed: a key nobody can read is never left behind.
        path.unlink(missing_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(key.secret + "\n")
    click.echo(f"automl: created an admin API key (team '{DEFAULT_TEAM}'); it is shown once here and kept in "
               f"{path}:\n\n    {key.secret}\n\nSend it as 'Authorization: Bearer <key>'. Make keys for teams "
               "with `automl keys create --team NAME`.\n", err=True)


@main.group()
def keys() -> None:
    """API keys: each acts for one team; stored hashed, shown once when created."""


def _store() -> Store:
    Settings, Store = _server()
    store = Store(Settings().sqlalchemy_url)
    store.migrate()
    return store


@keys.command("create")
@click.option("--team", required=True, help="The team the key acts for (created with its first key).")
@click.option("--role", type=click.Choice(["predict", "read", "write", "admin"]), default=None,
              help="predict: predictions and model cards; read: every GET; write (default): everything its team "
                   "may do; admin: every team's resources, keys and usage.")
@click.option("--admin", is_flag=True, help="Same as --role admin.")
@click.option("--expires-in", default=None, help="The key stops working after this long: 90d, 12h, 2w.")
@click.option("--name", default=None, help="A label: who or what uses the key.")
def create_key(team: str, role: str | None, admin: bool, expires_in: str | None, name: str | None) -> None:
    """Create a key and print it (on stdout, alone, so `KEY=$(automl keys create ...)` works)."""
    from automl.access import Role, parse_duration
    from automl.errors import InvalidRequest
    from automl.usecases.keys import create_key as create

    if admin and role not in (None, "admin"):
        raise click.BadParameter(f"--admin contradicts --role {role}", param_hint="--admin")
    try:
        lifetime = parse_duration(expires_in) if expires_in else None
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--expires-in") from None
    chosen = Role.admin if admin else Role[role or "write"]
    try:
        created = create(_store(), team, chosen, name, lifetime)
    except InvalidRequest as exc:
        raise click.BadParameter(exc.message, param_hint="--team") from None
    until = f", expires {_when(created.record.expires_at)} UTC" if created.record.expires_at else ""
    click.echo(f"automl: created a '{chosen.name}' key for team '{team}' (id {created.record.id}{until}); it is "
               "shown only now.", err=True)
    click.echo(created.secret)


@keys.command("list")
@click.option("--team", default=None, help="Only this team's keys.")
@click.option("--all", "show_revoked", is_flag=True, help="Include revoked keys.")
def list_keys(team: str | None, show_revoked: bool) -> None:
    """Keys by id (never the keys themselves): team, role, label, created, expiry, last used."""
    from automl.store import api_keys

    with _store().session() as session:
        rows = api_keys.list_keys(session, team, revoked=show_revoked)
    header = ("ID", "TEAM", "ROLE", "CREATED", "EXPIRES", "LAST USED", "REVOKED", "NAME")
    table = [header] + [(r.id, r.team, r.role, _when(r.created_at), _when(r.expires_at), _when(r.last_used_at),
                         _when(r.revoked_at), r.name or "") for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M") if moment else ""


@keys.command("revoke")
@click.argument("key_id")
def revoke_key(key_id: str) -> None:
    """Revoke a key by its id (or the key itself); serving processes stop accepting it within
    AUTOML_KEY_CACHE_S seconds."""
    from automl.access import parse_key
    from automl.errors import NotFound
    from automl.store import api_keys

    key_id = parse_key(key_id) or key_id
    try:
        with _store().session() as session:
            record = api_keys.revoke_key(session, key_id)
    except NotFound as exc:
        raise click.ClickException(exc.message) from None
    click.echo(f"revoked key {record.id} (team '{record.team}')")


if __name__ == "__main__":
    main()
