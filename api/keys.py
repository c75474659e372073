"""Who is calling: API keys checked against the store (cached briefly), and per-key rate limits.

The per-process objects that ``api.services`` holds; ``api.auth`` applies them to each request.
Nothing here reads the Flask request.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from limits import parse_many, storage, strategies
from limits.storage import MemoryStorage
from prometheus_client import Counter

from automl.access import Role, Scope, digest, matches, parse_key
from automl.errors import LimitsUnavailable, RateLimited, Unauthorized
from automl.store import Store, api_keys
from automl.store.records import utcnow

log = logging.getLogger(__name__)

TOUCH_EVERY_S = 60.0  # last_used_at is written at most this often per key and process
MAX_CACHED_KEYS = 10_000
RATE_LIMITED_ACTIONS = {"upload": "dataset upload", "jobs": "job submission", "predict": "prediction"}
HOW_TO_GET_A_KEY = ("Send 'Authorization: Bearer <key>'. An operator creates keys with "
                    "`automl keys create --team NAME [--role predict|read|write|admin]`; the embedded mode "
                    "stores its admin key in <data_dir>/admin-key.")


@dataclass(frozen=True)
class Caller:
    key_id: str
    scope: Scope
    role: Role
    expires_at: datetime | None = None


class KeyRing:
    """Checks keys against the store, trusting an answer (a valid or an invalid key) for ``ttl_s``."""

    def __init__(self, store: Store, ttl_s: float) -> None:
        self.store = store
        self.ttl_s = ttl_s
        self._cache: dict[str, tuple[float, Caller | None]] = {}
        self._touched: dict[str, float] = {}
        self._lock = threading.Lock()

    def caller(self, secret: str) -> Caller:
        key_id = parse_key(secret)
        if key_id is None:
            raise Unauthorized(f"The API key is malformed (keys look like amk_<8 hex>_<43 characters>). "
                               f"{HOW_TO_GET_A_KEY}")
        fingerprint = digest(secret)
        now = time.monotonic()
        with self._lock:
            cached = self._cache.get(fingerprint)
        if cached is not None and cached[0] > now:
            found = cached[1]
        else:
            found = self._look_up(key_id, secret, now)
            with self._lock:
                if len(self._cache) >= MAX_CACHED_KEYS:
                    self._cache.clear()
                self._cache[fingerprint] = (now + self.ttl_s, found)
        if found is None:
            raise Unauthorized(f"The API key is not valid: unknown or revoked. {HOW_TO_GET_A_KEY}")
        if found.expires_at is not None and found.expires_at <= utcnow():
            raise Unauthorized(f"The API key expired at {found.expires_at.isoformat(timespec='seconds')}. "
                               f"{HOW_TO_GET_A_KEY}")
        return found

    def _look_up(self, key_id: str, secret: str, now: float) -> Caller | None:
        with self.store.session() as session:
            record = api_keys.get_key(session, key_id)
            if record is None or record.revoked_at is not None or not matches(secret, record.digest):
                return None
            if now - self._touched.get(key_id, -math.inf) > TOUCH_EVERY_S:
                api_keys.touch_key(session, key_id)
                self._touched[key_id] = now
            role = Role.parse(record.role)
            return Caller(key_id=key_id, scope=Scope(team=record.team, admin=role is Role.admin), role=role,
                          expires_at=record.expires_at)


SLOT_NAMES = {"stream": ("event streams", "AUTOML_KEY_MAX_STREAMS"),
              "download": ("downloads (models, TensorBoard logs)", "AUTOML_KEY_MAX_DOWNLOADS"),
              "batch": ("batch scorings", "AUTOML_KEY_MAX_BATCH_SCORING")}


class Slots:
    """Per-key limits on long or heavy requests held open at once (event streams, downloads, batch
    scoring), counted in this serving process: one key cannot hold every request thread."""

    def __init__(self, limits: dict[str, int]) -> None:
        self._limits = limits
        self._held: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()

    def enter(self, action: str, key_id: str) -> Callable[[], None]:
        """Take a slot (429 when the key holds them all); call the answer once to give it back."""
        limit = self._limits.get(action, 0)
        if not limit:
            return lambda: None
        slot = (action, key_id)
        with self._lock:
            if self._held.get(slot, 0) >= limit:
                what, setting = SLOT_NAMES[action]
                raise RateLimited(f"This API key already has {limit} {what} open in this serving process, its "
                                  f"limit ({setting}). Wait for one to finish, then retry.", 5)
            self._held[slot] = self._held.get(slot, 0) + 1
        given_back = False

        def release() -> None:
            nonlocal given_back
            with self._lock:
                if given_back:
                    return
                given_back = True
                left = self._held[slot] - 1
                if left:
                    self._held[slot] = left
                else:
                    del self._held[slot]

        return release

    def held(self, action: str, key_id: str) -> int:
        with self._lock:
            return self._held.get((action, key_id), 0)


STORE_FAILURES = Counter("automl_rate_limit_store_failures_total",
                         "Requests whose rate limit could not be counted because the counter store was unreachable "
                         "(served uncounted when AUTOML_RATE_LIMIT_FAIL_OPEN, else refused with 503).", ["action"])


class RateLimits:
    """Per-key request counts in a sliding window (the ``limits`` library), in Redis when configured
    so that every serving process and machine shares them.

    If the counter store is unreachable, ``fail_open`` (the default) serves the request uncounted: an
    outage of Redis must not stop predictions. Each such request is logged and counted
    (``automl_rate_limit_store_failures_total``), so an alert can fire; ``fail_open=False`` refuses
    them with 503 instead, for deployments where an uncounted key is worse than an outage."""

    def __init__(self, storage_url: str, limits: dict[str, str], fail_open: bool = True) -> None:
        self.fail_open = fail_open
        self._storage = (SweptMemoryStorage() if storage_url.startswith("memory://")
                         else storage.storage_from_string(storage_url))
        self._limiter = strategies.SlidingWindowCounterRateLimiter(self._storage)
        self._limits = {action: parse_many(text) for action, text in limits.items() if text}

    def hit(self, action: str, key_id: str) -> None:
        for item in self._limits.get(action, []):
            try:
                allowed = self._limiter.hit(item, action, key_id)
                if allowed:
                    continue
                reset = self._limiter.get_window_stats(item, action, key_id).reset_time
            except Exception as exc:  # the counter store is down
                STORE_FAILURES.labels(action).inc()
                if not self.fail_open:
                    log.error("rate limit store unavailable, refusing: %s", exc)
                    raise LimitsUnavailable("Request limits cannot be checked right now (their store is "
                                            "unreachable). Try again shortly.") from exc
                log.warning("rate limit store unavailable, serving uncounted: %s", exc)
                return
            retry_after = max(1, math.ceil(reset - time.time()))
            raise RateLimited(
                f"Too many {RATE_LIMITED_ACTIONS[action]} requests for this API key: the limit is {item}. "
                f"Retry after {retry_after} s.", retry_after)


SWEEP_EVERY_S = 1.0


class SweptMemoryStorage(MemoryStorage):
    """``limits``' in-memory store, its expired entries swept on the calling thread at most once a
    second. The library's own store starts a new 10 ms ``threading.Timer`` thread for the sweep on
    almost every hit: under one-row predictions that was ~5 % of a serving process's CPU. Reads
    already drop a key that has expired, so the sweep only bounds the memory of keys no longer used.
    ``tests/unit/test_access.py`` pins the library methods relied on here."""

    def __init__(self) -> None:
        super().__init__()
        self._next_sweep = 0.0
        self._sweeping = threading.Lock()

    def _MemoryStorage__schedule_expiry(self) -> None:  # the private method of the library it replaces
        now = time.monotonic()
        if now < self._next_sweep or not self._sweeping.acquire(blocking=False):
            return
        try:
            self._next_sweep = now + SWEEP_EVERY_S
            self._MemoryStorage__expire_events()  # type: ignore[attr-defined]
        finally:
            self._sweeping.release()
