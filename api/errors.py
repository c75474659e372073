"""One error body for every failure, and one table from domain error codes to HTTP status.

Body: ``{"code": <http status>, "status": <reason>, "error": <domain code>, "message": ...,
"errors": {field: [problems]}}``. Views never catch domain errors themselves.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from flask import Flask, current_app, jsonify, request
from flask.typing import ResponseReturnValue
from flask_smorest import Api
from marshmallow import Schema, fields
from sqlalchemy.exc import OperationalError
from werkzeug.exceptions import HTTPException, InternalServerError

from automl.errors import AutomlError, RateLimited, TooLarge, Unauthorized

log = logging.getLogger(__name__)

ERROR_CODE_TO_HTTP_STATUS: dict[str, int] = {
    "invalid_dataset": 422,
    "too_large": 413,
    "invalid_job": 422,
    "invalid_instances": 422,
    "invalid_request": 422,
    "unsupported_for_task": 422,
    "not_found": 404,
    "conflict": 409,
    "unauthorized": 401,
    "forbidden": 403,
    "rate_limited": 429,
    "quota_exceeded": 409,
    "not_ready": 409,
    "broker_unavailable": 503,
    "limits_unavailable": 503,
    "search_failed": 500,
}

_HINTS = {
    413: "The request body is larger than this service accepts (AUTOML_MAX_UPLOAD_BYTES).",
    405: "This method is not allowed on this URL; see /api/v1/docs.",
    404: "No such URL; see /api/v1/docs for the API.",
}


class ErrorBodySchema(Schema):
    """Every error answer (documented as each operation's ``default`` response)."""

    code = fields.Integer(metadata={"description": "The HTTP status."})
    status = fields.String(metadata={"description": "The HTTP reason phrase."})
    error = fields.String(metadata={"description": "A stable code: not_found, invalid_dataset, rate_limited, ..."})
    message = fields.String(metadata={"description": "What went wrong and what to do about it."})
    errors = fields.Dict(metadata={"description": "Problems by field or location (e.g. instances.3.age)."})


class AutomlApi(Api):
    """flask-smorest's Api, documenting our error body."""

    ERROR_SCHEMA = ErrorBodySchema


def _body(status: int, reason: str, error: str, message: str, errors: Any = None) -> dict[str, Any]:
    return {"code": status, "status": reason, "error": error, "message": message, "errors": errors or {}}


def _flatten(messages: Any, prefix: str = "") -> list[str]:
    if isinstance(messages, dict):
        out: list[str] = []
        for key, value in messages.items():
            out.extend(_flatten(value, f"{prefix}{key}."))
        return out
    if isinstance(messages, list) and all(isinstance(m, str) for m in messages):
        return [f"{prefix.rstrip('.')}: {' '.join(messages)}"]
    if isinstance(messages, list):
        return [line for m in messages for line in _flatten(m, prefix)]
    return [f"{prefix.rstrip('.')}: {messages}"]


def handle_domain_error(exc: AutomlError) -> ResponseReturnValue:
    status = ERROR_CODE_TO_HTTP_STATUS.get(exc.code, 400)
    response = jsonify(_body(status, HTTPStatus(status).phrase, exc.code, exc.message, exc.errors))
    if isinstance(exc, RateLimited):
        response.headers["Retry-After"] = str(exc.retry_after_s)
        _drain_request_body()
    if isinstance(exc, Unauthorized):
        response.headers["WWW-Authenticate"] = 'Bearer realm="automl"'
        _drain_request_body()  # refused before the body was read, as 413 and 429 are
    if isinstance(exc, TooLarge):
        _drain_request_body()  # a storage quota is checked before the body is read
    return response, status


# Answers given before the body was read (413 over the size limit, 429 over a rate limit, 401 without
# a valid key): closing a socket with unread data makes the kernel send a reset, which can reach the
# client before it has read the answer, so it sees a dropped connection instead of the status and its
# message (measured under gunicorn, the server before granian: 32 of 80 oversize uploads; 0 of 80 with
# this). Reading and discarding up to DRAIN_BYTES of the rest first fixes it for ordinary uploads;
# bigger ones cost only that. tests/integration/test_limits_under_the_server.py sends them.
DRAIN_BYTES = 16 << 20


def _drain_request_body(limit: int = DRAIN_BYTES) -> None:
    stream = request.environ.get("wsgi.input")
    if stream is None:
        return
    remaining = limit
    try:
        while remaining > 0:
            chunk = stream.read(min(1 << 16, remaining))
            if not chunk:
                return
            remaining -= len(chunk)
    except (OSError, ValueError):  # the client went away: nothing to answer anyway
        return


def handle_http_error(exc: HTTPException) -> ResponseReturnValue:
    status = exc.code or 500
    if status == 413:
        _drain_request_body()
    data = getattr(exc, "data", None) or {}
    messages = data.get("messages")
    if messages:
        # webargs validation: strip the location level ("json", "files") from field paths.
        fields = {k: v for loc in messages.values() for k, v in (loc.items() if isinstance(loc, dict) else [])}
        detail = "; ".join(_flatten(fields)) or "invalid request"
        message = f"Invalid request: {detail}"
        return jsonify(_body(status, exc.name, "invalid_request", message, fields)), status
    hint = _too_large_hint() if status == 413 else _HINTS.get(status)
    message = data.get("message") or hint or exc.description or exc.name
    return jsonify(_body(status, exc.name, exc.name.lower().replace(" ", "_"), message)), status


def _too_large_hint() -> str:
    """Werkzeug answers 413 both for a body over the size limit and for a form with too many parts
    or an oversized non-file field; a body within the size limit can only be the second."""
    if request.mimetype == "application/json":
        return (f"The JSON body is larger than this service accepts ({request.max_content_length:,} bytes, "
                "AUTOML_MAX_JSON_BYTES). Send fewer instances per request, or score a CSV/Parquet file as a "
                "multipart upload (field 'file'), which has no row limit.")
    limit = current_app.config.get("MAX_CONTENT_LENGTH")
    length = request.content_length
    if limit and length is not None and length <= limit:
        return (f"The form has too many parts (at most {current_app.config.get('MAX_FORM_PARTS')}) or a non-file "
                f"field over {current_app.config.get('MAX_FORM_MEMORY_SIZE')} bytes: send fewer files per request, "
                "and large values as files.")
    return _HINTS[413]


def handle_database_down(exc: OperationalError) -> ResponseReturnValue:
    log.error("metadata store unavailable: %s", exc)
    body = _body(503, "Service Unavailable", "database_unavailable",
                 "The metadata database is unreachable; try again shortly.")
    return jsonify(body), 503


def handle_unexpected(exc: Exception) -> ResponseReturnValue:
    if isinstance(exc, HTTPException):
        return handle_http_error(exc)
    log.exception("unhandled error")
    body = _body(500, "Internal Server Error", "internal_error",
                 "Unexpected server error; it was logged. Please report it with the request.")
    return jsonify(body), InternalServerError.code


def register_error_handlers(app: Flask) -> None:
    app.register_error_handler(AutomlError, handle_domain_error)
    app.register_error_handler(HTTPException, handle_http_error)
    app.register_error_handler(OperationalError, handle_database_down)
    app.register_error_handler(Exception, handle_unexpected)
