"""API keys: personal access tokens for scripts and services (bluesky, Iggy, PlantDB).

A key is ``agk_<id>_<secret>``: the prefix makes it recognisable (to people and to
secret scanners), the id names a store record, and only the SHA-256 of the secret is
kept.  The raw key is shown once, when it is created.  Keys live beside sessions (a
session of kind ``apikey``), so disabling or deleting the owner, or revoking all their
sessions, kills them too.

A key may carry permissions: then its identity holds only those of them the owner still
holds, and no roles (a key can narrow what its owner may do, never widen it).  A key
without permissions acts as its owner.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import re
import secrets
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from .audit import AuditEvent
from .errors import MalformedToken, PermissionDenied, SessionRevoked, ValidationError
from .flows import Call, Emit, Flow
from .identity import Identity
from .permissions import PermissionSet, parse_grant
from .sessions import Client, SessionRules, identity_from_user
from .stores.base import Session
from .users import User, utcnow

__all__ = [
    "API_KEY_PREFIX",
    "ApiKey",
    "api_key_identity",
    "create_api_key",
    "list_api_keys",
    "revoke_api_key",
]

API_KEY_PREFIX = "agk_"
_KIND = "apikey"
_SHAPE = re.compile(r"agk_([0-9a-f]{32})_([A-Za-z0-9_-]{43})")
_NO_EXPIRY = timedelta(days=365 * 100)


@dataclass(frozen=True, slots=True)
class ApiKey:
    """What is known about a key (never the key itself, but once at creation)."""

    id: str
    name: str
    permissions: tuple[str, ...]
    created_at: datetime
    expires_at: datetime | None
    last_used: datetime

    @classmethod
    def from_session(cls, session: Session) -> ApiKey:
        perms = session.data.get("permissions", "")
        never = session.expires_at - session.created_at >= _NO_EXPIRY - timedelta(days=1)
        return cls(
            session.id,
            session.data.get("name", ""),
            tuple(p for p in perms.split(" ") if p),
            session.created_at,
            None if never else session.expires_at,
            session.last_seen,
        )

    def to_public_dict(self) -> dict[str, Any]:
        """The key's description for listings."""
        return {
            "id": self.id,
            "name": self.name,
            "permissions": list(self.permissions),
            "created_at": self.created_at.isoformat(),
            "expires_at": self.expires_at.isoformat() if self.expires_at else None,
            "last_used": self.last_used.isoformat(),
        }


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("ascii")).hexdigest()


def is_api_key(credential: str) -> bool:
    """Does this credential look like an API key (rather than a JWT)?"""
    return credential.startswith(API_KEY_PREFIX)


def create_api_key(
    owner: Identity,
    name: str,
    permissions: Iterable[str] | None,
    expires_in: int | None,
    client: Client,
) -> Flow[tuple[str, ApiKey]]:
    """Make a key for `owner`; returns the raw key (show it once) and its description."""
    if not owner.is_authenticated:
        raise PermissionDenied("only an authenticated user can create API keys")
    if not isinstance(name, str) or not 1 <= len(name) <= 100:
        raise ValidationError("field 'name' must be 1 to 100 characters", field="name")
    perms = sorted(set(permissions)) if permissions is not None else []
    for perm in perms:
        try:
            parse_grant(perm)
        except ValidationError as err:
            raise ValidationError(err.detail, field="permissions") from None
        if not owner.can(perm):
            raise PermissionDenied(f"a key cannot hold {perm}: you do not hold it yourself")
    if expires_in is not None and not 60 <= expires_in <= 10 * 365 * 86400:
        raise ValidationError("expires_in must be 60 seconds to 10 years", field="expires_in")
    key_id = uuid.uuid4().hex
    secret = secrets.token_urlsafe(32)
    now = utcnow()
    session = Session(
        id=key_id,
        username=owner.username,
        expires_at=now + (timedelta(seconds=expires_in) if expires_in else _NO_EXPIRY),
        created_at=now,
        last_seen=now,
        client_ip=client.ip[:64],
        user_agent=client.user_agent[:256],
        refresh_hash=_digest(secret),
        kind=_KIND,
        data={"name": name, "permissions": " ".join(perms)},
    )
    yield Call("create_session", (session,))
    yield Emit(AuditEvent("api_key_created", owner.username, key_id, client.ip, name))
    return f"{API_KEY_PREFIX}{key_id}_{secret}", ApiKey.from_session(session)


def api_key_identity(rules: SessionRules, key: str) -> Flow[Identity]:
    """The identity an API key stands for, or an `InvalidToken` error."""
    match = _SHAPE.fullmatch(key)
    if match is None:
        raise MalformedToken("the API key is malformed")
    key_id, secret = match.groups()
    session: Session | None = yield Call("get_session", (key_id,))
    if session is None or session.kind != _KIND:
        raise SessionRevoked("the API key is unknown, revoked or expired")
    if not hmac.compare_digest(session.refresh_hash, _digest(secret)):
        raise SessionRevoked("the API key is unknown, revoked or expired")
    user: User | None = yield Call("get_user", (session.username,))
    if user is None or not user.enabled:
        raise SessionRevoked("the API key's owner is disabled or gone")
    if (utcnow() - session.last_seen).total_seconds() >= rules.touch_interval:
        yield Call("touch_session", (session.id, utcnow()))
    owner = identity_from_user(rules.policy, user, session.id, {"sub": user.username})
    narrowed = ApiKey.from_session(session).permissions
    if not narrowed:
        return owner
    held = PermissionSet(p for p in narrowed if owner.can(p))
    return dataclasses.replace(
        owner,
        roles=frozenset(),
        permissions=held.grants,
        grants=held,
        claims={"sub": owner.username, "api_key": session.id},
    )


def list_api_keys(username: str) -> Flow[list[ApiKey]]:
    """The user's live keys."""
    sessions: list[Session] = yield Call("list_sessions", (username,))
    return [ApiKey.from_session(s) for s in sessions if s.kind == _KIND]


def revoke_api_key(username: str, key_id: str, client: Client) -> Flow[bool]:
    """Revoke one of the user's keys; False when it is not theirs or gone."""
    session: Session | None = yield Call("get_session", (key_id,))
    if session is None or session.username != username or session.kind != _KIND:
        return False
    done: bool = yield Call("revoke_session", (key_id,))
    yield Emit(AuditEvent("api_key_revoked", username, key_id, client.ip))
    return done
