"""API keys: personal access tokens for scripts and services (bluesky, Iggy, PlantDB).

A key is ``agk_<id>_<secret>``: the prefix makes it recognisable (to people and to
secret scanners), the id names a store record, and only the SHA-256 of the secret is
kept.  The raw key is shown once, when it is created.  Keys live beside sessions (a
session of kind ``apikey``), so disabling or deleting the owner, or revoking all their
sessions, kills them too.

A key may carry permissions: then its identity holds only those of them the owner still
holds, and no roles (a key can narrow what its owner may do, never widen it).  A key
without permissions acts as its owner in the application.

Whatever it holds, a key does not manage the account it belongs to unless it was made
for that: creating or listing keys, listing or ending sessions and changing the password
each need an account right (`ACCOUNT_RIGHTS`) listed on the key itself.  A key made
with a key lists its permissions, each held by the key that makes it.
"""

from __future__ import annotations

import dataclasses
import hmac
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Any

from ..audit import AuditEvent
from ..errors import MalformedToken, PermissionDenied, SessionRevoked, ValidationError
from ..identity import Client, Identity
from ..permissions import PermissionSet, parse_grant
from ..stores.base import Session, Store
from ..users import new_session_id, utcnow
from .identity import group_grants, identity_from_user
from .ops import Emit, Flow, call
from .sessions import SessionRules, secret_digest

__all__ = [
    "ACCOUNT_RIGHTS",
    "API_KEY_PREFIX",
    "ApiKey",
    "api_key_identity",
    "create_api_key",
    "is_key_identity",
    "key_listing",
    "list_api_keys",
    "recheck_api_key",
    "require_account_right",
    "revoke_api_key",
]

API_KEY_PREFIX = "agk_"
_KIND = "apikey"
_SHAPE = re.compile(r"agk_([0-9a-f]{32})_([A-Za-z0-9_-]{43})")
_NO_EXPIRY = timedelta(days=365 * 100)

#: What a key must list to manage its own account (a user holds these implicitly).
ACCOUNT_RIGHTS = frozenset({"account:keys", "account:mfa", "account:password", "account:sessions"})


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


def is_api_key(credential: str) -> bool:
    """Does this credential look like an API key (rather than a JWT)?"""
    return credential.startswith(API_KEY_PREFIX)


def is_key_identity(identity: Identity) -> bool:
    """Was this identity authenticated by an API key?"""
    return "api_key" in identity.claims


def require_account_right(identity: Identity, right: str) -> None:
    """Refuse (`PermissionDenied`) an API-key identity whose key does not list `right`
    (one of `ACCOUNT_RIGHTS`); people and their sessions hold every account right."""
    if is_key_identity(identity) and right not in identity.claims.get("account", ()):
        raise PermissionDenied(f"this API key cannot do that: it was not created with {right}")


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
    by_key = is_key_identity(owner)
    if by_key:
        require_account_right(owner, "account:keys")
        if not permissions:
            raise PermissionDenied(
                "a key made with an API key must list its permissions (it can only narrow)"
            )
    perms = sorted(set(permissions)) if permissions is not None else []
    for perm in perms:
        try:
            parse_grant(perm)
        except ValidationError as err:
            raise ValidationError(err.detail, field="permissions") from None
        if perm in ACCOUNT_RIGHTS:  # implicit for people; a key passes on only its own
            held = not by_key or perm in owner.claims.get("account", ())
        else:
            held = owner.can(perm)
        if not held:
            whose = "the key making it" if by_key else owner.username
            raise PermissionDenied(f"a key cannot hold {perm}: {whose} does not hold it")
    if expires_in is not None and not 60 <= expires_in <= 10 * 365 * 86400:
        raise ValidationError("expires_in must be 60 seconds to 10 years", field="expires_in")
    key_id = new_session_id(owner.username)
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
        refresh_hash=secret_digest(_KIND, secret),
        kind=_KIND,
        data={"name": name, "permissions": " ".join(perms)},
    )
    yield from call(Store.create_session, session)
    yield Emit(AuditEvent("api_key_created", owner.username, key_id, client.ip, name))
    return f"{API_KEY_PREFIX}{key_id}_{secret}", ApiKey.from_session(session)


def api_key_identity(rules: SessionRules, key: str) -> Flow[Identity]:
    """The identity an API key stands for, or an `InvalidToken` error."""
    match = _SHAPE.fullmatch(key)
    if match is None:
        raise MalformedToken("the API key is malformed")
    key_id, secret = match.groups()
    session = yield from call(Store.get_session, key_id)
    if session is None or session.kind != _KIND:
        raise SessionRevoked("the API key is unknown, revoked or expired")
    if not hmac.compare_digest(session.refresh_hash, secret_digest(_KIND, secret)):
        raise SessionRevoked("the API key is unknown, revoked or expired")
    return (yield from _key_identity(rules, session))


def recheck_api_key(rules: SessionRules, identity: Identity) -> Flow[Identity]:
    """The current identity of a key that authenticated earlier (long-lived
    connections), or `SessionRevoked` when the key or its owner is gone."""
    session = yield from call(Store.get_session, identity.claims["api_key"])
    if session is None or session.kind != _KIND or session.username != identity.username:
        raise SessionRevoked("the API key is unknown, revoked or expired")
    return (yield from _key_identity(rules, session))


def _key_identity(rules: SessionRules, session: Session) -> Flow[Identity]:
    user = yield from call(Store.get_user, session.username)
    if user is None or not user.enabled:
        raise SessionRevoked("the API key's owner is disabled or gone")
    if (utcnow() - session.last_seen).total_seconds() >= rules.touch_interval:
        yield from call(Store.touch_session, session.id, utcnow())
    listed = ApiKey.from_session(session).permissions
    claims = MappingProxyType(
        {
            "sub": user.username,
            "sid": session.id,
            "api_key": session.id,
            "account": tuple(p for p in listed if p in ACCOUNT_RIGHTS),
        }
    )
    # The owner as a login would see them: the grants of their groups kept in the store
    # too, so a key listing nothing acts as its owner and a listed grant that comes
    # from such a group is held.
    extra = yield from group_grants(rules.policy, user.groups)
    owner = identity_from_user(rules.policy, user, session.id, claims, extra)
    narrowed = [p for p in listed if p not in ACCOUNT_RIGHTS]
    if not listed:
        return owner
    held = PermissionSet(p for p in narrowed if owner.can(p))
    return dataclasses.replace(owner, roles=frozenset(), permissions=held.grants, grants=held)


def key_listing(identity: Identity) -> Flow[tuple[str, frozenset[str] | None]]:
    """For an API key's identity, the key's name and the grants it lists (None when it
    lists none: it acts as its owner; account rights are not grants); ``("", None)`` for
    any other identity.  `SessionRevoked` when the key is gone."""
    if not is_key_identity(identity):
        return "", None
    found = yield from call(Store.get_session, identity.claims["api_key"])
    if found is None or found.username != identity.username or found.kind != _KIND:
        raise SessionRevoked("the API key is unknown, revoked or expired")
    key = ApiKey.from_session(found)
    lists = frozenset(key.permissions) - ACCOUNT_RIGHTS if key.permissions else None
    return key.name or key.id, lists


def list_api_keys(username: str) -> Flow[list[ApiKey]]:
    """The user's live keys."""
    sessions = yield from call(Store.list_sessions, username)
    return [ApiKey.from_session(s) for s in sessions if s.kind == _KIND]


def revoke_api_key(username: str, key_id: str, client: Client, actor: str = "") -> Flow[bool]:
    """Revoke one of the user's keys; False when it is not theirs or gone; `actor`: the
    admin doing it."""
    session = yield from call(Store.get_session, key_id)
    if session is None or session.username != username or session.kind != _KIND:
        return False
    done = yield from call(Store.revoke_session, key_id)
    yield Emit(AuditEvent("api_key_revoked", username, key_id, client.ip, actor=actor))
    return done
