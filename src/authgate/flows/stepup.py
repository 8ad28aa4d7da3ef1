"""Step-up, as a flow: a signed-in user proves who they are again, for operations that
need a recent proof (`authgate.require_fresh`).

The proof is what a login of theirs would ask for at its last step: the password, or,
when they have a second factor, a code of it (or a passkey, `authgate.flows.passkeys`).
It opens a new session of the same kind (a token pair, or a browser session remembered
as the old one was) whose ``auth_time`` is now, and ends the old one: a new proof is a
new session, as a login is, so no session ever gets younger than its login.  Wrong
proofs count toward the lock-out as a login's do.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..audit import AuditEvent
from ..browser import BrowserRules
from ..errors import BadCredentials, NotAuthenticated, SessionRevoked
from ..factors import Factors
from ..identity import Client, Identity
from ..passkeys import REAUTH
from ..stores.base import Store
from ..tokens import TokenPair
from ..users import User
from .browser import BrowserSession, open_for
from .login import check_password
from .mfa import MfaRules, amr_of, prove_factor
from .ops import Emit, Flow, call
from .passkeys import reauth_passkey
from .sessions import LOGIN, PASSWORD, SessionRules

__all__ = ["proof_methods", "reauth_options", "reauthenticate", "renew_session", "signed_in"]


def proof_methods(user: User) -> list[str]:
    """What `reauthenticate` takes from `user`: a code of their second factor (or a
    passkey) when they have one, else their password; ``["login"]`` for a user with
    neither (made at a login through an identity provider): a new login is the proof."""
    factors = Factors.load(user.factors)
    if not factors.active:
        # A user made at a provider login has no password: they prove it by logging in
        # there again (a new session, whose login is recent).
        return ["password"] if user.password_hash else ["login"]
    methods = ["totp"] if factors.totp and factors.totp.confirmed else []
    methods += ["recovery_code"] if factors.recovery else []
    return methods + (["passkey"] if factors.passkeys else [])


def reauth_options(mfa: MfaRules | None, identity: Identity) -> Flow[dict[str, Any]]:
    """What the signed-in `identity` can prove itself with (``methods``), how recent a
    proof authgate's own endpoints ask (``max_age``), and for a user with passkeys the
    options of ``navigator.credentials.get()`` and their token (``passkey``)."""
    user = yield from signed_in(identity)
    methods = proof_methods(user)
    answer: dict[str, Any] = {
        "methods": methods,
        "max_age": mfa.step_up_ttl if mfa is not None else None,
    }
    passkeys = mfa.passkeys if mfa is not None else None
    if "passkey" in methods and passkeys is not None:
        keys = Factors.load(user.factors).passkeys
        answer["passkey"] = passkeys.authentication(REAUTH, user, keys, {})
    return answer


def signed_in(identity: Identity) -> Flow[User]:
    """The user of a signed-in identity's login session, as stored now; `SessionRevoked`
    when that session or user is gone (an API key has no login to renew)."""
    if not identity.is_authenticated:
        raise NotAuthenticated()
    if not identity.session_id:
        raise SessionRevoked("this credential has no login session to prove again")
    session = yield from call(Store.get_session, identity.session_id)
    if session is None or session.kind != LOGIN or session.username != identity.username:
        raise SessionRevoked("this credential has no login session to prove again")
    user = yield from call(Store.get_user, identity.username)
    if user is None or not user.enabled or user.id != identity.user_id:
        raise SessionRevoked()
    return user


def reauthenticate(
    rules: SessionRules,
    mfa: MfaRules | None,
    browser: BrowserRules | None,
    identity: Identity,
    proof: Mapping[str, Any],
    client: Client,
) -> Flow[TokenPair | BrowserSession]:
    """Check `proof` (``{"password": ...}``, or for a user with a second factor
    ``{"code": ...}`` or ``{"passkey": <credential>, "passkey_token": ...}``, the token
    of `reauth_options`) for the signed-in `identity`, and renew its session."""
    user = yield from signed_in(identity)
    methods = proof_methods(user)
    passkeys = mfa.passkeys if mfa is not None else None
    if proof.get("passkey") is not None and "passkey" in methods and passkeys is not None:
        proven = yield from reauth_passkey(
            passkeys, rules, user, proof.get("passkey_token"), proof["passkey"], client
        )
        amr = ["hwk"]
    elif methods == ["login"]:
        raise BadCredentials(
            "this account has no password here: log in again (through its identity "
            "provider) for a recent login"
        )
    elif "password" in methods:
        password = proof.get("password")
        if not isinstance(password, str):
            raise BadCredentials("this account proves itself with its password: send it")
        proven = yield from check_password(rules, user.username, password, client)
        if proven.id != user.id:  # the account was replaced meanwhile
            raise BadCredentials()
        amr = [PASSWORD]
    else:
        code = proof.get("code")
        codes = "totp" in methods or "recovery_code" in methods
        if mfa is None or not codes or not isinstance(code, str):
            raise BadCredentials(
                "this account proves itself with its second factor: send a 'code' of it"
                + (" or use a passkey" if "passkey" in methods else "")
            )
        proven, method = yield from prove_factor(mfa, rules, user, code, client)
        amr = amr_of(method)[1:2]
    return (yield from renew_session(rules, browser, identity, proven, amr, client))


def renew_session(
    rules: SessionRules,
    browser: BrowserRules | None,
    identity: Identity,
    user: User,
    amr: list[str],
    client: Client,
) -> Flow[TokenPair | BrowserSession]:
    """Open the new session of a proof made again (the old one's kind) and end the old."""
    cookie = bool(identity.claims.get("cookie"))
    via = {"kind": "browser" if cookie else "token", "remember": identity.claims.get("remembered")}
    opened = yield from open_for(rules, browser, user, via, client, amr, "proven again")
    yield from call(Store.revoke_session, identity.session_id)
    yield Emit(
        AuditEvent(
            "reauthenticated",
            user.username,
            identity.session_id,
            client.ip,
            f"{' '.join(amr)}; session renewed",
        )
    )
    return opened
