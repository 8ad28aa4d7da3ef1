"""SCRAM-SHA-256 login in Project Haystack's HTTP variant of the handshake.

::

    C: GET /auth/scram   Authorization: HELLO username=<base64url(username)>
    S: 401  WWW-Authenticate: SCRAM hash=SHA-256, handshakeToken=<t>
    C: GET /auth/scram   Authorization: SCRAM handshakeToken=<t>, data=<b64url(client-first)>
    S: 401  WWW-Authenticate: SCRAM handshakeToken=<t>, hash=SHA-256, data=<b64url(server-first)>
    C: GET /auth/scram   Authorization: SCRAM handshakeToken=<t>, data=<b64url(client-final)>
    S: 200  Authentication-Info: authToken=<access token>, data=<b64url(server-final)>

The access token is a normal authgate token (a session is opened as by a password
login), accepted afterwards as ``Authorization: BEARER authToken=<token>``.

Users carry SCRAM credentials (salt, iterations, stored key, server key; never the
password) derived whenever a password is set.  A HELLO for an unknown user gets a
handshake token too, and later a salt derived from a server secret and the username, so
it looks exactly like a known user's; it fails at the proof, like a wrong password.  The
proof and the nonce prefix are checked in constant time; handshakes live 60 seconds,
each token serves one handshake, and a username may start at most 20 a minute.  The
proof step goes through the same lock-out as password logins.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import timedelta

from ..audit import AuditEvent
from ..errors import AccountLocked, AuthenticationError, BadCredentials, ValidationError
from ..identity import Client
from ..passwords import ScramCredentials, derive_credentials
from ..stores.base import Session, Store
from ..tokens import TokenPair
from ..users import new_session_id, normalize_username, utcnow
from .login import take_guess
from .mfa import pending
from .ops import Emit, Flow, call
from .sessions import SessionRules, open_session

__all__ = ["ScramReply", "derive_credentials", "scram_step"]

HANDSHAKE_SECONDS = 60
HANDSHAKES_PER_MINUTE = 20
HELLO_WINDOW = 60
_KIND = "scram"
_PARAM = re.compile(r"\s*([A-Za-z]+)\s*=\s*([^,\s]*)\s*(?:,|$)")


class ScramError(AuthenticationError):
    """A SCRAM message that cannot be understood, or a handshake that is gone."""

    code = "invalid_scram"
    bearer_error = None
    default_detail = "the SCRAM handshake failed"


@dataclass(frozen=True, slots=True)
class ScramReply:
    """What the endpoint answers: a status and the header to send with it."""

    status: int
    header: str
    value: str


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64url(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except ValueError as err:
        raise ScramError("a SCRAM value is not base64url") from err


def _params(value: str) -> dict[str, str]:
    found = dict(_PARAM.findall(value))
    if not found:
        raise ScramError("the SCRAM header has no parameters")
    return found


def _attributes(message: str) -> dict[str, str]:
    attrs: dict[str, str] = {}
    for part in message.split(","):
        name, sep, value = part.partition("=")
        if sep and len(name) == 1:
            attrs.setdefault(name, value)
    return attrs


def scram_step(
    rules: SessionRules, secret: bytes, authorization: str, client: Client
) -> Flow[ScramReply]:
    """Answer one round of the handshake (see the module docstring)."""
    scheme, _, rest = authorization.strip().partition(" ")
    scheme = scheme.upper()
    if scheme == "HELLO":
        return (yield from _hello(_params(rest)))
    if scheme != "SCRAM":
        raise ScramError("send 'Authorization: HELLO username=<base64url>' to start")
    params = _params(rest)
    token, data = params.get("handshakeToken", ""), params.get("data", "")
    if not token or not data:
        raise ScramError("a SCRAM message needs handshakeToken and data")
    state = yield from call(Store.get_session, token)
    if state is None or state.kind != _KIND:
        raise ScramError("the handshake is unknown or expired: start again with HELLO")
    message = _unb64url(data).decode("utf-8", "replace")
    if state.data.get("stage") == "hello":
        return (yield from _server_first(secret, state, message))
    if state.data.get("stage") == "first":
        return (yield from _server_final(rules, state, message, client))
    raise ScramError("the handshake is in an unknown state")


def _hello(params: dict[str, str]) -> Flow[ScramReply]:
    raw = params.get("username", "")
    try:
        username = normalize_username(_unb64url(raw).decode("utf-8"))
    except (ValidationError, UnicodeDecodeError):
        raise ScramError("HELLO needs username=<base64url of a valid username>") from None
    started = yield from call(Store.incr, f"scram-hello:{username}", HELLO_WINDOW)
    if started > HANDSHAKES_PER_MINUTE:
        ttl = yield from call(Store.counter_ttl, f"scram-hello:{username}")
        raise AccountLocked(max(1, int(ttl)), "too many SCRAM handshakes; retry later")
    token = new_session_id(username)
    now = utcnow()
    hello = Session(
        id=token,
        username=username,
        kind=_KIND,
        created_at=now,
        last_seen=now,
        expires_at=now + timedelta(seconds=HANDSHAKE_SECONDS),
        data={"stage": "hello"},
    )
    yield from call(Store.create_session, hello)
    return ScramReply(401, "www-authenticate", f"SCRAM hash=SHA-256, handshakeToken={token}")


def _server_first(secret: bytes, state: Session, message: str) -> Flow[ScramReply]:
    if not message.startswith("n,,"):
        raise ScramError("client-first must start with 'n,,' (no channel binding)")
    bare = message[3:]
    attrs = _attributes(bare)
    nonce = attrs.get("r", "")
    if attrs.get("n") is None or not 16 <= len(nonce) <= 256 or "," in nonce:
        raise ScramError("client-first needs n=<user> and r=<nonce>")
    if normalize_username(attrs["n"].replace("=2C", ",").replace("=3D", "=")) != state.username:
        raise ScramError("client-first names another user than HELLO")
    user = yield from call(Store.get_user, state.username)
    creds = ScramCredentials.parse(user.scram_credentials) if user is not None else None
    if creds is None:
        creds = ScramCredentials.fake(secret, state.username)
    combined = nonce + secrets.token_urlsafe(18)
    server_first = f"r={combined},s={_b64(creds.salt)},i={creds.iterations}"
    ok = yield from call(Store.revoke_session, state.id)  # each token serves one round
    if not ok:
        raise ScramError("the handshake was already used")
    data = {"stage": "first", "bare": bare, "server_first": server_first, "nonce": combined}
    yield from call(Store.create_session, state.replace(data=data))
    value = f"SCRAM handshakeToken={state.id}, hash=SHA-256, data={_b64url(server_first.encode())}"
    return ScramReply(401, "www-authenticate", value)


def _server_final(
    rules: SessionRules, state: Session, message: str, client: Client
) -> Flow[ScramReply]:
    done = yield from call(Store.revoke_session, state.id)  # one try per handshake
    if not done:
        raise ScramError("the handshake was already used")
    without_proof, _, proof_part = message.rpartition(",p=")
    attrs = _attributes(without_proof)
    expected_nonce = state.data["nonce"]
    if attrs.get("c") != "biws" or not hmac.compare_digest(
        attrs.get("r", "").encode(), expected_nonce.encode()
    ):
        raise ScramError("client-final has the wrong nonce or channel binding")
    try:
        proof = base64.b64decode(proof_part, validate=True)
    except ValueError:
        raise ScramError("client-final has no valid proof") from None
    held = yield from rules.throttle.reserve(client.ip, state.username)
    user = yield from rules.throttle.spared(held, take_guess(rules, state.username))
    creds = ScramCredentials.parse(user.scram_credentials) if user is not None else None
    auth_message = f"{state.data['bare']},{state.data['server_first']},{without_proof}"
    valid = False
    if creds is not None and user is not None and user.enabled and len(proof) == 32:
        signature = hmac.new(creds.stored_key, auth_message.encode(), hashlib.sha256).digest()
        client_key = bytes(a ^ b for a, b in zip(proof, signature, strict=True))
        valid = hmac.compare_digest(hashlib.sha256(client_key).digest(), creds.stored_key)
    if not valid or user is None or creds is None:
        yield from rules.lockout.failed(state.username, client.ip)
        yield Emit(
            AuditEvent(
                "login_failure", state.username, client_ip=client.ip, detail="SCRAM proof refused"
            )
        )
        raise BadCredentials()
    # SCRAM has no room for a second step: an account with (or due) a second factor
    # logs in at /auth/login, never here.
    pending(None, rules, user)
    yield from rules.lockout.succeeded(state.username)
    yield from rules.throttle.passed(held)
    pair: TokenPair = yield from open_session(rules, user, client, detail="SCRAM")
    server_signature = hmac.new(creds.server_key, auth_message.encode(), hashlib.sha256).digest()
    final = f"v={_b64(server_signature)}"
    return ScramReply(
        200,
        "authentication-info",
        f"authToken={pair.access_token}, data={_b64url(final.encode())}",
    )
