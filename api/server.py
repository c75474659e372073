"""The API's HTTP server: granian serving ``api.wsgi:app``, run as ``python -m api.server``.

Used by ``automl serve`` and by the Docker image and Kubernetes manifests alike. granian (a Rust HTTP
server: its own threads parse HTTP, accept and keep connections alive) runs ``AUTOML_API_WORKERS``
processes, each calling the Flask app from ``AUTOML_API_THREADS`` blocking threads. Against gunicorn's
threaded worker, which this replaced, it answered about 1.2x the one-row predictions per second on the
same app (``docs/benchmarks.md``, serving): gunicorn's main loop took every kept-alive connection back
through a pipe between two requests, in Python.

Each worker process keeps its own Prometheus counters; they are shared through files in
``PROMETHEUS_MULTIPROC_DIR`` (made fresh here, before the workers start, removed when the server
stops) and summed when ``/metrics`` is scraped. The service's metrics are counters and histograms
only, whose files stay valid after their process ends, so no per-process cleanup is needed.
``AUTOML_PROBE_PORT``: each worker also answers the probes there (``api.wsgi``, ``api.probes``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from collections.abc import MutableMapping
from dataclasses import dataclass

GRACEFUL_S = 30  # a stopped server waits this long for requests in flight before killing its workers
HEADER_READ_TIMEOUT_MS = 30_000  # a client that opened a connection and sends no request is dropped after it


@dataclass(frozen=True)
class ServerOptions:
    host: str
    port: int
    workers: int
    threads: int
    app: str = "api.wsgi:app"  # ``module:attribute``, or ``module:factory()`` for a function returning the app

    @classmethod
    def from_env(cls) -> ServerOptions:
        host, _, port = os.environ.get("AUTOML_BIND", "127.0.0.1:8000").rpartition(":")
        return cls(host=host.strip("[]") or "0.0.0.0", port=int(port),
                   workers=int(os.environ.get("AUTOML_API_WORKERS", "2")),
                   threads=int(os.environ.get("AUTOML_API_THREADS", "4")))


def fresh_metrics_dir() -> str:
    """``PROMETHEUS_MULTIPROC_DIR`` (or a new temporary folder), emptied: counters from an earlier run would
    be summed in. Set in this process's environment, which the workers inherit."""
    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or tempfile.mkdtemp(prefix="automl-metrics-")
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = folder
    return folder


def drop_request_variables(environ: MutableMapping[str, str]) -> list[str]:
    """Remove ``HTTP_*``, ``CONTENT_LENGTH`` and ``CONTENT_TYPE`` from the process environment; their names.

    granian starts every request's WSGI environ from a copy of the process environment, so such a
    variable (``HTTP_PROXY`` is a common one) would read, in a request without that header, as one the
    client sent. The API makes no outgoing HTTP calls that a proxy variable could be meant for."""
    names = [name for name in environ if name.startswith("HTTP_") or name in ("CONTENT_LENGTH", "CONTENT_TYPE")]
    for name in names:
        del environ[name]
    return names


def serve(options: ServerOptions) -> None:
    """Run granian until SIGTERM or SIGINT (then wait up to ``GRACEFUL_S`` for requests in flight)."""
    from granian.constants import HTTPModes, Interfaces
    from granian.http import HTTP1Settings
    from granian.log import LogLevels
    from granian.server import Server

    from automl.observability import configure_logging
    from automl.settings import Settings

    settings = Settings()
    configure_logging(settings.log_level, settings.log_format)  # granian's own lines too: JSON where asked
    folder = fresh_metrics_dir()
    drop_request_variables(os.environ)
    # The workers find the probe listener's address here (``api.wsgi``).
    os.environ["AUTOML_BIND"] = f"{options.host}:{options.port}"
    factory = options.app.endswith("()")
    server = Server(
        options.app.removesuffix("()"),
        factory=factory,
        address=options.host,
        port=options.port,
        interface=Interfaces.WSGI,
        workers=options.workers,
        blocking_threads=options.threads,
        http=HTTPModes.http1,
        http1_settings=HTTP1Settings(header_read_timeout=HEADER_READ_TIMEOUT_MS, keep_alive=True),
        websockets=False,
        log_access=False,  # the app logs every request itself, with its request id (and as JSON when asked)
        log_level=LogLevels(settings.log_level.lower()),
        log_dictconfig={"version": 1, "disable_existing_loggers": False,
                        "loggers": {"_granian": {"propagate": True}}},  # to the service's handler, not its own
        respawn_failed_workers=True,  # a worker that dies (killed for memory, say) is started again
        workers_kill_timeout=GRACEFUL_S,
    )
    server.on_shutdown(lambda: shutil.rmtree(folder, ignore_errors=True))
    server.serve()


def main(argv: list[str] | None = None) -> None:
    defaults = ServerOptions.from_env()
    parser = argparse.ArgumentParser(prog="python -m api.server", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default=defaults.host, help="default: AUTOML_BIND's host")
    parser.add_argument("--port", type=int, default=defaults.port, help="default: AUTOML_BIND's port")
    parser.add_argument("--workers", type=int, default=defaults.workers, help="default: AUTOML_API_WORKERS or 2")
    parser.add_argument("--threads", type=int, default=defaults.threads,
                        help="request threads per worker; default: AUTOML_API_THREADS or 4")
    parser.add_argument("--app", default=defaults.app,
                        help="the WSGI app, module:attribute or module:factory() (benchmarks mount others in it)")
    args = parser.parse_args(argv)
    serve(ServerOptions(host=args.host, port=args.port, workers=max(1, args.workers), threads=max(1, args.threads),
                        app=args.app))


if __name__ == "__main__":
    main()
