"""Every ``/api/v1`` and ``/v1`` request names its API key; views act in the key's team.

``authenticate`` runs before each request (the OpenAPI document, the docs, health and
metrics stay open: they carry no data). It checks ``Authorization: Bearer <key>``, keeps
the caller in ``flask.g``, refuses (403) a key whose role is below the view's (a GET needs
``read``, anything else ``write``, unless the view is marked with ``requires_role``), counts the
request against the key's rate limit when the view is marked with ``rate_limited``, and checks the
team's storage quota against the body's declared size when it is marked ``stores_upload``: all
before the body is read. Views read the caller's team with ``scope()``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from flask import Flask, Request, Response, current_app, g, request

from api.keys import HOW_TO_GET_A_KEY, RATE_LIMITED_ACTIONS, Caller
from api.services import Services, services
from automl.access import Role, Scope
from automl.errors import Forbidden, Unauthorized
from automl.usecases import quotas

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


def requires_role(role: Role) -> Callable[[F], F]:
    """The least role a key needs for this view (default: ``read`` for GET, ``write`` otherwise)."""

    def mark(view: F) -> F:
        view.requires_role = role  # type: ignore[attr-defined]
        return view

    return mark


def holds_slot(action: str) -> Callable[[F], F]:
    """The view's answer is long or heavy (a stream, a download): it holds one of the key's ``action`` slots
    (``api.keys.Slots``) from the call until the answer is closed."""

    def decorate(view: F) -> F:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            return with_slot(action, lambda: view(*args, **kwargs))

        return wrapper  # type: ignore[return-value]

    return decorate


def with_slot(action: str, answer: Callable[[], Any]) -> Response:
    """``answer()``'s response, holding one of the caller's ``action`` slots until it is closed."""
    caller: Caller = g.caller
    release = services().slots.enter(action, caller.key_id)
    try:
        response = current_app.make_response(answer())
    except BaseException:
        release()
        raise
    # A file answer (send_file) is passed to the server as is, and the server then closes only the file, not
    # the response: through the response, its close (and the release) always runs.
    response.direct_passthrough = False
    response.call_on_close(release)
    return response


def stores_upload(view: F) -> F:
    """The request's body is kept: refuse it (413) before it is read if it would pass the team's storage quota."""
    view.stores_upload = True  # type: ignore[attr-defined]
    return view


def _view_method(app: Flask, req: Request) -> Any:
    view = app.view_functions.get(req.endpoint or "")
    view_class = getattr(view, "view_class", None)
    return getattr(view_class, req.method.lower(), None) if view_class is not None else view


def needed_role(view_method: Any, http_method: str) -> Role:
    marked: Role | None = getattr(view_method, "requires_role", None)
    if marked is not None:
        return marked
    return Role.read if http_method in ("GET", "HEAD", "OPTIONS") else Role.write


def _check_role(caller: Caller, view_method: Any, http_method: str) -> None:
    if view_method is None:
        return  # no such route (or method): its own 404 or 405 answers
    needed = needed_role(view_method, http_method)
    if caller.role < needed:
        raise Forbidden(f"This request needs a key with the role '{needed.name}' or above; this key's role is "
                        f"'{caller.role.name}'. Ask an admin for such a key (`automl keys create --role "
                        f"{needed.name}`).")


def authenticate() -> None:
    req = request._get_current_object()  # type: ignore[attr-defined]  # one proxy lookup (see api.metrics)
    path = req.path
    if not path.startswith(PROTECTED_PREFIXES) or path.startswith(OPEN_PATHS):
        return
    scheme, _, secret = req.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise Unauthorized(f"This API needs an API key. {HOW_TO_GET_A_KEY}")
    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
    svc: Services = app.extensions["automl"]
    caller = svc.keys.caller(secret.strip())
    g.caller = caller
    view_method = _view_method(app, req)
    _check_role(caller, view_method, req.method)
    action = getattr(view_method, "rate_limited", None)
    if action is not None:
        svc.limits.hit(action, caller.key_id)
    if getattr(view_method, "stores_upload", False):
        quotas.check_storage(svc.store, svc.settings, caller.scope.team, req.content_length or 0)


def scope() -> Scope:
    """The authenticated caller's team (views behind ``authenticate`` only)."""
    caller: Caller = g.caller
    return caller.scope
