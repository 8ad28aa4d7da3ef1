"""Logins, refresh, logout and the per-request session check, as flows.

A login creates a `Session` in the store and returns a `TokenPair`: a short-lived
signed access token (JWT) whose ``sid`` names the session, and an opaque refresh token
``<session id>.<secret>`` of which the store keeps only a SHA-256.  Refresh tokens are
single use: each refresh swaps the stored hash atomically, and presenting a spent one
revokes the whole session.

Sessions of other kinds live beside login sessions (API keys, SCRAM handshakes).  They
are never interchangeable: each kind has its own token format and its own hash domain
(`secret_digest`), and every flow checks the kind of the record it reads.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from .audit import AuditEvent
from .errors import (
    BadCredentials,
    InvalidUsername,
    MalformedToken,
    SessionLimitReached,
    SessionRevoked,
    StoreError,
)
from .flows import DummyVerify, Emit, Flow, Verify, call
from .flows.users import password_fields
from .identity import Identity
from .lockout import LockoutPolicy
from .passwords import PasswordHasher
from .permissions import RolePolicy
from .stores.base import Session, Store
from .tokens import TokenVerifier
from .users import User, normalize_username, utcnow

__all__ = [
    "Client",
    "SessionRules",
    "TokenPair",
    "change_password",
    "identity_from_claims",
    "load_identity",
    "login",
    "logout",
    "open_session",
    "refresh",
    "revoke_sessions",
]

_REFRESH_SHAPE = re.compile(r"[0-9a-f]{32}\.[A-Za-z0-9_-]{43}")

#: The kind of session a password or SCRAM login opens (the only kind that refreshes).
LOGIN = "login"


@dataclass(frozen=True, slots=True)
class Client:
    """Where a request comes from (for sessions and audit events)."""

    ip: str = ""
    user_agent: str = ""


@dataclass(frozen=True, slots=True)
class TokenPair:
    """What a login or a refresh returns."""

    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    expires_in: int
    session_id: str
    token_type: str = "bearer"

    def to_dict(self) -> dict[str, Any]:
        """The OAuth 2-style response body."""
        return {
            "access_token": self.access_token,
            "token_type": self.token_type,
            "expires_in": self.expires_in,
            "refresh_token": self.refresh_token,
        }


@dataclass(frozen=True, slots=True)
class SessionRules:
    """Everything the session flows need to know, fixed when a `Gate` is built."""

    verifier: TokenVerifier
    hasher: PasswordHasher
    lockout: LockoutPolicy
    access_ttl: int = 900
    refresh_ttl: int = 1_209_600
    max_sessions: int = 0
    evict_oldest: bool = True
    touch_interval: int = 60
    policy: RolePolicy = field(default_factory=lambda: RolePolicy({"admin": ["*:*"]}))


def secret_digest(kind: str, secret: str) -> str:
    """The hash a store keeps of a session secret, in the domain of its kind: the same
    secret presented as another kind of credential never matches."""
    return hashlib.sha256(f"authgate-{kind}\x00{secret}".encode()).hexdigest()


def new_refresh_token(session_id: str) -> tuple[str, str]:
    """A fresh refresh token for a session and the hash the store keeps of it."""
    secret = secrets.token_urlsafe(32)
    return f"{session_id}.{secret}", secret_digest(LOGIN, secret)


def parse_refresh_token(token: object) -> tuple[str, str]:
    """(session id, hash) of a well-formed refresh token, else `MalformedToken`."""
    if not isinstance(token, str) or not _REFRESH_SHAPE.fullmatch(token):
        raise MalformedToken("the refresh token is malformed")
    session_id, secret = token.split(".")
    return session_id, secret_digest(LOGIN, secret)


def _access_token(rules: SessionRules, user: User, session_id: str) -> str:
    return rules.verifier.issue(
        {
            "sub": user.username,
            "uid": user.id,
            "sid": session_id,
            "ver": user.version,
            "roles": sorted(user.roles),
            "groups": sorted(user.groups),
            "perms": sorted(user.permissions),
        },
        rules.access_ttl,
    )


def _pair(rules: SessionRules, user: User, session_id: str, refresh_token: str) -> TokenPair:
    return TokenPair(
        _access_token(rules, user, session_id), refresh_token, rules.access_ttl, session_id
    )


def _text_or_nothing(value: object) -> str:
    return value if isinstance(value, str) else ""


def login(rules: SessionRules, username: str, password: str, client: Client) -> Flow[TokenPair]:
    """Check a username and password and open a session.

    Unknown users, invalid usernames, wrong passwords and disabled accounts all take the
    same path (one argon2 verification) and end in the same `BadCredentials`; so does a
    password that is not a string (from Python: the HTTP body is validated).
    """
    password = _text_or_nothing(password)  # "" matches no hash: refused like a wrong one
    try:
        name = normalize_username(username)
    except InvalidUsername:
        yield DummyVerify(password)
        yield Emit(
            AuditEvent(
                "login_failure", str(username)[:64], client_ip=client.ip, detail="invalid username"
            )
        )
        raise BadCredentials() from None
    taken = yield from rules.lockout.reserve(name)
    user = yield from call(Store.get_user, name)
    if user is None or not user.password_hash:
        yield DummyVerify(password)
        ok = False
    else:
        ok = yield Verify(user.password_hash, password)
    if not ok or user is None or not user.enabled:
        yield from rules.lockout.failed(name, taken, client.ip)
        yield Emit(AuditEvent("login_failure", name, client_ip=client.ip))
        raise BadCredentials()
    yield from rules.lockout.succeeded(name)
    if rules.hasher.needs_rehash(user.password_hash) or not user.scram_credentials:
        user = yield from _rehash(user, password)

    return (yield from open_session(rules, user, client))


def open_session(
    rules: SessionRules, user: User, client: Client, detail: str = ""
) -> Flow[TokenPair]:
    """Open a session for a user who just proved who they are (password or SCRAM):
    apply the session limit, store the session, return the token pair."""
    name = user.username
    if rules.max_sessions:
        listed = yield from call(Store.list_sessions, name)
        current = [s for s in listed if s.kind == LOGIN]
        excess = len(current) - rules.max_sessions + 1
        if excess > 0:
            if not rules.evict_oldest:
                yield Emit(
                    AuditEvent(
                        "login_failure", name, client_ip=client.ip, detail="session limit reached"
                    )
                )
                raise SessionLimitReached()
            for old in current[:excess]:
                yield from call(Store.revoke_session, old.id)
                yield Emit(
                    AuditEvent(
                        "session_revoked", name, old.id, client.ip, "evicted by the session limit"
                    )
                )

    session_id = uuid.uuid4().hex
    refresh_token, refresh_hash = new_refresh_token(session_id)
    now = utcnow()
    session = Session(
        id=session_id,
        username=name,
        expires_at=now + timedelta(seconds=rules.refresh_ttl),
        created_at=now,
        last_seen=now,
        client_ip=client.ip[:64],
        user_agent=client.user_agent[:256],
        refresh_hash=refresh_hash,
    )
    yield from call(Store.create_session, session)
    yield Emit(AuditEvent("login_success", name, session_id, client.ip, detail))
    return _pair(rules, user, session_id, refresh_token)


def _rehash(user: User, password: str) -> Flow[User]:
    """Store a hash made with the current parameters (and SCRAM credentials a user
    created before them lacks); a concurrent change wins."""
    secrets_ = yield from password_fields(password)
    try:
        saved = yield from call(Store.update_user, user.changed(**secrets_), user.version)
    except StoreError:  # a concurrent change, or a read-only user source: best effort
        return user
    return saved


def refresh(rules: SessionRules, refresh_token: str, client: Client) -> Flow[TokenPair]:
    """Spend a refresh token for a new pair; a spent token revokes its session."""
    session_id, presented = parse_refresh_token(refresh_token)
    session = yield from call(Store.get_session, session_id)
    if session is None or session.kind != LOGIN:  # an API key or a handshake never refreshes
        raise SessionRevoked("the refresh token is no longer valid")
    if not hmac.compare_digest(session.refresh_hash, presented):
        yield from _reuse(session, client)
    user = yield from call(Store.get_user, session.username)
    if user is None or not user.enabled:
        yield from call(Store.revoke_session, session_id)
        raise SessionRevoked()
    new_token, new_hash = new_refresh_token(session_id)
    expires = utcnow() + timedelta(seconds=rules.refresh_ttl)
    swapped = yield from call(Store.rotate_refresh, session_id, presented, new_hash, expires)
    if not swapped:  # another request spent the same token a moment ago
        yield from _reuse(session, client)
    yield Emit(AuditEvent("refresh", user.username, session_id, client.ip))
    return _pair(rules, user, session_id, new_token)


def _reuse(session: Session, client: Client) -> Flow[None]:
    yield from call(Store.revoke_session, session.id)
    yield Emit(
        AuditEvent(
            "refresh_token_reuse",
            session.username,
            session.id,
            client.ip,
            "a spent refresh token was presented; the session is revoked",
        )
    )
    raise SessionRevoked("refresh token reuse detected: the session is revoked")


def logout(username: str, session_id: str, client: Client) -> Flow[bool]:
    """Revoke one session."""
    revoked = yield from call(Store.revoke_session, session_id)
    yield Emit(AuditEvent("logout", username, session_id, client.ip))
    return revoked


def revoke_session(username: str, session_id: str, client: Client) -> Flow[bool]:
    """Revoke one of `username`'s sessions (a session of someone else is not found)."""
    session = yield from call(Store.get_session, session_id)
    if session is None or session.username != username:
        return False
    revoked = yield from call(Store.revoke_session, session_id)
    yield Emit(AuditEvent("session_revoked", username, session_id, client.ip))
    return revoked


def revoke_sessions(username: str, client: Client, keep: str | None = None) -> Flow[int]:
    """Revoke every session of a user (but `keep`)."""
    count = yield from call(Store.revoke_user_sessions, username, keep)
    yield Emit(
        AuditEvent("sessions_revoked", username, keep or "", client.ip, f"{count} sessions revoked")
    )
    return count


def change_password(
    rules: SessionRules,
    username: str,
    current: str,
    new: str,
    client: Client,
    keep_session: str | None = None,
) -> Flow[User]:
    """Change one's own password: the current one must match; other sessions end."""
    rules.hasher.policy.check(new)
    user = yield from call(Store.get_user, username)
    if user is None:
        yield DummyVerify(current)
        raise BadCredentials("the current password is wrong")
    ok = yield Verify(user.password_hash, current)
    if not ok:
        yield Emit(
            AuditEvent(
                "password_change",
                username,
                keep_session or "",
                client.ip,
                "refused: wrong current password",
            )
        )
        raise BadCredentials("the current password is wrong")
    secrets_ = yield from password_fields(new)
    saved = yield from call(Store.update_user, user.changed(**secrets_), user.version)
    count = yield from call(Store.revoke_user_sessions, username, keep_session)
    yield Emit(
        AuditEvent(
            "password_change",
            username,
            keep_session or "",
            client.ip,
            f"{count} other sessions revoked",
        )
    )
    return saved


def identity_from_user(
    policy: RolePolicy,
    user: User,
    session_id: str,
    claims: Mapping[str, Any],
    group_grants: frozenset[str] = frozenset(),
) -> Identity:
    """The identity of a user as the store has it now, with effective permissions."""
    grants = policy.permissions_for(user.roles, user.groups, user.permissions | group_grants)
    return Identity(
        username=user.username,
        user_id=user.id,
        roles=user.roles,
        groups=user.groups,
        permissions=grants.grants,
        session_id=session_id,
        claims=claims,
        is_authenticated=True,
        email=user.email,
        full_name=user.display_name or user.full_name,
        user_version=user.version,
        grants=grants,
    )


def identity_from_claims(policy: RolePolicy, claims: Mapping[str, Any]) -> Identity:
    """The identity a token claims, trusted without a store read (stateless mode)."""
    roles = frozenset(claims.get("roles", ()))
    groups = frozenset(claims.get("groups", ()))
    grants = policy.permissions_for(roles, groups, frozenset(claims.get("perms", ())))
    return Identity(
        username=claims["sub"],
        user_id=str(claims.get("uid", "")),
        roles=roles,
        groups=groups,
        permissions=grants.grants,
        session_id=claims["sid"],
        claims=claims,
        is_authenticated=True,
        user_version=claims["ver"],
        grants=grants,
    )


def group_grants(policy: RolePolicy, groups: frozenset[str]) -> Flow[frozenset[str]]:
    """Grants of the user's groups kept in the store (those the policy does not define)."""
    grants: set[str] = set()
    for name in sorted(groups):
        if name not in policy.group_permissions:
            group = yield from call(Store.get_group, name)
            if group is not None:
                grants |= group.permissions
    return frozenset(grants)


def _live(claims: Mapping[str, Any], session: Session | None, user: User | None) -> User:
    """The user behind a live session, or `SessionRevoked`."""
    if session is None or session.kind != LOGIN or session.username != claims["sub"]:
        raise SessionRevoked()
    if user is None or not user.enabled or user.id != claims.get("uid", user.id):
        raise SessionRevoked()
    return user


def quick_identity(
    rules: SessionRules,
    claims: Mapping[str, Any],
    session: Session | None,
    user: User | None,
) -> Identity | None:
    """The identity when the answer needs no store write or extra read (no ``last_seen``
    due, no store-kept groups); None sends the caller to `load_identity`."""
    live = _live(claims, session, user)
    assert session is not None
    if time.time() - session.last_seen.timestamp() >= rules.touch_interval:
        return None
    if any(group not in rules.policy.group_permissions for group in live.groups):
        return None
    return identity_from_user(rules.policy, live, session.id, claims)


def load_identity(rules: SessionRules, claims: Mapping[str, Any]) -> Flow[Identity]:
    """Check a verified token's session and user in the store; build the identity from
    the user as it is now (so a role change shows on the very next request)."""
    session, user = yield from call(Store.get_session_user, claims["sid"], claims["sub"])
    live = _live(claims, session, user)
    assert session is not None
    now = time.time()
    if now - session.last_seen.timestamp() >= rules.touch_interval:
        yield from call(Store.touch_session, session.id, datetime.fromtimestamp(now, timezone.utc))
    extra = yield from group_grants(rules.policy, live.groups)
    return identity_from_user(rules.policy, live, session.id, claims, extra)
