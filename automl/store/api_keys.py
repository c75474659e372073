"""Storage calls for API keys (only digests are stored).

Functions take a ``Session`` (the caller owns the transaction) and return records or plain
values; no HTTP, Celery or TensorFlow here.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from automl.errors import NotFound
from automl.store.records import (
    ApiKeyRecord,
    utcnow,
)

# --- API keys -----------------------------------------------------------------------------


def add_key(session: Session, key_id: str, digest: str, team: str, role: str, name: str | None,
            expires_at: datetime | None = None) -> ApiKeyRecord:
    record = ApiKeyRecord(id=key_id, digest=digest, team=team, role=role, name=name, expires_at=expires_at)
    session.add(record)
    session.flush()
    return record


def get_key(session: Session, key_id: str) -> ApiKeyRecord | None:
    return session.get(ApiKeyRecord, key_id)


def list_keys(session: Session, team: str | None = None, revoked: bool = False) -> list[ApiKeyRecord]:
    query = select(ApiKeyRecord).order_by(ApiKeyRecord.team, ApiKeyRecord.created_at)
    if team is not None:
        query = query.where(ApiKeyRecord.team == team)
    if not revoked:
        query = query.where(ApiKeyRecord.revoked_at.is_(None))
    return list(session.scalars(query))


def revoke_key(session: Session, key_id: str) -> ApiKeyRecord:
    record = session.get(ApiKeyRecord, key_id)
    if record is None:
        raise NotFound(f"No API key with id '{key_id}'.")
    if record.revoked_at is None:
        record.revoked_at = utcnow()
    return record


def count_keys(session: Session) -> int:
    return int(session.scalar(select(func.count()).select_from(ApiKeyRecord)) or 0)


def touch_key(session: Session, key_id: str) -> None:
    session.execute(update(ApiKeyRecord).where(ApiKeyRecord.id == key_id).values(last_used_at=utcnow())
                    .execution_options(synchronize_session=False))
