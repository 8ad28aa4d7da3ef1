"""Passkeys (WebAuthn), as flows: adding one, a login by passkey alone, the proof a
passkey gives as a second factor or a step-up, listing and removing.

Every answer is checked against a challenge that works once: a ceremony token is spent
by a store counter keyed by its id (an answer replayed with it is refused even by an
authenticator that keeps no signature counter), and a second step's challenge is spent
by the write that records the passkey's use (it moves the user's version on).  A passkey
that does not verify counts toward the account's lock-out as a wrong code does.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from ..audit import AuditEvent
from ..errors import (
    BadCredentials,
    Conflict,
    InvalidToken,
    NotFound,
    StoreError,
    UserNotFound,
)
from ..factors import Factors, Passkey, new_recovery_codes
from ..identity import Client
from ..passkeys import (
    LOGIN,
    REAUTH,
    REGISTER,
    CeremonyClaims,
    PasskeyRules,
    Refused,
    credential_id_of,
    user_handle_of,
)
from ..stores.base import Store
from ..users import User
from .ops import Emit, Flow, call
from .sessions import SessionRules

__all__ = [
    "PASSKEY_AMR",
    "begin_registration",
    "finish_registration",
    "passkey_login",
    "prove_passkey",
    "remove_passkey",
    "spend_ceremony",
    "spend_proof",
]

#: How a login by passkey alone is named (RFC 8176): a key held, which verified its
#: user (a PIN or a biometric), two factors in one.
PASSKEY_AMR = ("hwk", "user", "mfa")
#: The most passkeys one account keeps.
MAX_PASSKEYS = 20


def spend_ceremony(claims: CeremonyClaims) -> Flow[None]:
    """Spend a ceremony token: the first answer with it goes on, any other is
    `InvalidToken`."""
    left = max(1.0, claims.expires_at - time.time() + 5)
    uses = yield from call(Store.incr, f"passkey-ceremony:{claims.jti}", left)
    if uses > 1:
        raise InvalidToken("this passkey_token was used already: start again")


def begin_registration(passkeys: PasskeyRules, username: str) -> Flow[dict[str, Any]]:
    """The options to add a passkey to `username`'s account (its passkeys excluded, so
    an authenticator holding one says so), and their token."""
    user = yield from _user(username)
    factors = Factors.load(user.factors)
    if len(factors.passkeys) >= MAX_PASSKEYS:
        raise Conflict(f"an account keeps at most {MAX_PASSKEYS} passkeys: remove one first")
    return passkeys.registration(user, factors.passkeys)


def finish_registration(
    passkeys: PasskeyRules,
    username: str,
    token: object,
    credential: object,
    name: object,
    client: Client,
) -> Flow[tuple[User, Passkey, list[str]]]:
    """Add the passkey a registration answer creates: the user as now stored, the
    passkey, and new recovery codes when the account had none (show them once)."""
    claims = passkeys.read(token, [REGISTER])
    user = yield from _user(username)
    if claims.username != user.username or claims.user_id != user.id:
        raise InvalidToken("this passkey_token was issued to another account")
    yield from spend_ceremony(claims)
    try:
        key = passkeys.registered(credential, claims.challenge, name)
    except Refused as refused:
        yield Emit(
            AuditEvent(
                "mfa_failure", user.username, client_ip=client.ip, detail=f"passkey {refused}"
            )
        )
        raise BadCredentials("the passkey's registration was not accepted") from None
    factors = Factors.load(user.factors)
    if factors.passkey(key.id) is not None:
        raise Conflict("this passkey is registered already")
    codes = [] if factors.recovery else new_recovery_codes()
    changed = replace(factors, passkeys=(*factors.passkeys, key))
    if codes:
        changed = changed.with_recovery(codes)
    saved = yield from call(Store.update_user, user.changed(factors=changed.dump()), user.version)
    yield Emit(
        AuditEvent(
            "mfa_enrolled", user.username, client_ip=client.ip, detail=f"passkey {key.name!r}"
        )
    )
    return saved, key, codes


def prove_passkey(
    passkeys: PasskeyRules,
    sessions: SessionRules,
    user: User,
    challenge: bytes,
    credential: object,
    client: Client,
    *,
    user_verified: bool = False,
) -> Flow[User]:
    """Check an authentication answer of one of `user`'s passkeys (user read just
    before) against `challenge`, and record its use (counter, time): the user as now
    stored.  A passkey that is not theirs or does not verify is `BadCredentials` and
    counts toward the lock-out; a locked account is `AccountLocked`."""
    name = user.username
    claimed = credential_id_of(credential)  # a malformed answer is refused before a guess
    yield from sessions.lockout.reserve(name)
    factors = Factors.load(user.factors)
    key = factors.passkey(claimed)
    try:
        if key is None:
            raise Refused("a passkey this account does not have")
        used = passkeys.authenticated(credential, challenge, key, user_verified=user_verified)
    except Refused as refused:
        yield from sessions.lockout.failed(name, client.ip)
        yield Emit(
            AuditEvent("mfa_failure", name, client_ip=client.ip, detail=f"passkey: {refused}")
        )
        raise BadCredentials("the passkey was not accepted") from None
    changed = replace(
        factors, passkeys=tuple(used if k.id == used.id else k for k in factors.passkeys)
    )
    saved = yield from spend_proof(sessions, user, changed)
    yield Emit(
        AuditEvent("mfa_success", name, client_ip=client.ip, detail=f"passkey {used.name!r}")
    )
    return saved


def spend_proof(sessions: SessionRules, user: User, factors: Factors) -> Flow[User]:
    """Store `user`'s factors as a proof left them (a code's step or a recovery code
    spent, a passkey's counter), on the version the proof was checked against, and
    clear the lock-out count it reserved.  Another request that spent the same proof
    (or its challenge) a moment ago wins: `InvalidToken`."""
    try:
        saved = yield from call(
            Store.update_user, user.changed(factors=factors.dump()), user.version
        )
    except StoreError as err:
        if err.status == 503:
            raise
        raise InvalidToken("the challenge is used or out of date: start again") from None
    yield from sessions.lockout.succeeded(user.username)
    return saved


def passkey_login(
    passkeys: PasskeyRules,
    sessions: SessionRules,
    token: object,
    credential: object,
    client: Client,
) -> Flow[tuple[User, dict[str, Any]]]:
    """A login by passkey alone: the answer names its user (the handle the passkey was
    made with), whose passkey must verify them (a PIN or a biometric).  Returns the
    user as now stored and what the login was for, with ``"amr"``; the caller opens
    that session.  Every refusal reads the same, whether the passkey, its user or the
    answer was wrong."""
    claims = passkeys.read(token, [LOGIN])
    handle = user_handle_of(credential)
    yield from spend_ceremony(claims)
    held = yield from sessions.throttle.reserve(client.ip)
    found = yield from sessions.throttle.spared(
        held, _passkey_owner(passkeys, sessions, handle, claims, credential, client)
    )
    yield from sessions.throttle.passed(held)
    return found, {**claims.via, "amr": list(PASSKEY_AMR)}


def _passkey_owner(
    passkeys: PasskeyRules,
    sessions: SessionRules,
    handle: str,
    claims: CeremonyClaims,
    credential: object,
    client: Client,
) -> Flow[User]:
    user = (yield from call(Store.get_user_by_id, handle)) if handle else None
    if user is None or not user.enabled:
        yield Emit(
            AuditEvent(
                "login_failure", "", client_ip=client.ip, detail="passkey of no enabled account"
            )
        )
        raise BadCredentials("the passkey was not accepted")
    return (
        yield from prove_passkey(
            passkeys, sessions, user, claims.challenge, credential, client, user_verified=True
        )
    )


def reauth_passkey(
    passkeys: PasskeyRules,
    sessions: SessionRules,
    user: User,
    token: object,
    credential: object,
    client: Client,
) -> Flow[User]:
    """A signed-in user's step-up by one of their passkeys (`passkeys.authentication`
    of purpose `REAUTH` issued the token, to this user)."""
    claims = passkeys.read(token, [REAUTH])
    if claims.username != user.username or claims.user_id != user.id:
        raise InvalidToken("this passkey_token was issued to another account")
    yield from spend_ceremony(claims)
    return (
        yield from prove_passkey(passkeys, sessions, user, claims.challenge, credential, client)
    )


def remove_passkey(username: str, credential_id: str, client: Client) -> Flow[User]:
    """Remove one of a user's passkeys (the user's own choice, after a step-up).  Their
    last factor gone, they log in with the password alone."""
    user = yield from _user(username)
    factors = Factors.load(user.factors)
    key = factors.passkey(credential_id)
    if key is None:
        raise NotFound("no such passkey")
    left = tuple(k for k in factors.passkeys if k.id != key.id)
    changed = replace(factors, passkeys=left)
    if not changed.active:
        changed = Factors()  # no factor left: the recovery codes recover nothing
    saved = yield from call(Store.update_user, user.changed(factors=changed.dump()), user.version)
    yield Emit(
        AuditEvent(
            "mfa_removed", user.username, client_ip=client.ip, detail=f"passkey {key.name!r}"
        )
    )
    return saved


def passkey_list(user: User) -> list[dict[str, Any]]:
    """The user's passkeys, for ``GET /auth/passkeys`` (no key material)."""
    return [key.to_public_dict() for key in Factors.load(user.factors).passkeys]


def _user(username: str) -> Flow[User]:
    user = yield from call(Store.get_user, username)
    if user is None:
        raise UserNotFound()
    return user


def via_of(body: Mapping[str, Any], cookies: bool) -> dict[str, Any]:
    """What a passkey login opens: a browser session (``{"session": "cookie"}``, when
    cookie sessions are on), remembered or not, else a token pair."""
    if cookies and body.get("session") == "cookie":
        return {"kind": "browser", "remember": bool(body.get("remember"))}
    return {"kind": "token"}
