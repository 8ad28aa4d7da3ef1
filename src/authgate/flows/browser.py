"""Browser sessions, as flows: a login that answers with a session cookie, and the
per-request check of that cookie.

A browser session is a login session like those behind token pairs (listed in
``/auth/sessions``, ended by logout, a password change, a reset, disabling or deleting
the user), whose credential is ``ags_<session id>_<secret>`` instead of a token pair.
Only the SHA-256 of the secret is stored, in its own hash domain: the cookie is never a
refresh token, and a refresh token never a cookie.
"""

from __future__ import annotations

import hmac
import re
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from ..browser import SESSION_PREFIX, BrowserRules
from ..errors import MalformedToken, SessionRevoked
from ..identity import Client, Identity
from ..stores.base import Session, Store
from ..tokens import TokenPair
from ..users import User
from .identity import group_grants, identity_from_user
from .login import check_password, second_step
from .mfa import MfaRules
from .ops import Flow, call
from .sessions import (
    AMR,
    LOGIN,
    PASSWORD,
    SessionRules,
    open_session,
    secret_digest,
    session_proof,
    start_session,
)

__all__ = [
    "BrowserSession",
    "browser_identity",
    "browser_login",
    "open_browser_session",
    "open_for",
]

_COOKIE = "cookie"  # the hash domain of a session cookie's secret
_SHAPE = re.compile(SESSION_PREFIX + r"([0-9a-f]{32})_([A-Za-z0-9_-]{43})")


@dataclass(frozen=True, slots=True)
class BrowserSession:
    """A browser session just opened: the cookie's value (set it, never show it),
    whether it is remembered, and the session."""

    cookie: str
    remember: bool
    session: Session


def open_browser_session(
    rules: SessionRules,
    user: User,
    client: Client,
    *,
    ttl: int,
    remember: bool,
    amr: Sequence[str] = (PASSWORD,),
    detail: str = "",
) -> Flow[BrowserSession]:
    """Open a browser session for a user who just proved who they are (how: `amr`)."""
    secret = secrets.token_urlsafe(32)
    session_id = yield from start_session(
        rules,
        user,
        client,
        ttl=ttl,
        secret_hash=secret_digest(_COOKIE, secret),
        data={"browser": "remembered" if remember else "session", AMR: " ".join(amr)},
        detail=", ".join(filter(None, ["browser", "remembered" if remember else "", detail])),
    )
    session = yield from call(Store.get_session, session_id)
    if session is None:  # gone at once: another login evicted it under the limit
        raise SessionRevoked()
    return BrowserSession(f"{SESSION_PREFIX}{session_id}_{secret}", remember, session)


def browser_login(
    rules: SessionRules,
    username: str,
    password: str,
    client: Client,
    *,
    ttl: int,
    remember: bool,
    mfa: MfaRules | None = None,
) -> Flow[BrowserSession]:
    """Check a username and password (the same checks, lock-out and answers as a token
    login) and open a browser session; a user with a second factor gets
    `SecondFactorRequired` instead."""
    user = yield from check_password(rules, username, password, client, mfa)
    via = {"kind": "browser", "remember": remember}
    yield from second_step(rules, mfa, user, client, via)
    return (yield from open_browser_session(rules, user, client, ttl=ttl, remember=remember))


def browser_identity(rules: SessionRules, cookie: str) -> Flow[Identity]:
    """The identity a session cookie stands for, checked against the store: the
    session must be live, a login session, and its stored hash that of the cookie's
    secret; the user must exist and be enabled.  Anything else is `SessionRevoked`."""
    match = _SHAPE.fullmatch(cookie)
    if match is None:
        raise MalformedToken("the session cookie is malformed")
    session_id, secret = match.groups()
    session = yield from call(Store.get_session, session_id)
    if (
        session is None
        or session.kind != LOGIN
        or not hmac.compare_digest(session.refresh_hash, secret_digest(_COOKIE, secret))
    ):
        raise SessionRevoked()
    user = yield from call(Store.get_user, session.username)
    if user is None or not user.enabled:
        raise SessionRevoked()
    now = time.time()
    if now - session.last_seen.timestamp() >= rules.touch_interval:
        yield from call(Store.touch_session, session.id, datetime.fromtimestamp(now, timezone.utc))
    auth_time, amr = session_proof(session)
    claims = {
        "sub": user.username,
        "uid": user.id,
        "sid": session.id,
        "ver": user.version,
        "exp": int(session.expires_at.timestamp()),
        "auth_time": auth_time,
        "amr": tuple(amr),  # as a token's claims are read: frozen
        "cookie": True,
        "remembered": session.data.get("browser") == "remembered",
    }
    extra = yield from group_grants(rules.policy, user.groups)
    return identity_from_user(rules.policy, user, session.id, claims, extra)


def open_for(
    rules: SessionRules,
    browser: BrowserRules | None,
    user: User,
    via: Mapping[str, Any],
    client: Client,
    amr: Sequence[str],
    detail: str,
) -> Flow[TokenPair | BrowserSession]:
    """Open the session a login was for, once it is proven: a browser session when
    `via` says so (``{"kind": "browser", "remember": ...}``) and browser sessions are on
    (`browser`), a token pair otherwise."""
    if via.get("kind") == "browser" and browser is not None:
        remember = bool(via.get("remember"))
        opened: BrowserSession = yield from open_browser_session(
            rules,
            user,
            client,
            ttl=browser.remember_ttl if remember else browser.session_ttl,
            remember=remember,
            amr=amr,
            detail=detail,
        )
        return opened
    pair: TokenPair = yield from open_session(rules, user, client, detail, amr)
    return pair
