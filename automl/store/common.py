"""Helpers every storage module shares: what a team may see, and UTC-aware datetimes.

Functions take a ``Session`` (the caller owns the transaction) and return records or plain
values; no HTTP, Celery or TensorFlow here.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from automl.access import Scope
from automl.store.records import (
    JobState,
)

ACTIVE_STATES = (JobState.queued.value, JobState.running.value)  # a job a worker may still touch


def visible(record: Any, scope: Scope | None) -> bool:
    """Whether the caller may see ``record``: another team's resource is reported as missing."""
    return record is not None and (scope is None or scope.sees(record.team))


def owned(query: Any, record_type: Any, scope: Scope | None) -> Any:
    return query if scope is None or scope.admin else query.where(record_type.team == scope.team)


def aware(value: datetime) -> datetime:
    """Aggregates may come back without the column type's UTC tagging on some backends."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
