"""Logs and metrics shared by the API and the workers.

Logs: ``AUTOML_LOG_FORMAT=json`` writes one JSON object per line (python-json-logger) with the
request id (API) or the job, lane and trial ids (workers), taken from context variables that
the request hooks and the task set; ``text`` (the default) writes the same fields in plain text.

Metrics: the process-local ones (HTTP requests, predictions) live in ``api.metrics``; the
service-wide ones (jobs by state, queue depth, worker heartbeats, trial durations) are read
from the metadata store and the broker when Prometheus scrapes, by ``StoreCollector`` (deployed models'
input drift included), so that
every API replica reports the same truth and no worker needs a metrics port.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from datetime import timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from automl.store import Store

request_id: ContextVar[str | None] = ContextVar("request_id", default=None)
job_id: ContextVar[str | None] = ContextVar("job_id", default=None)
lane: ContextVar[int | None] = ContextVar("lane", default=None)
trial_id: ContextVar[str | None] = ContextVar("trial_id", default=None)
_CONTEXT: dict[str, ContextVar[Any]] = {"request_id": request_id, "job_id": job_id, "lane": lane,
                                        "trial_id": trial_id}
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s%(context)s"


class ContextFilter(logging.Filter):
    """Puts the ids of the current request or task on every record (and a text suffix of them)."""

    def filter(self, record: logging.LogRecord) -> bool:
        present = {}
        for name, variable in _CONTEXT.items():
            value = variable.get()
            setattr(record, name, value)
            if value is not None:
                present[name] = value
        record.context = "".join(f" {k}={v}" for k, v in present.items())
        return True


def configure_logging(level: str, fmt: str) -> None:
    """One handler on the root logger, in ``json`` or ``text``; idempotent."""
    # Neither format writes where a call was made, its thread or its process's name: not looking them up
    # for every record (the Logging HOWTO's "Optimization") saves a third of a line's cost, and the
    # service writes a line per request.
    logging._srcfile = None
    logging.logThreads = False
    logging.logMultiprocessing = False
    root = logging.getLogger()
    handler = next((h for h in root.handlers if getattr(h, "automl", False)), None)
    if handler is None:
        handler = logging.StreamHandler(sys.stderr)
        handler.automl = True  # type: ignore[attr-defined]
        handler.addFilter(ContextFilter())
        for other in list(root.handlers):
            root.removeHandler(other)
        root.addHandler(handler)
    if fmt == "json":
        from pythonjsonlogger.json import JsonFormatter

        handler.setFormatter(JsonFormatter(
            "%(asctime)s %(levelname)s %(name)s %(message)s",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger", "process": "pid"},
            reserved_attrs=[*_RESERVED, "context"],
        ))
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    root.setLevel(level)


# Standard LogRecord attributes: not repeated as JSON fields (the ids from the context are kept, and
# the process id, as "pid": which API server or pool process wrote the line).
_RESERVED = [
    "args", "created", "exc_info", "exc_text", "filename", "funcName", "levelno", "lineno", "module", "msecs",
    "msg", "pathname", "processName", "relativeCreated", "stack_info", "thread", "threadName",
    "taskName",
]


class StoreCollector:
    """Prometheus collector for service-wide state, read at scrape time."""

    def __init__(self, store: Store, queue_depth: Callable[[], int | None], lease_s: float) -> None:
        self.store = store
        self.queue_depth = queue_depth
        self.lease_s = lease_s

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily

        from automl.store import searches
        from automl.store.records import JobState, utcnow

        with self.store.session() as session:
            jobs = searches.count_jobs_by_state(session)
            leases = searches.held_leases(session)
            durations = searches.trial_durations(session)
        states = GaugeMetricFamily("automl_jobs", "Jobs by state.", labels=["state"])
        for state in JobState:
            states.add_metric([state.value], jobs.get(state.value, 0))
        yield states

        depth = self.queue_depth()
        if depth is not None:
            yield GaugeMetricFamily("automl_queue_depth", "Messages waiting in the task queue.", value=depth)

        now = utcnow()
        beats = GaugeMetricFamily("automl_worker_heartbeat_age_seconds",
                                  "Seconds since each busy worker last renewed its lease.", labels=["worker"])
        for owner, expires in leases.items():
            last_beat = expires - timedelta(seconds=self.lease_s)
            beats.add_metric([owner], max(0.0, (now - last_beat).total_seconds()))
        yield beats
        yield GaugeMetricFamily("automl_busy_workers", "Workers holding a live lease on a trial.",
                                value=sum(1 for expires in leases.values() if expires > now))

        bounds = [1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, float("inf")]
        buckets = [(str(b) if b != float("inf") else "+Inf", sum(1 for d in durations if d <= b)) for b in bounds]
        yield HistogramMetricFamily("automl_trial_duration_seconds", "Wall time of finished trials.",
                                    buckets=buckets, sum_value=sum(durations))
        yield from self._drift(now)

    def _drift(self, now: Any) -> Any:
        """How many deployed table models' inputs drifted over the last 24 hours, and the largest PSI of any
        of their columns. No model ids or column names: /metrics is unauthenticated; each model's own report
        is ``GET /api/v1/models/{id}/drift``."""
        from prometheus_client.core import GaugeMetricFamily

        from automl.insight import drift
        from automl.serving.drift import window_start
        from automl.store import catalogue

        drifted, largest, watched = 0, 0.0, 0
        since = window_start(24, now)
        with self.store.session() as session:
            for model in catalogue.deployed_models(session):
                if not model.profile:
                    continue
                watched += 1
                _, counts = catalogue.drift_counts_since(session, model.id, since)
                judged = [c for c in drift.report(model.profile, counts) if c["drifted"] is not None]
                drifted += any(c["drifted"] for c in judged)
                largest = max([largest, *(c["psi"] for c in judged)])
        yield GaugeMetricFamily("automl_deployed_models_input_drifted",
                                f"Deployed table models with at least one input column over the drift threshold "
                                f"(PSI {drift.THRESHOLD}) in the last 24 h.", value=drifted)
        yield GaugeMetricFamily("automl_deployed_models_watched_for_drift",
                                "Deployed table models whose inputs are compared with their training rows.",
                                value=watched)
        yield GaugeMetricFamily("automl_input_drift_psi_max",
                                f"The largest PSI of any deployed model's input column over the last 24 h (judged from "
                                f"{drift.MIN_ROWS} rows).",
                                value=largest)
