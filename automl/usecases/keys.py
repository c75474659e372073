"""API keys for operators (the CLI) and admins (``/api/v1/keys``): create one with a role and an
optional expiry, list them, revoke one. The key itself is returned once, when it is created; only
its digest is stored (``automl.access``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from automl.access import Role, check_team, new_key
from automl.errors import InvalidRequest
from automl.store import Store, api_keys
from automl.store.records import ApiKeyRecord, utcnow


@dataclass(frozen=True)
class CreatedKey:
    record: ApiKeyRecord
    secret: str  # the whole key: shown once


def create_key(store: Store, team: str, role: Role, name: str | None = None,
               expires_in: timedelta | None = None) -> CreatedKey:
    try:
        check_team(team)
    except ValueError as exc:
        raise InvalidRequest(str(exc), {"team": ["invalid team name"]}) from None
    key = new_key()
    expires_at = utcnow() + expires_in if expires_in is not None else None
    with store.session() as session:
        record = api_keys.add_key(session, key.key_id, key.digest, team, role.name, name, expires_at)
    return CreatedKey(record=record, secret=key.secret)
