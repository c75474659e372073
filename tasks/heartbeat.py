"""Keeps a worker's leases alive from a background thread, however long an epoch takes.

A lease lasts ``AUTOML_JOB_LEASE_S`` and is renewed every quarter of that. If the process
dies (SIGKILL, out of memory), renewals stop and the reaper hands the work to another
worker once the lease has expired; nobody waits for the broker's visibility timeout.
"""

from __future__ import annotations

import logging
import threading
from types import TracebackType

from automl.store import Store, coordination

log = logging.getLogger(__name__)


def beat_interval(lease_s: float) -> float:
    """Seconds between a heartbeat's renewals of a lease of ``lease_s``: a quarter of it (at least 0.5)."""
    return max(lease_s / 4, 0.5)


class Heartbeat:
    def __init__(self, store: Store, job_id: str, lane: int | None, owner: str, lease_s: int,
                 job_lease: bool = False) -> None:
        self.store = store
        self.job_id = job_id
        self.lane = lane
        self.owner = owner
        self.lease_s = lease_s
        self.job_lease = job_lease
        self.lost = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-{job_id}", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object | TracebackType) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def beat(self) -> None:
        with self.store.session() as session:
            if self.lane is not None and not coordination.renew_lane(session, self.job_id, self.lane, self.owner,
                                                                   self.lease_s):
                self.lost = True
            if self.job_lease and not coordination.renew_lease(session, self.job_id, self.owner, self.lease_s):
                self.lost = True

    def _run(self) -> None:
        interval = beat_interval(self.lease_s)
        while not self._stop.wait(interval):
            try:
                self.beat()
            except Exception as exc:  # the database blinked: the next beat tries again
                log.warning("job %s: lease renewal failed: %s", self.job_id, exc)
            if self.lost:
                log.warning("job %s lane %s: lease lost to another worker", self.job_id, self.lane)
                return
