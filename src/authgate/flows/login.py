"""Password logins and password changes, as flows: one argon2 verification for every
kind of failure, the lock-out slot taken before the user is read.

A user whose hash another library made (`authgate.password_formats`) costs that hash's
verification instead, and gets an argon2id hash at their first successful login."""

from __future__ import annotations

import contextlib
from typing import Any

from ..audit import AuditEvent
from ..errors import (
    BadCredentials,
    InvalidUsername,
    StoreError,
)
from ..identity import Client
from ..stores.base import Store
from ..tokens import TokenPair
from ..users import User, normalize_username
from .mfa import MfaRules, challenge_for, pending
from .ops import DummyVerify, Emit, Flow, Verify, call
from .sessions import SessionRules, open_session
from .users import password_fields


def _text_or_nothing(value: object) -> str:
    return value if isinstance(value, str) else ""


def login(
    rules: SessionRules,
    username: str,
    password: str,
    client: Client,
    mfa: MfaRules | None = None,
) -> Flow[TokenPair]:
    """Check a username and password and open a session (see `check_password`); a user
    with a second factor gets `SecondFactorRequired` instead (`authgate.flows.mfa`)."""
    user = yield from check_password(rules, username, password, client, mfa)
    yield from second_step(rules, mfa, user, client, {"kind": "token"})
    return (yield from open_session(rules, user, client))


def second_step(
    rules: SessionRules, mfa: MfaRules | None, user: User, client: Client, via: dict[str, Any]
) -> Flow[None]:
    """Raise `SecondFactorRequired` (with the challenge) when `user`'s login needs a
    second step; nothing otherwise."""
    purpose = pending(mfa, rules, user)
    if purpose is None or mfa is None:
        return
    yield Emit(
        AuditEvent(
            "login_second_step",
            user.username,
            client_ip=client.ip,
            detail=f"password ok; {purpose}",
        )
    )
    raise challenge_for(mfa, user, purpose, via)


def check_password(
    rules: SessionRules,
    username: str,
    password: str,
    client: Client,
    mfa: MfaRules | None = None,
) -> Flow[User]:
    """The user a username and password prove, before any session is opened.

    Unknown users, invalid usernames, wrong passwords and disabled accounts all take the
    same path (one argon2 verification) and end in the same `BadCredentials`; so does a
    password that is not a string (from Python: the HTTP body is validated).  A stored
    hash in another format is replaced by an argon2id one once the password matches.
    """
    password = _text_or_nothing(password)  # "" matches no hash: refused like a wrong one
    try:
        name = normalize_username(username)
    except InvalidUsername:
        yield from rules.throttle.reserve(client.ip)  # kept: a failure
        yield DummyVerify(password)
        yield Emit(
            AuditEvent(
                "login_failure", str(username)[:64], client_ip=client.ip, detail="invalid username"
            )
        )
        raise BadCredentials() from None
    # The address first: an address over its limit neither checks nor locks anything.
    held = yield from rules.throttle.reserve(client.ip, name)
    user = yield from rules.throttle.spared(held, take_guess(rules, name))
    if user is None or not user.password_hash:
        yield DummyVerify(password)
        ok = False
    else:
        ok = yield Verify(user.password_hash, password)
    if not ok or user is None or not user.enabled:
        yield from rules.lockout.failed(name, client.ip)
        yield Emit(AuditEvent("login_failure", name, client_ip=client.ip))
        raise BadCredentials()
    if pending(mfa, rules, user) is None:
        yield from rules.lockout.succeeded(name)
    else:  # the login is not done: wrong codes to come must count with earlier failures
        yield from rules.lockout.give_back(name)
    yield from rules.throttle.passed(held)
    if rules.hasher.needs_rehash(user.password_hash) or not user.scram_credentials:
        user = yield from _rehash(user, password)
    return user


def take_guess(rules: SessionRules, username: str) -> Flow[User | None]:
    """Reserve a password check on the account (the lock-out) and read the user; a store
    that cannot be read gets the reservation back (best effort): nothing was checked."""
    yield from rules.lockout.reserve(username)
    try:
        user = yield from call(Store.get_user, username)
    except StoreError:
        with contextlib.suppress(StoreError):
            yield from rules.lockout.give_back(username)
        raise
    return user


def _rehash(user: User, password: str) -> Flow[User]:
    """Store a hash made with the current parameters (and SCRAM credentials a user
    created before them lacks); a concurrent change wins.  The password policy is not
    applied: the password has just matched, and a policy tightened since it was set (or
    another library's looser one) must not turn this login into a failure."""
    secrets_ = yield from password_fields(password, rehash=True)
    try:
        saved = yield from call(Store.update_user, user.changed(**secrets_), user.version)
    except StoreError:  # a concurrent change, or a read-only user source: best effort
        return user
    return saved


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

    def changed(outcome: str) -> Emit:
        return Emit(AuditEvent("password_change", username, keep_session or "", client.ip, outcome))

    ok = yield Verify(user.password_hash, current)
    if not ok:
        yield changed("refused: wrong current password")
        raise BadCredentials("the current password is wrong")
    secrets_ = yield from password_fields(new)
    saved = yield from call(Store.update_user, user.changed(**secrets_), user.version)
    count = yield from call(Store.revoke_user_sessions, username, keep_session)
    yield changed(f"{count} other sessions revoked")
    return saved
