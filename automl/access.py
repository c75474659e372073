"""Who may see what: API keys, the team they act for, and the scope a storage call runs in.

A key is ``amk_<id>_<secret>``: ``id`` (8 hex digits) names the key in listings and logs and
is the lookup; only the SHA-256 digest of the whole key is stored, so a copy of the database
gives no usable key. The secret is 256 random bits, which is why a plain (fast) digest is the
right choice here, as for GitHub's and Stripe's tokens: slow password hashes guard guessable
secrets, and would add their cost to every request.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import timedelta

KEY_PREFIX = "amk"
KEY_PATTERN = re.compile(rf"^{KEY_PREFIX}_([0-9a-f]{{8}})_([A-Za-z0-9_-]{{43}})$")
TEAM_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
DEFAULT_TEAM = "default"  # owns what existed before teams (migration 0007) and the embedded admin key


class Role(enum.IntEnum):
    """What a key may do; each role may do everything the roles below it may.

    ``predict``: predictions (JSON, files, batch scoring, the TF-Serving routes) and model cards.
    ``read``: every GET of its team. ``write``: everything its team may do. ``admin``: every team's
    resources, keys and usage.
    """

    predict = 1
    read = 2
    write = 3
    admin = 4

    @classmethod
    def parse(cls, name: str) -> Role:
        try:
            return cls[name]
        except KeyError:
            raise ValueError(f"Role '{name[:40]}' is not one of {', '.join(r.name for r in cls)}.") from None


DURATION_PATTERN = re.compile(r"^(\d{1,6})([hdw])$")
DURATION_UNITS = {"h": timedelta(hours=1), "d": timedelta(days=1), "w": timedelta(weeks=1)}


def parse_duration(text: str) -> timedelta:
    """``90d``, ``12h`` or ``2w`` as a timedelta (key expiries)."""
    match = DURATION_PATTERN.match(text.strip())
    if match is None or int(match.group(1)) == 0:
        raise ValueError(f"'{text[:40]}' is not a duration like 90d, 12h or 2w.")
    return int(match.group(1)) * DURATION_UNITS[match.group(2)]


@dataclass(frozen=True)
class Scope:
    """The caller's team; an admin sees every team's resources (and creates them in its own)."""

    team: str
    admin: bool = False

    def sees(self, owner: str) -> bool:
        return self.admin or owner == self.team


@dataclass(frozen=True)
class NewKey:
    key_id: str
    secret: str  # the whole key, shown once
    digest: str


def new_key() -> NewKey:
    key_id = secrets.token_hex(4)
    secret = f"{KEY_PREFIX}_{key_id}_{secrets.token_urlsafe(32)}"
    return NewKey(key_id=key_id, secret=secret, digest=digest(secret))


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def parse_key(secret: str) -> str | None:
    """The key id of a well-formed key, else None (nothing is looked up for malformed keys)."""
    match = KEY_PATTERN.match(secret)
    return match.group(1) if match else None


def matches(secret: str, stored_digest: str) -> bool:
    return hmac.compare_digest(digest(secret), stored_digest)


def check_team(team: str) -> str:
    if not TEAM_PATTERN.match(team):
        raise ValueError(f"Team '{team[:80]}' is not a valid name: use 1-64 lower-case letters, digits, '.', '_' "
                         "or '-', starting with a letter or digit.")
    return team
