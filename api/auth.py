"""Every ``/api/v1`` and ``/v1`` request names its API key; views act in the key's team.

``authenticate`` runs before each request (the OpenAPI document, the docs, health and
metrics stay open: they carry no data). It checks ``Authorization: Bearer <key>``, keeps
the caller in ``flask.g`` and counts the request against the key's rate limit when the view
is marked with ``rate_limited``. Views read the caller's team with ``scope()``.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from flask import current_app, g, request

from automl.access import Scope, digest, matches, parse_key
from automl.errors import RateLimited, Unauthorized
from automl.store import Store, repository

log = logging.getLogger(__name__)

PROTECTED_PREFIXES = ("/api/v1/", "/v1/")
OPEN_PATHS = ("/api/v1/openapi.json", "/api/v1/docs")
TOUCH_EVERY_S = 60.0  # last_used_at is written at most this often per key and process
MAX_CACHED_KEYS = 10_000
RATE_LIMITED_ACTIONS = {"upload": "dataset upload", "jobs": "job submission", "predict": "prediction"}
HOW_TO_GET_A_KEY = ("Send 'Authorization: Bearer <key>'. An operator creates keys with "
                    "`automl keys create --team NAME`; the embedded mode stores its admin key in "
                    "<data_dir>/admin-key.")

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Caller:
    key_id: str
    scope: Scope


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
        return found

    def _look_up(self, key_id: str, secret: str, now: float) -> Caller | None:
        with self.store.session() as session:
            record = repository.get_key(session, key_id)
            if record is None or record.revoked_at is not None or not matches(secret, record.digest):
                return None
            if now - self._touched.get(key_id, -math.inf) > TOUCH_EVERY_S:
                repository.touch_key(session, key_id)
                self._touched[key_id] = now
            return Caller(key_id=key_id, scope=Scope(team=record.team, admin=record.admin))


class RateLimits:
    """Per-key request counts in a sliding window (the ``limits`` library), in Redis when configured
    so that every serving process and machine shares them. If the counter store is unreachable the
    request goes through (logged): an outage of Redis must not stop predictions."""

    def __init__(self, storage_url: str, limits: dict[str, str]) -> None:
        from limits import parse_many, storage, strategies

        self._storage = storage.storage_from_string(storage_url)
        self._limiter = strategies.SlidingWindowCounterRateLimiter(self._storage)
        self._limits = {action: parse_many(text) for action, text in limits.items() if text}

    def hit(self, action: str, key_id: str) -> None:
        for item in self._limits.get(action, []):
            try:
                allowed = self._limiter.hit(item, action, key_id)
                if allowed:
                    continue
                reset = self._limiter.get_window_stats(item, action, key_id).reset_time
            except Exception as exc:  # the counter store is down: serve rather than refuse
                log.warning("rate limit store unavailable, not counting: %s", exc)
                return
            retry_after = max(1, math.ceil(reset - time.time()))
            raise RateLimited(
                f"Too many {RATE_LIMITED_ACTIONS[action]} requests for this API key: the limit is {item}. "
                f"Retry after {retry_after} s.", retry_after)


def rate_limited(action: str) -> Callable[[F], F]:
    """Count calls of this view against the caller's ``action`` limit (checked before the body is read)."""
    if action not in RATE_LIMITED_ACTIONS:
        raise ValueError(f"unknown rate-limited action {action!r}")

    def mark(view: F) -> F:
        view.rate_limited = action  # type: ignore[attr-defined]
        return view

    return mark


def _view_action() -> str | None:
    view = current_app.view_functions.get(request.endpoint or "")
    view_class = getattr(view, "view_class", None)
    method = getattr(view_class, request.method.lower(), None) if view_class is not None else view
    return getattr(method, "rate_limited", None)


def authenticate() -> None:
    path = request.path
    if not path.startswith(PROTECTED_PREFIXES) or path.startswith(OPEN_PATHS):
        return
    from api.services import services

    scheme, _, secret = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise Unauthorized(f"This API needs an API key. {HOW_TO_GET_A_KEY}")
    svc = services()
    caller = svc.keys.caller(secret.strip())
    g.caller = caller
    action = _view_action()
    if action is not None:
        svc.limits.hit(action, caller.key_id)


def scope() -> Scope:
    """The authenticated caller's team (views behind ``authenticate`` only)."""
    caller: Caller = g.caller
    return caller.scope
