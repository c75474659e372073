"""Counting what each served table model is asked, off the request thread, for drift reports.

A request hands its converted inputs to ``DriftMonitor.observe``, which only puts them on a
bounded queue (a full queue drops them: what is counted is then a sample of the inputs, and a
prediction never waits for drift). One background thread per serving process counts them over
the model's training profile (``automl.insight.drift.Counter``), every ``CONSUME_WAIT_S`` and in
one call per model for all that arrived meanwhile (a one-row count costs about 0.4 ms, 64 rows
about 0.5 ms: counted one by one, the counting took more CPU than the predictions), and, every
``flush_s`` seconds, adds its counts to the model's counts of the hour in the metadata store,
where every serving process's counts meet. Counts older than ``retention_days`` are dropped then
too.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np

from automl.insight.drift import merge
from automl.store import catalogue

if TYPE_CHECKING:
    from automl.serving.adapters import Batch
    from automl.serving.predictor import Predictor
    from automl.store import Store

log = logging.getLogger(__name__)

QUEUE_BATCHES = 1024  # one round's requests: 5,000 a second per process before any is dropped
PRUNE_EVERY_S = 3600.0
CONSUME_WAIT_S = 0.2  # the counting thread's nap between rounds (at 0.05 s, ~4 % of a serving process's CPU)


def hour_of(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def window_start(hours: int, now: datetime | None = None) -> datetime:
    """The first hour of the last ``hours`` whole hours (the current one included)."""
    return hour_of((now or datetime.now(UTC)) - timedelta(hours=hours - 1))


class DriftMonitor:
    def __init__(self, store: Store, flush_s: float, retention_days: float) -> None:
        self.store = store
        self.flush_s = flush_s
        self.retention = timedelta(days=retention_days)
        self.dropped = 0
        self._queue: queue.Queue[tuple[str, Any, Any]] = queue.Queue(QUEUE_BATCHES)
        self._totals: dict[str, tuple[int, dict[str, Any]]] = {}
        self._lock = threading.Lock()  # the totals, and one flush at a time
        self._consuming = threading.Lock()  # held while a batch is taken off the queue and counted
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._pruned = 0.0

    def observe(self, predictor: Predictor, batch: Batch) -> None:
        """Queue a table model's inputs for counting; never blocks."""
        counter = predictor.drift_counter
        if counter is None:
            return
        self._ensure_thread()
        try:
            self._queue.put_nowait((predictor.model_id, counter, batch.inputs))
        except queue.Full:
            self.dropped += 1

    def _ensure_thread(self) -> None:
        # Started by the first request of each process (in case a server forks after the app is built).
        if self._thread is not None and self._pid == os.getpid():
            return
        with self._lock:
            if self._thread is None or self._pid != os.getpid():
                self._pid = os.getpid()
                self._thread = threading.Thread(target=self._run, name="drift-monitor", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        next_flush = time.monotonic() + self.flush_s
        while True:
            # Taking the queued batches and counting them happen under ``_consuming``, which ``flush``
            # takes too: a report never misses a batch this thread has taken but not yet counted.
            with self._consuming:
                self._count_queued()
            # Outside the lock, so a report's flush gets its turn. The nap also lets one-row requests
            # gather into one counting call: a call costs about as much for 64 rows as for one.
            time.sleep(CONSUME_WAIT_S)
            if time.monotonic() >= next_flush:
                self.flush()
                next_flush = time.monotonic() + self.flush_s

    def _count_queued(self) -> None:
        """Count every batch now on the queue, each model's rows in one call."""
        by_model: dict[tuple[str, tuple[str, ...]], tuple[Any, list[dict[str, Any]]]] = {}
        while True:
            try:
                model_id, counter, inputs = self._queue.get_nowait()
            except queue.Empty:
                break
            if inputs:
                by_model.setdefault((model_id, tuple(sorted(inputs))), (counter, []))[1].append(inputs)
        for (model_id, keys), (counter, batches) in by_model.items():
            joined = batches[0] if len(batches) == 1 else {
                key: np.concatenate([batch[key] for batch in batches]) for key in keys}
            try:
                self._count((model_id, counter, joined))
            except Exception:  # never let one odd batch stop the counting
                log.exception("could not count a batch of prediction inputs for drift")

    def _count(self, item: tuple[str, Any, Any]) -> None:
        model_id, counter, inputs = item
        counts = counter.count(inputs)
        rows = len(next(iter(inputs.values()))) if inputs else 0
        with self._lock:
            total_rows, total = self._totals.get(model_id, (0, {}))
            self._totals[model_id] = (total_rows + rows, merge(total, counts))

    def flush(self) -> bool:
        """Count what is queued and add this process's counts to the store (also called before a report);
        False when the store could not take them (they wait for the next flush)."""
        with self._consuming:
            self._count_queued()
        with self._lock:
            totals, self._totals = self._totals, {}
            now = datetime.now(UTC)
            written = True
            for model_id, (rows, counts) in totals.items():  # one transaction each: one model's trouble stays its own
                try:
                    with self.store.session() as session:
                        if not catalogue.add_drift_counts(session, model_id, hour_of(now), rows, counts):
                            continue  # the model was removed since (a replaced interim model): nothing to keep
                except Exception as exc:  # the store busy or down for a moment, another process's insert first
                    log.warning("drift counts of model %s kept for the next flush: %s", model_id,
                                str(exc).splitlines()[0][:200])
                    kept_rows, kept = self._totals.get(model_id, (0, {}))
                    self._totals[model_id] = (kept_rows + rows, merge(kept, counts))
                    written = False
            if time.monotonic() - self._pruned >= PRUNE_EVERY_S:
                try:
                    with self.store.session() as session:
                        catalogue.prune_drift_counts(session, hour_of(now - self.retention))
                    self._pruned = time.monotonic()
                except Exception as exc:
                    log.warning("old drift counts not pruned yet: %s", str(exc).splitlines()[0][:200])
        return written
