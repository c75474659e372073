"""Request ids, request logs, and ``/metrics`` in Prometheus' text format.

Every request gets an id (the caller's ``X-Request-ID`` when it is a sane token, else a new
one), returned in ``X-Request-ID`` and carried by every log line written while serving it.
Per-process counters (requests, latency, predictions) are summed over gunicorn's worker
processes through ``PROMETHEUS_MULTIPROC_DIR`` (set by ``api.gunicorn_conf``); service-wide
gauges (jobs, queue depth, heartbeats, trial durations) come from ``StoreCollector``.
"""

from __future__ import annotations

import logging
import os
import re
import time
import uuid
from typing import Any

from flask import Flask, Response, g, request
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest

from automl import observability

log = logging.getLogger("automl.requests")

REQUESTS = Counter("automl_http_requests_total", "HTTP requests by route and status.", ["method", "route", "status"])
LATENCY = Histogram("automl_http_request_duration_seconds", "HTTP request latency by route and status.",
                    ["method", "route", "status"],
                    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 120))
PREDICTIONS = Counter("automl_predictions_total", "Rows predicted, by endpoint (no model ids: /metrics is open; "
                      "per-model figures are for authenticated callers).", ["endpoint"])
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_QUIET = {"/healthz", "/readyz", "/metrics"}


def count_predictions(endpoint: str, rows: int) -> None:
    PREDICTIONS.labels(endpoint).inc(rows)


def _before() -> None:
    g.started = time.perf_counter()
    given = request.headers.get("X-Request-ID", "")
    g.request_id = given if _REQUEST_ID.match(given) else uuid.uuid4().hex
    g.request_id_token = observability.request_id.set(g.request_id)


def _after(response: Response) -> Response:
    route = request.url_rule.rule if request.url_rule is not None else "unmatched"
    elapsed = time.perf_counter() - g.get("started", time.perf_counter())
    REQUESTS.labels(request.method, route, str(response.status_code)).inc()
    LATENCY.labels(request.method, route, str(response.status_code)).observe(elapsed)
    response.headers["X-Request-ID"] = g.get("request_id", "")
    if request.path not in _QUIET:
        caller = g.get("caller")
        log.info("%s %s %s %.1f ms", request.method, request.path, response.status_code, 1000 * elapsed,
                 extra={"method": request.method, "path": request.path, "route": route,
                        "status": response.status_code, "duration_ms": round(1000 * elapsed, 2),
                        "key_id": caller.key_id if caller else None, "team": caller.scope.team if caller else None})
    return response


def _teardown(_exc: BaseException | None) -> None:
    token = g.pop("request_id_token", None)
    if token is not None:
        observability.request_id.reset(token)


def init_app(app: Flask, store_collector: Any) -> None:
    app.before_request(_before)
    app.after_request(_after)
    app.teardown_request(_teardown)

    @app.get("/metrics")
    def metrics() -> Response:
        """Prometheus metrics (no data of any dataset or model beyond ids)."""
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            from prometheus_client import multiprocess

            local = CollectorRegistry()
            multiprocess.MultiProcessCollector(local)
        else:
            local = REGISTRY
        service = CollectorRegistry()
        service.register(store_collector)
        return Response(generate_latest(local) + generate_latest(service), content_type=CONTENT_TYPE_LATEST)
