"""Loading deployed models when a serving process starts, and the readiness that waits for it.

Each serving process (an API server worker) loads every deployed model into its own cache,
pinned, and runs one row through it, in a background thread; until that is done the
process reports not ready, so a load balancer sends it no traffic and no client pays the
load. A deployed model that cannot be loaded is logged and reported, and does not keep
the process out of service for the others.

Pinned models are bounded by a memory budget per process (``AUTOML_DEPLOYED_MEMORY_MB``), estimated
from each model's files (``MEMORY_PER_BYTE_ON_DISK`` times their size): deployed models past it, in
deployment order, are not loaded at start nor pinned; they are loaded on first use like any other
model and may be evicted. So deploying many models cannot make every serving process run out of
memory and crash-loop.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

from automl.housekeeping import folder_bytes
from automl.serving.cache import ModelCache
from automl.store import Store, catalogue

log = logging.getLogger(__name__)

MEMORY_PER_BYTE_ON_DISK = 2.0  # weights in memory, plus the traced graph and optimizer-free copies


def estimated_bytes(model_dir: Path) -> int:
    """What a loaded model is expected to take in memory, from its files."""
    return int(MEMORY_PER_BYTE_ON_DISK * folder_bytes(model_dir))


class Warmup:
    """Loads the deployed models in a daemon thread started by ``start``, then every ``refresh_s``
    follows deploys and undeploys made through other processes (0: only at start)."""

    def __init__(self, store: Store, cache: ModelCache, refresh_s: float = 0, memory_budget_bytes: int = 0) -> None:
        self.store = store
        self.cache = cache
        self.refresh_s = refresh_s
        self.memory_budget_bytes = memory_budget_bytes  # 0: no limit
        self._pinned_bytes: dict[str, int] = {}
        self._over_budget: set[str] = set()
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._stop = threading.Event()
        self._expected: set[str] = set()
        self._loaded: list[str] = []
        self._failed: dict[str, str] = {}
        self._error: str | None = None
        self._listed = False
        self.seconds: float | None = None

    def start(self) -> None:
        threading.Thread(target=self.run, name="automl-warmup", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()

    def _deployed(self) -> dict[str, Path]:
        with self.store.session() as session:
            return {m.id: Path(m.path or "") for m in catalogue.deployed_models(session)}

    def run(self) -> None:
        started = time.monotonic()
        try:
            while True:
                try:
                    models = list(self._deployed().items())
                    break
                except Exception as exc:  # the database may come up after us: keep trying, report meanwhile
                    with self._lock:
                        self._error = f"cannot list deployed models: {exc.__class__.__name__}"
                    log.warning("warm-up: %s; retrying in 2 s", exc)
                    if self._stop.wait(2):
                        return
            with self._lock:
                self._error = None
                self._listed = True
                self._expected.update(model_id for model_id, _ in models)
            for model_id, path in models:
                self.load(model_id, path)
        finally:
            self.seconds = time.monotonic() - started
            self._done.set()
            log.info("warm-up: %d deployed model(s) loaded, %d failed, in %.1f s",
                     len(self._loaded), len(self._failed), self.seconds)
        while self.refresh_s and not self._stop.wait(self.refresh_s):
            self.refresh()

    def refresh(self) -> None:
        """Load models deployed since, unpin models undeployed since, and drop loaded models deleted since,
        through any process."""
        try:
            current = self._deployed()
            loaded = self.cache.loaded
            with self.store.session() as session:
                gone = set(loaded) - catalogue.existing_models(session, loaded)
        except Exception as exc:
            log.warning("deployed models not refreshed: %s", exc)
            return
        for model_id in gone:
            self.cache.discard(model_id)
        with self._lock:
            known = set(self._expected)
        for model_id in known - current.keys():
            self.forget(model_id)
        with self._lock:
            retry = self._over_budget & current.keys()  # room may have been freed since
            self._over_budget -= retry
            self._expected -= retry
        for model_id in [m for m in current if m not in known] + [m for m in current if m in retry]:
            self.load(model_id, current[model_id])

    def load(self, model_id: str, path: Path) -> None:
        """Load and pin one model (also used when a model is deployed while serving), if it fits the memory
        budget; else leave it to be loaded on first use."""
        size = estimated_bytes(path) if self.memory_budget_bytes else 0
        with self._lock:
            self._expected.add(model_id)
            if self.memory_budget_bytes and model_id not in self._pinned_bytes:
                if sum(self._pinned_bytes.values()) + size > self.memory_budget_bytes:
                    self._over_budget.add(model_id)
                    log.warning("deployed model %s (about %d MiB) is past this process's memory budget for pinned "
                                "models (AUTOML_DEPLOYED_MEMORY_MB): not pinned, loaded on first use", model_id,
                                size >> 20)
                    return
                self._pinned_bytes[model_id] = size
        try:
            self.cache.get(model_id, path, pin=True)
        except Exception as exc:
            log.exception("warm-up: deployed model %s could not be loaded", model_id)
            with self._lock:
                self._failed[model_id] = f"{exc.__class__.__name__}: {exc}"[:500]
                self._pinned_bytes.pop(model_id, None)
            return
        with self._lock:
            self._failed.pop(model_id, None)
            if model_id not in self._loaded:
                self._loaded.append(model_id)

    def forget(self, model_id: str) -> None:
        """The model was undeployed: unpin it (it may still be evicted later like any other)."""
        with self._lock:
            self._expected.discard(model_id)
            self._failed.pop(model_id, None)
            self._pinned_bytes.pop(model_id, None)
            self._over_budget.discard(model_id)
            if model_id in self._loaded:
                self._loaded.remove(model_id)
        self.cache.unpin(model_id)

    def wait(self, timeout: float | None = None) -> bool:
        return self._done.wait(timeout)

    @property
    def ready(self) -> bool:
        return self._done.is_set()

    def status(self) -> dict[str, Any]:
        with self._lock:
            return {
                "ready": self._done.is_set(),
                "listed": self._listed,
                "deployed_models": len(self._expected),
                "loaded": len(self._loaded),
                "failed": dict(self._failed),
                "over_budget": len(self._over_budget),
                "error": self._error,
            }
