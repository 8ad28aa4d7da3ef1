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
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta

from ..audit import AuditEvent
from ..errors import (
    EmailNotVerified,
    MalformedToken,
    SessionLimitReached,
    SessionRevoked,
)
from ..identity import Client
from ..passwords import PasswordHasher
from ..permissions import RolePolicy
from ..stores.base import Session, Store
from ..tokens import TokenPair, TokenVerifier
from ..users import User, new_session_id, utcnow
from .lockout import LockoutPolicy
from .ops import Emit, Flow, call
from .throttle import ClientThrottle

_REFRESH_SHAPE = re.compile(r"[0-9a-f]{32}\.[A-Za-z0-9_-]{43}")


#: The kind of session a password or SCRAM login opens (the only kind that refreshes).
LOGIN = "login"
#: Where a session keeps how its user proved who they are (``amr``, space-separated).
AMR = "amr"
PASSWORD = "pwd"


@dataclass(frozen=True, slots=True)
class SessionRules:
    """Everything the session flows need to know, fixed when a `Gate` is built."""

    verifier: TokenVerifier
    hasher: PasswordHasher
    lockout: LockoutPolicy
    throttle: ClientThrottle = field(default_factory=ClientThrottle)
    access_ttl: int = 900
    refresh_ttl: int = 1_209_600
    max_sessions: int = 0
    evict_oldest: bool = True
    touch_interval: int = 300
    policy: RolePolicy = field(default_factory=lambda: RolePolicy({"admin": ["*:*"]}))
    require_verified_email: bool = False
    #: Roles whose holders must log in with a second factor (`authgate.flows.mfa`).
    mfa_roles: frozenset[str] = frozenset()


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


def _access_token(
    rules: SessionRules, user: User, session_id: str, proof: tuple[int, list[str]]
) -> str:
    auth_time, amr = proof
    return rules.verifier.issue(
        {
            "sub": user.username,
            "uid": user.id,
            "sid": session_id,
            "ver": user.version,
            "roles": sorted(user.roles),
            "groups": sorted(user.groups),
            "perms": sorted(user.permissions),
            "auth_time": auth_time,
            "amr": amr,
        },
        rules.access_ttl,
    )


def _pair(
    rules: SessionRules,
    user: User,
    session_id: str,
    refresh_token: str,
    proof: tuple[int, list[str]],
) -> TokenPair:
    return TokenPair(
        _access_token(rules, user, session_id, proof),
        refresh_token,
        rules.access_ttl,
        session_id,
    )


def session_proof(session: Session) -> tuple[int, list[str]]:
    """When and how the user of `session` last proved who they are (the OIDC claims
    ``auth_time`` and ``amr``): its login, since a new proof opens a new session."""
    return int(session.created_at.timestamp()), session.data.get(AMR, PASSWORD).split()


def open_session(
    rules: SessionRules,
    user: User,
    client: Client,
    detail: str = "",
    amr: Sequence[str] = (PASSWORD,),
) -> Flow[TokenPair]:
    """Open a session for a user who just proved who they are (password, SCRAM, a
    second factor, a passkey: `amr`, RFC 8176's names): apply the session limit, store
    the session, return the token pair."""
    secret = secrets.token_urlsafe(32)
    session_id = yield from start_session(
        rules,
        user,
        client,
        ttl=rules.refresh_ttl,
        secret_hash=secret_digest(LOGIN, secret),
        data={AMR: " ".join(amr)},
        detail=detail,
    )
    proof = (int(time.time()), list(amr))
    return _pair(rules, user, session_id, f"{session_id}.{secret}", proof)


def start_session(
    rules: SessionRules,
    user: User,
    client: Client,
    *,
    ttl: int,
    secret_hash: str,
    data: dict[str, str] | None = None,
    detail: str = "",
) -> Flow[str]:
    """Store a new login session of `user` lasting `ttl` seconds, whose credential's
    hash is `secret_hash`, after the checks every login passes (a confirmed email when
    the deployment requires one, the session limit); returns the session's id."""
    name = user.username
    if rules.require_verified_email and user.email and not user.email_verified:
        yield Emit(
            AuditEvent("login_failure", name, client_ip=client.ip, detail="email not verified")
        )
        raise EmailNotVerified()
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

    session_id = new_session_id(name)
    now = utcnow()
    session = Session(
        id=session_id,
        username=name,
        expires_at=now + timedelta(seconds=ttl),
        created_at=now,
        last_seen=now,
        client_ip=client.ip[:64],
        user_agent=client.user_agent[:256],
        refresh_hash=secret_hash,
        data=data or {},
    )
    yield from call(Store.create_session, session)
    # A password reset, a password change or disabling the user that ended every
    # session while this login was being checked must end this one too: it was
    # decided on the user as they were (one read, for an argon2-priced login).
    now_user = yield from call(Store.get_user, name)
    if (
        now_user is None
        or not now_user.enabled
        or now_user.id != user.id
        or now_user.password_hash != user.password_hash
    ):
        yield from call(Store.revoke_session, session_id)
        yield Emit(
            AuditEvent("login_failure", name, session_id, client.ip, "the user changed meanwhile")
        )
        raise SessionRevoked("the account changed during the login: log in again")
    yield Emit(AuditEvent("login_success", name, session_id, client.ip, detail))
    return session_id


def refresh(rules: SessionRules, refresh_token: str, client: Client) -> Flow[TokenPair]:
    """Spend a refresh token for a new pair; a spent token revokes its session.  Each
    refusal counts against the client's address (`ClientThrottle`)."""
    held = yield from rules.throttle.reserve(client.ip)
    pair = yield from rules.throttle.spared(held, _refresh(rules, refresh_token, client))
    yield from rules.throttle.passed(held)
    return pair


def _refresh(rules: SessionRules, refresh_token: str, client: Client) -> Flow[TokenPair]:
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
    return _pair(rules, user, session_id, new_token, session_proof(session))


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


def revoke_session(
    username: str, session_id: str, client: Client, actor: str = "", kind: str | None = None
) -> Flow[bool]:
    """Revoke one of `username`'s sessions (a session of someone else, or of another
    `kind` when one is given, is not found); `actor`: the admin doing it."""
    session = yield from call(Store.get_session, session_id)
    if session is None or session.username != username:
        return False
    if kind is not None and session.kind != kind:
        return False
    revoked = yield from call(Store.revoke_session, session_id)
    yield Emit(AuditEvent("session_revoked", username, session_id, client.ip, actor=actor))
    return revoked


def revoke_sessions(
    username: str, client: Client, keep: str | None = None, actor: str = ""
) -> Flow[int]:
    """Revoke every session of a user (but `keep`); `actor`: the admin doing it."""
    count = yield from call(Store.revoke_user_sessions, username, keep)
    detail = f"{count} sessions revoked"
    yield Emit(AuditEvent("sessions_revoked", username, keep or "", client.ip, detail, actor=actor))
    return count
