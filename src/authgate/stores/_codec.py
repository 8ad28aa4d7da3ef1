"""How records are written as JSON by the backends that store text."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

from ..errors import StoreError
from ..users import Group, User
from .base import Session

# Bump when the record layout changes; readers accept every version they know.
RECORD_VERSION = 1


def _ts(value: datetime) -> float:
    return value.timestamp()


def _dt(value: float) -> datetime:
    return datetime.fromtimestamp(value, timezone.utc)


def user_to_json(user: User) -> str:
    """Serialise a full user record, password hash included (stores only)."""
    return json.dumps(
        {
            "v": RECORD_VERSION,
            "username": user.username,
            "id": user.id,
            "roles": sorted(user.roles),
            "groups": sorted(user.groups),
            "permissions": sorted(user.permissions),
            "enabled": user.enabled,
            "email": user.email,
            "email_verified": user.email_verified,
            "first_name": user.first_name,
            "last_name": user.last_name,
            "display_name": user.display_name,
            "created_at": _ts(user.created_at),
            "updated_at": _ts(user.updated_at),
            "version": user.version,
            "password_hash": user.password_hash,
            "scram": user.scram_credentials,
            "factors": user.factors,
        },
        separators=(",", ":"),
    )


def user_from_json(raw: str | bytes) -> User:
    """Parse a record written by `user_to_json`."""
    try:
        data: dict[str, Any] = json.loads(raw)
        return User(
            username=data["username"],
            id=data["id"],
            roles=frozenset(data["roles"]),
            groups=frozenset(data["groups"]),
            permissions=frozenset(data["permissions"]),
            enabled=bool(data["enabled"]),
            email=data["email"],
            email_verified=bool(data.get("email_verified", False)),
            first_name=data["first_name"],
            last_name=data["last_name"],
            display_name=data["display_name"],
            created_at=_dt(data["created_at"]),
            updated_at=_dt(data["updated_at"]),
            version=int(data["version"]),
            password_hash=data["password_hash"],
            scram_credentials=data.get("scram", ""),
            factors=data.get("factors", ""),
        )
    except (ValueError, KeyError, TypeError) as err:
        raise StoreError("a stored user record is corrupt") from err


def group_to_json(group: Group) -> str:
    """Serialise a group."""
    return json.dumps(
        {
            "name": group.name,
            "permissions": sorted(group.permissions),
            "description": group.description,
        },
        separators=(",", ":"),
    )


def group_from_json(raw: str | bytes) -> Group:
    """Parse a record written by `group_to_json`."""
    try:
        data = json.loads(raw)
        return Group(data["name"], frozenset(data["permissions"]), data["description"])
    except (ValueError, KeyError, TypeError) as err:
        raise StoreError("a stored group record is corrupt") from err


def session_to_json(session: Session) -> str:
    """Serialise a session (its refresh hash included)."""
    return json.dumps(
        {
            "id": session.id,
            "username": session.username,
            "expires_at": _ts(session.expires_at),
            "created_at": _ts(session.created_at),
            "last_seen": _ts(session.last_seen),
            "client_ip": session.client_ip,
            "user_agent": session.user_agent,
            "refresh_hash": session.refresh_hash,
            "kind": session.kind,
            "data": session.data,
        },
        separators=(",", ":"),
    )


def session_from_json(raw: str | bytes) -> Session:
    """Parse a record written by `session_to_json`."""
    try:
        data = json.loads(raw)
        return Session(
            id=data["id"],
            username=data["username"],
            expires_at=_dt(data["expires_at"]),
            created_at=_dt(data["created_at"]),
            last_seen=_dt(data["last_seen"]),
            client_ip=data["client_ip"],
            user_agent=data["user_agent"],
            refresh_hash=data["refresh_hash"],
            kind=data.get("kind", "login"),
            data=dict(data.get("data", {})),
        )
    except (ValueError, KeyError, TypeError) as err:
        raise StoreError("a stored session record is corrupt") from err


def timestamp(value: datetime) -> float:
    """Seconds since the epoch for an aware datetime."""
    return _ts(value)


def from_timestamp(value: float) -> datetime:
    """An aware UTC datetime from seconds since the epoch."""
    return _dt(value)
