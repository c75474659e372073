"""Named domain errors. Each carries a stable ``code``; ``api.errors`` maps codes to HTTP.

Domain code raises these with a message that tells the person what to fix; views never
catch them one by one.
"""

from __future__ import annotations

from typing import Any


class AutomlError(Exception):
    """Base of every error a client can cause or act on."""

    code = "error"

    def __init__(self, message: str, errors: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.errors = errors or {}


class InvalidDataset(AutomlError):
    """The uploaded file cannot become a dataset (empty, not CSV/Parquet, ragged, ...)."""

    code = "invalid_dataset"


class TooLarge(AutomlError):
    """An upload over a size limit once unpacked or decoded (a zip bomb, a pixel bomb)."""

    code = "too_large"


class QuotaExceeded(AutomlError):
    """The team already has as many deployed models or active jobs as its quota allows."""

    code = "quota_exceeded"


class InvalidJobRequest(AutomlError):
    """The job cannot be trained on this dataset (unknown target, constant target, ...)."""

    code = "invalid_job"


class InvalidRequest(AutomlError):
    """A request parameter is malformed (a name, a format) in a way the schema cannot express."""

    code = "invalid_request"


class NotFound(AutomlError):
    code = "not_found"


class Conflict(AutomlError):
    """The request is ambiguous or clashes with existing state (an alias name in several teams)."""

    code = "conflict"


class Unauthorized(AutomlError):
    """No API key, or one that is malformed, unknown or revoked."""

    code = "unauthorized"


class Forbidden(AutomlError):
    """The key is valid but may not do this (an admin-only operation)."""

    code = "forbidden"


class RateLimited(AutomlError):
    """The key sent more requests of one kind than its limit allows; retry after ``retry_after_s``."""

    code = "rate_limited"

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class NotReady(AutomlError):
    """The resource exists but is not in a state that allows the request (e.g. model training)."""

    code = "not_ready"


class InvalidInstances(AutomlError):
    """Prediction instances do not match the model's input schema."""

    code = "invalid_instances"


class UnsupportedForTask(AutomlError):
    """The operation does not exist for this model's task (predict_proba on regression)."""

    code = "unsupported_for_task"


class LimitsUnavailable(AutomlError):
    """The rate-limit counter store is unreachable and the service is set to refuse rather than serve
    uncounted (``AUTOML_RATE_LIMIT_FAIL_OPEN=false``)."""

    code = "limits_unavailable"


class BrokerUnavailable(AutomlError):
    """The task broker could not be reached; nothing was queued."""

    code = "broker_unavailable"


class SearchFailed(AutomlError):
    """The search could not produce a model (every trial failed, fatal error)."""

    code = "search_failed"
