"""Typed errors of the client, each carrying the server's own message.

The service answers every failure with ``{"code", "status", "error", "message", "errors"}``;
:func:`error_from_response` turns that body into the matching exception, chosen by the body's
``error`` code (the HTTP status only when the body has none), so notebook code can ``except
NotFound``, ``except NotReady`` or ``except InvalidRequest as exc: print(exc.errors)``.
"""

from __future__ import annotations

from typing import Any


class AutomlError(Exception):
    """Anything that went wrong talking to the service."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ConnectionFailed(AutomlError):
    """The service could not be reached (wrong ``--url``, not started, network down)."""


class ServiceError(AutomlError):
    """The service answered with an error status; ``message`` is its explanation."""

    def __init__(self, message: str, status: int, error: str | None = None,
                 errors: dict[str, Any] | None = None, body: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.errors = errors or {}
        self.body = body

    def __str__(self) -> str:
        text = f"{self.status} {self.message}"
        if self.errors:
            details = "; ".join(f"{where}: {_flatten(problems)}" for where, problems in self.errors.items())
            text += f" ({details})"
        return text


class InvalidRequest(ServiceError):
    """400/415/422: the request or the file is not acceptable; ``errors`` says where."""


class Unauthorized(ServiceError):
    """401: no API key, or one the service does not accept (``--api-key`` / ``AUTOML_API_KEY``)."""


class Forbidden(ServiceError):
    """403: the key may not do this."""


class NotFound(ServiceError):
    """404: no such dataset, job, model or alias (or it belongs to another team)."""


class Conflict(ServiceError):
    """409: not possible in the current state (e.g. a model still training)."""


class TooLarge(ServiceError):
    """413: the upload is over one of the service's limits."""


class RateLimited(ServiceError):
    """429: over the key's rate limit; ``retry_after`` is how many seconds to wait."""

    def __init__(self, *args: Any, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.retry_after = retry_after


class NotReady(Conflict):
    """409 ``not_ready``: the resource exists but cannot do this yet (a model still training, a job
    without TensorBoard logs yet); try again later."""


class QuotaExceeded(Conflict):
    """409 ``quota_exceeded``: the team already has as many deployed models or active jobs as its quota
    allows (``Client.usage()`` shows them); undeploy, cancel or wait first."""


class ServerError(ServiceError):
    """5xx: the service failed (503: a part of it, such as the broker, is down; try again)."""


class Unavailable(ServerError):
    """503 ``broker_unavailable`` / ``database_unavailable``: a part of the service is down; retry shortly."""


class JobFailed(AutomlError):
    """A job :meth:`~automl.client.Client.wait` waited for ended failed or cancelled."""

    def __init__(self, job: dict[str, Any]) -> None:
        reason = job.get("error") or job.get("stop_reason") or job.get("state")
        super().__init__(f"job {job.get('id')} {job.get('state')}: {reason}")
        self.job = job


class WaitTimeout(AutomlError):
    """A job did not finish within the ``timeout`` given to ``wait``."""

    def __init__(self, job: dict[str, Any], timeout: float) -> None:
        super().__init__(f"job {job.get('id')} is still {job.get('state')} after {timeout:g} s")
        self.job = job


# The server's stable error codes (the body's ``error``), as MLflow's and BentoML's clients map
# them: the code decides the type, the status only when the code is unknown (a proxy's answer).
BY_CODE: dict[str, type[ServiceError]] = {
    "invalid_dataset": InvalidRequest, "invalid_job": InvalidRequest, "invalid_instances": InvalidRequest,
    "invalid_request": InvalidRequest, "unsupported_for_task": InvalidRequest, "too_large": TooLarge,
    "not_found": NotFound, "conflict": Conflict, "not_ready": NotReady, "quota_exceeded": QuotaExceeded,
    "unauthorized": Unauthorized, "forbidden": Forbidden, "rate_limited": RateLimited,
    "broker_unavailable": Unavailable, "limits_unavailable": Unavailable, "database_unavailable": Unavailable,
    "search_failed": ServerError, "internal_error": ServerError,
}
_BY_STATUS: dict[int, type[ServiceError]] = {
    400: InvalidRequest, 401: Unauthorized, 403: Forbidden, 404: NotFound, 409: Conflict,
    413: TooLarge, 415: InvalidRequest, 422: InvalidRequest, 429: RateLimited, 503: Unavailable,
}


def error_from_response(status: int, reason: str, body: Any, retry_after: str | None = None) -> ServiceError:
    """The exception for an error answer (``body``: the parsed JSON, or the text when it was not JSON)."""
    if isinstance(body, dict):
        message = str(body.get("message") or reason)
        error, errors = body.get("error"), body.get("errors")
    else:
        message = (str(body).strip()[:500] if body else "") or reason
        error, errors = None, None
    cls = BY_CODE.get(str(error)) or _BY_STATUS.get(status) or (ServerError if status >= 500 else InvalidRequest)
    kwargs: dict[str, Any] = {"error": error, "errors": errors if isinstance(errors, dict) else None, "body": body}
    if cls is RateLimited:
        kwargs["retry_after"] = _seconds(retry_after)
    return cls(message, status, **kwargs)


def _seconds(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _flatten(problems: Any) -> str:
    if isinstance(problems, list):
        return ", ".join(_flatten(p) for p in problems)
    if isinstance(problems, dict):
        return "; ".join(f"{k}: {_flatten(v)}" for k, v in problems.items())
    return str(problems)
