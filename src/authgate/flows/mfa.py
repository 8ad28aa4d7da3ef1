"""Second factors, as flows: TOTP enrolment, recovery codes, the second step of a login,
and an admin's reset.

A login whose user has a confirmed factor (or holds a role that requires one) does not
open a session at the password step: it ends in `SecondFactorRequired`, which carries a
challenge, a short-lived signed token of its own type (never an access token) bound to
the user's id and version.  The second step (`complete_login`) takes the challenge and a
TOTP code or a recovery code, and opens the session the first step was for (a token
pair, or a browser session).  Accepting a code writes the user (the code's time step,
or the spent recovery code), which bumps the version: the challenge, and the code, work
once.  Wrong codes count toward the lock-out as wrong passwords do; the password step
of such a login neither clears the count nor adds to it.

A user whose role requires a factor but who has none gets a challenge for enrolment
instead: with it they enrol (`begin_totp`, `confirm_totp`), and the confirmation opens
the session.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from ..audit import AuditEvent
from ..errors import (
    BadCredentials,
    Conflict,
    InvalidToken,
    NotFound,
    PermissionDenied,
    SecondFactorRequired,
    UserNotFound,
    ValidationError,
)
from ..factors import (
    Factors,
    SecretBox,
    TotpFactor,
    new_recovery_codes,
    new_totp_secret,
    provisioning_uri,
    qr_svg,
)
from ..identity import Client
from ..passkeys import PasskeyRules
from ..stores.base import Store
from ..tokens import TokenVerifier
from ..users import User
from .ops import Emit, Flow, call
from .passkeys import prove_passkey, spend_proof
from .sessions import PASSWORD, SessionRules

__all__ = [
    "ENROL",
    "LOGIN",
    "MfaRules",
    "TotpEnrolment",
    "begin_totp",
    "challenge_for",
    "complete_login",
    "confirm_totp",
    "mfa_status",
    "prove_factor",
    "read_challenge",
    "regenerate_recovery",
    "reset_factors",
]

LOGIN = "login"  # a challenge for the second step of a login
ENROL = "enrol"  # a challenge to enrol a factor the user's role requires


@dataclass(frozen=True, slots=True)
class MfaRules:
    """What the second-factor flows need, fixed when a `Gate` is built."""

    box: SecretBox
    challenges: TokenVerifier
    challenge_ttl: int = 300
    issuer: str = "authgate"
    #: Passkeys, when the relying party is configured (``AUTHGATE_PASSKEY_RP_ID``).
    passkeys: PasskeyRules | None = None
    #: How recent a proof adding or removing a factor needs (`authgate.check_fresh`).
    step_up_ttl: int = 600


def required(sessions: SessionRules, user: User) -> bool:
    """Must `user` have a second factor (a role of theirs, or one it includes, is in
    ``mfa_roles``)?"""
    hierarchy = sessions.policy.hierarchy
    return any(hierarchy.admits(user.roles, role) for role in sessions.mfa_roles)


def pending(mfa: MfaRules | None, sessions: SessionRules, user: User) -> str | None:
    """What a login of `user` needs after the password: `LOGIN` (a code), `ENROL` (a
    factor their role requires), or None (nothing: open the session).  Without second
    factors configured (`mfa` None), a user who has or needs one cannot log in at all:
    `PermissionDenied` (never a session without the second step)."""
    purpose = LOGIN if Factors.load(user.factors).active else None
    if purpose is None and required(sessions, user):
        purpose = ENROL
    if purpose is not None and mfa is None:
        raise PermissionDenied(
            "this account logs in with a second factor: use the password login of "
            "/auth/login (or /auth/session), which asks for it"
        )
    return purpose


def password_mark(user: User) -> str:
    """A fingerprint of the user's password hash, for a challenge to be bound to: a new
    password changes it (never reveals the hash: a keyless SHA-256, cut short)."""
    return hashlib.sha256(f"authgate-mfa\x00{user.password_hash}".encode()).hexdigest()[:32]


def challenge_for(
    mfa: MfaRules, user: User, purpose: str, via: Mapping[str, Any]
) -> SecondFactorRequired:
    """The refusal that asks for the second step: its challenge, the methods that
    complete it, and for a user with passkeys the options of ``navigator.credentials.
    get()`` (whose WebAuthn challenge the login's challenge carries).  `via` says what
    the login was for (``{"kind": "token"}`` or ``{"kind": "browser", "remember":
    True}``)."""
    claims: dict[str, Any] = {
        "sub": user.username,
        "uid": user.id,
        "sid": purpose,
        "ver": user.version,
        "pwd": password_mark(user),
        "via": dict(via),
        "roles": [],
        "groups": [],
        "perms": [],
    }
    factors = Factors.load(user.factors)
    passkey = None
    if purpose == LOGIN:
        methods = []
        if factors.totp is not None and factors.totp.confirmed:
            methods.append("totp")
        if factors.recovery:
            methods.append("recovery_code")
        if factors.passkeys and mfa.passkeys is not None:
            methods.append("passkey")
            webauthn_challenge = secrets.token_bytes(32)
            claims["wac"] = base64.urlsafe_b64encode(webauthn_challenge).decode()
            passkey = mfa.passkeys.authentication(
                "", user, factors.passkeys, {}, challenge=webauthn_challenge
            )
    else:
        methods = ["enrol_totp"] + (["enrol_passkey"] if mfa.passkeys is not None else [])
    token = mfa.challenges.issue(claims, mfa.challenge_ttl)
    return SecondFactorRequired(token, methods, mfa.challenge_ttl, passkey)


def read_challenge(
    mfa: MfaRules, challenge: object, purpose: str
) -> Flow[tuple[User, dict[str, Any]]]:
    """The user a challenge of `purpose` was issued for, as they still are, and what the
    login was for (with ``"wac"``, the WebAuthn challenge of a passkey's answer, when
    the user had passkeys); `InvalidToken` otherwise (expired, used, of another
    purpose)."""
    if not isinstance(challenge, str) or not challenge or len(challenge) > 4096:
        raise InvalidToken("the second-factor challenge is missing or malformed")
    claims = mfa.challenges.verify(challenge)
    if claims["sid"] != purpose:
        raise InvalidToken("this challenge is for another step")
    user = yield from call(Store.get_user, claims["sub"])
    # A login's challenge works once: accepting its code writes the user.  An
    # enrolment's writes the user too (the new authenticator), so it is bound to the
    # password instead: a new password (a reset) ends it, and once enrolled it is
    # spent (the factor is active, and enrolling again is refused).
    if (
        user is None
        or not user.enabled
        or user.id != claims.get("uid")
        or not hmac.compare_digest(password_mark(user), str(claims.get("pwd", "")))
        or (purpose == LOGIN and user.version != claims["ver"])
        or (purpose == ENROL and Factors.load(user.factors).active)
    ):
        raise InvalidToken("the challenge is used or out of date: log in again")
    via = dict(claims["via"]) if isinstance(claims.get("via"), Mapping) else {"kind": "token"}
    if isinstance(claims.get("wac"), str):
        via["wac"] = claims["wac"]
    return user, via


def complete_login(
    mfa: MfaRules,
    sessions: SessionRules,
    challenge: object,
    code: object,
    client: Client,
    credential: object = None,
) -> Flow[tuple[User, dict[str, Any]]]:
    """The second step of a login: a TOTP code or a recovery code for the challenge's
    user, or a passkey's answer (`credential`) to the challenge's WebAuthn challenge.
    Returns the user as now stored (the code or challenge spent) and what the login was
    for, with how it was proven (``"amr"``); the caller opens that session.  A wrong
    code or passkey is `BadCredentials` and counts toward the lock-out; a locked
    account is `AccountLocked`."""
    user, via = yield from read_challenge(mfa, challenge, LOGIN)
    wac = via.pop("wac", None)
    if credential is None:
        saved, method = yield from prove_factor(mfa, sessions, user, code, client)
    elif mfa.passkeys is None or not isinstance(wac, str):
        raise ValidationError("this login takes no passkey: send a code", field="credential")
    else:
        challenge_bytes = base64.urlsafe_b64decode(wac)
        saved = yield from prove_passkey(
            mfa.passkeys, sessions, user, challenge_bytes, credential, client
        )
        method = "passkey"
    return saved, {**via, "amr": amr_of(method)}


def prove_factor(
    mfa: MfaRules, sessions: SessionRules, user: User, code: object, client: Client
) -> Flow[tuple[User, str]]:
    """Spend a TOTP code or a recovery code of `user` (read just before): the user as
    now stored, and which it was (``"totp"``, ``"recovery_code"``).  The write makes
    the user's version move on, so whatever was bound to the old one (a login's
    challenge) is spent too.  A wrong code is `BadCredentials` and counts toward the
    lock-out; a locked account is `AccountLocked`."""
    name = user.username
    yield from sessions.lockout.reserve(name)
    factors = Factors.load(user.factors)
    try:
        spent = _accepted(mfa, user, factors, code)
    except ValueError:  # the secret does not open: the ring lost the key that sealed it
        spent = None
        yield Emit(
            AuditEvent(
                "mfa_failure",
                name,
                client_ip=client.ip,
                detail="the TOTP secret does not open with this key ring: was the key that "
                "sealed it removed?",
            )
        )
    if spent is None:
        yield from sessions.lockout.failed(name, client.ip)
        yield Emit(AuditEvent("mfa_failure", name, client_ip=client.ip, detail="wrong code"))
        raise BadCredentials("the code is wrong or already used")
    changed, method = spent
    saved = yield from spend_proof(sessions, user, changed)
    left = f", {len(changed.recovery)} recovery codes left" if method == "recovery_code" else ""
    yield Emit(AuditEvent("mfa_success", name, client_ip=client.ip, detail=method + left))
    return saved, method


def amr_of(method: str) -> list[str]:
    """How a login proven by a password and `method` is named (RFC 8176 ``amr``)."""
    return [PASSWORD, "hwk" if method == "passkey" else "otp", "mfa"]


def _accepted(
    mfa: MfaRules, user: User, factors: Factors, code: object
) -> tuple[Factors, str] | None:
    """The factors with `code` spent, and how, when it is a code of theirs."""
    if isinstance(code, str) and factors.totp is not None and factors.totp.confirmed:
        step = factors.totp.verify(mfa.box, user.id, code)
        if step:
            return replace(factors, totp=replace(factors.totp, last_step=step)), "totp"
    spent = factors.spend_recovery(code)
    return (spent, "recovery_code") if spent is not None else None


@dataclass(frozen=True, slots=True)
class TotpEnrolment:
    """A TOTP enrolment begun: what the authenticator app needs (show it once)."""

    secret: str
    uri: str
    qr_svg: str

    def to_dict(self) -> dict[str, str]:
        """The JSON body of ``POST /auth/mfa/totp``."""
        return {"secret": self.secret, "uri": self.uri, "qr_svg": self.qr_svg}


def begin_totp(mfa: MfaRules, username: str, client: Client) -> Flow[TotpEnrolment]:
    """Start enrolling a TOTP authenticator: a new secret, kept sealed and unconfirmed
    until `confirm_totp` (replacing an unconfirmed one); a confirmed one must be reset
    first (`Conflict`)."""
    user = yield from _user(username)
    factors = Factors.load(user.factors)
    if factors.totp is not None and factors.totp.confirmed:
        raise Conflict("a TOTP authenticator is enrolled already: an admin resets it first")
    secret = new_totp_secret()
    pending_factor = TotpFactor(
        sealed=mfa.box.seal(secret, user.id), confirmed=False, created_at=time.time()
    )
    changed = replace(factors, totp=pending_factor)
    yield from call(Store.update_user, user.changed(factors=changed.dump()), user.version)
    yield Emit(AuditEvent("mfa_enrolment_started", user.username, client_ip=client.ip))
    uri = provisioning_uri(secret, user.username, mfa.issuer)
    return TotpEnrolment(secret, uri, qr_svg(uri))


def confirm_totp(
    mfa: MfaRules, sessions: SessionRules, username: str, code: object, client: Client
) -> Flow[tuple[User, list[str]]]:
    """Confirm an enrolment with a first valid code: the authenticator is active from
    now on; returns the user and a new set of recovery codes (show them once).  A wrong
    code counts toward the lock-out."""
    user = yield from _user(username)
    factors = Factors.load(user.factors)
    if factors.totp is None or factors.totp.confirmed:
        raise NotFound("no TOTP enrolment is waiting for its first code: begin one")
    wrong = "the code is wrong: check the authenticator's clock and retry"
    step = yield from _totp_step(mfa, sessions, user, factors.totp, code, client, wrong)
    codes = new_recovery_codes()
    confirmed = replace(factors.totp, confirmed=True, last_step=step)
    changed = replace(factors, totp=confirmed).with_recovery(codes)
    saved = yield from _save(sessions, user, changed)
    yield Emit(AuditEvent("mfa_enrolled", user.username, client_ip=client.ip, detail="totp"))
    return saved, codes


def regenerate_recovery(
    mfa: MfaRules, sessions: SessionRules, username: str, code: object, client: Client
) -> Flow[list[str]]:
    """A new set of recovery codes (the old set is void), for a current TOTP code."""
    user = yield from _user(username)
    factors = Factors.load(user.factors)
    if factors.totp is None or not factors.totp.confirmed:
        raise NotFound("no TOTP authenticator is enrolled")
    wrong = "the code is wrong or already used"
    step = yield from _totp_step(mfa, sessions, user, factors.totp, code, client, wrong)
    codes = new_recovery_codes()
    used = replace(factors, totp=replace(factors.totp, last_step=step)).with_recovery(codes)
    yield from _save(sessions, user, used)
    yield Emit(AuditEvent("mfa_recovery_regenerated", user.username, client_ip=client.ip))
    return codes


def _totp_step(
    mfa: MfaRules,
    sessions: SessionRules,
    user: User,
    totp: TotpFactor,
    code: object,
    client: Client,
    wrong: str,
) -> Flow[int]:
    """The time step of a valid code of `totp`, a guess reserved on the account's
    lock-out first; a wrong code counts, is audited and is `BadCredentials` (`wrong`)."""
    yield from sessions.lockout.reserve(user.username)
    step = totp.verify(mfa.box, user.id, code)
    if not step:
        yield from sessions.lockout.failed(user.username, client.ip)
        yield Emit(AuditEvent("mfa_failure", user.username, client_ip=client.ip, detail=wrong))
        raise BadCredentials(wrong)
    return step


def _save(sessions: SessionRules, user: User, factors: Factors) -> Flow[User]:
    """Store the user's new factors, then clear the lock-out count the code reserved."""
    saved = yield from call(Store.update_user, user.changed(factors=factors.dump()), user.version)
    yield from sessions.lockout.succeeded(user.username)
    return saved


def reset_factors(username: str, actor: str, client: Client) -> Flow[User]:
    """Remove every second factor of a user (an admin's reset: the user logs in with
    the password alone, and enrols again when a role of theirs requires it)."""
    user = yield from _user(username)
    saved = yield from call(Store.update_user, user.changed(factors=""), user.version)
    yield Emit(AuditEvent("mfa_reset", user.username, client_ip=client.ip, actor=actor))
    return saved


def mfa_status(mfa: MfaRules | None, sessions: SessionRules, user: User) -> dict[str, Any]:
    """What a user has enrolled (never a secret): for ``GET /auth/mfa``."""
    factors = Factors.load(user.factors)
    totp = factors.totp
    return {
        "totp": bool(totp and totp.confirmed),
        "totp_pending": bool(totp and not totp.confirmed),
        "recovery_codes_left": len(factors.recovery),
        "passkeys": len(factors.passkeys),
        "required": required(sessions, user),
    }


def _user(username: str) -> Flow[User]:
    user = yield from call(Store.get_user, username)
    if user is None:
        raise UserNotFound()
    return user
