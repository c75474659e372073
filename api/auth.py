"""Every ``/api/v1`` and ``/v1`` request names its API key; views act in the key's team.

``authenticate`` runs before each request (the OpenAPI document, the docs, health and
metrics stay open: they carry no data). It checks ``Authorization: Bearer <key>``, keeps
the caller in ``flask.g`` and counts the request against the key's rate limit when the view
is marked with ``rate_limited``. Views read the caller's team with ``scope()``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from flask import current_app, g, request

from api.keys import HOW_TO_GET_A_KEY, RATE_LIMITED_ACTIONS, Caller
from api.services import services
from automl.access import Scope
from automl.errors import Unauthorized

PROTECTED_PREFIXES = ("/api/v1/", "/v1/")
OPEN_PATHS = ("/api/v1/openapi.json", "/api/v1/docs")

F = TypeVar("F", bound=Callable[..., Any])


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
