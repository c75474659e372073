"""Liveness and readiness, answered over HTTP by the app and, when ``AUTOML_PROBE_PORT`` is set, by a
listener of their own in each serving process, so that probes answer even while every request thread
is busy (long batch scorings, slow clients): a saturated process is slow, not dead, and must not be
restarted for it.

The listener is a plain ``http.server`` on its own thread, bound with ``SO_REUSEPORT`` so that every
serving process listens on the same port (started from ``api.wsgi``). It answers
``GET /healthz`` and ``GET /readyz`` only, with the same bodies as the app.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from api.services import Services
from tasks.celery_app import broker_reachable

log = logging.getLogger(__name__)


def readiness(svc: Services) -> tuple[dict[str, Any], int]:
    """Deployed models loaded and warmed in this process, database and broker reachable: the body (counts and
    fixed messages, never ids or exception text: probes are unauthenticated) and 200 or 503."""
    status = svc.warmup.status()
    database = svc.store.ping()
    broker = broker_reachable(svc.celery)
    ready = status["ready"] and database and broker
    body: dict[str, Any] = {"status": "ready" if ready else "not_ready", "database": database, "broker": broker,
                            "listed": status["listed"], "deployed_models": status["deployed_models"],
                            "loaded": status["loaded"], "failed": len(status["failed"]),
                            "over_budget": status["over_budget"]}
    if not status["listed"]:
        body["message"] = ("Looking up the deployed models: the database has not answered yet (the log says why)."
                           if status["error"] else "Looking up the deployed models (starting).")
    elif not status["ready"]:
        body["message"] = f"Loading deployed models: {status['loaded']} of {status['deployed_models']} loaded so far."
    elif not database:
        body["message"] = "The metadata database is unreachable."
    elif not broker:
        body["message"] = "The task queue (broker) is unreachable."
    return body, 200 if ready else 503


class _ReusePortServer(ThreadingHTTPServer):
    daemon_threads = True

    def server_bind(self) -> None:
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        super().server_bind()


def start_probe_listener(svc: Services, host: str, port: int) -> ThreadingHTTPServer:
    """Serve /healthz and /readyz on ``host:port`` from a daemon thread; the server (``shutdown()`` stops it)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/healthz":
                body, status = {"status": "ok"}, 200
            elif self.path == "/readyz":
                try:
                    body, status = readiness(svc)
                except Exception:  # a probe must answer: not ready, and the log says why
                    log.exception("readiness check failed")
                    body, status = {"status": "not_ready", "message": "The readiness check failed (see the log)."}, 503
            else:
                body, status = {"status": "not_found", "message": "Probes: /healthz and /readyz only."}, 404
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:  # probes every few seconds: not logged
            return

    server = _ReusePortServer((host, port), Handler)
    threading.Thread(target=server.serve_forever, name="automl-probes", daemon=True).start()
    return server
