"""Logging in through an OpenID provider (authgate as the relying party), as flows: the
authorization code flow with PKCE (S256), ``state`` and ``nonce``, ending in an authgate
session of a local user made just in time.

`begin_login` builds the provider's authorization URL and a login state, signed and kept
in an HttpOnly cookie for the ten minutes the person may spend at the provider: the
``state`` the callback must bring back, the ``nonce`` the ID token must carry, the PKCE
verifier, and where to go after.  `finish_login` checks the callback against it, trades
the code for tokens (`ExchangeCode`: Authlib's client, off the event loop), verifies the
ID token with the provider's keys (the issuer exactly, this client as its audience, its
times, the nonce), and finds or makes the local user: keyed by issuer and subject (its
id is derived from them, which no sign-up or admin can choose), never by name or
address, so a provider's ``alice`` never logs in as a local ``alice``.
"""

from __future__ import annotations

import dataclasses
import hmac
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from ..audit import AuditEvent
from ..errors import (
    InvalidToken,
    LoginRefused,
    NotFound,
    ProviderUnavailable,
)
from ..identity import Client
from ..issuers import ExternalVerifier, read_claims
from ..tokens import TokenVerifier
from ..users import RoleHierarchy, User
from .drive import FetchFailed
from .issuers import IssuerState, external_user_id, local_user, refresh_keys
from .ops import Emit, ExchangeCode, Flow

__all__ = ["LoginRules", "begin_login", "external_user_id", "finish_login"]

_LOGIN = "oidc-login"  # the purpose of a login state
_NAME = re.compile(r"[^\w.@+-]+")


@dataclass(frozen=True, slots=True)
class LoginRules:
    """What the provider logins need: the signer of login states, where the provider
    sends the person back (``<public url><auth prefix>/oidc/<name>/callback``), the
    local roles a provisioned user may be given, and how long a login may take."""

    states: TokenVerifier
    public_url: str
    auth_prefix: str = "/auth"
    roles: RoleHierarchy = dataclasses.field(default_factory=RoleHierarchy)
    ttl: int = 600

    def callback(self, name: str) -> str:
        """The redirect URI registered at the provider for issuer `name`."""
        return f"{self.public_url.rstrip('/')}{self.auth_prefix}/oidc/{name}/callback"


def begin_login(
    state: IssuerState, rules: LoginRules, next_: str, via: Mapping[str, Any]
) -> Flow[tuple[str, str]]:
    """The provider's authorization URL, and the login state to keep in a cookie."""
    issuer = state.issuer
    if not issuer.login_client_id:
        raise NotFound(f"no login is set up with {issuer.name}")
    if state.metadata is None:
        yield from refresh_keys(state)
    endpoint = (state.metadata or {}).get("authorization_endpoint")
    if not isinstance(endpoint, str) or not endpoint.startswith(("https://", "http://")):
        raise ProviderUnavailable(
            f"trusted issuer {issuer.name}: no authorization endpoint (discovery failed: "
            f"{state.keys.last_error or 'none named'})",
            retry_after=state.keys.retry_after(),
        )
    from authlib.oauth2.rfc7636 import create_s256_code_challenge

    verifier = secrets.token_urlsafe(48)
    nonce, returned = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    query = {
        "response_type": "code",
        "client_id": issuer.login_client_id,
        "redirect_uri": rules.callback(issuer.name),
        "scope": " ".join(issuer.login_scopes),
        "state": returned,
        "nonce": nonce,
        "code_challenge": create_s256_code_challenge(verifier),
        "code_challenge_method": "S256",
    }
    url = endpoint + ("&" if "?" in endpoint else "?") + urlencode(query)
    cookie = rules.states.issue(
        {
            "sub": issuer.name,
            "sid": _LOGIN,
            "ver": 0,
            "roles": [],
            "groups": [],
            "perms": [],
            "st": returned,
            "nonce": nonce,
            "pkce": verifier,
            "next": next_,
            "via": dict(via),
        },
        rules.ttl,
    )
    return url, cookie


def _login_state(rules: LoginRules, name: str, cookie: object) -> Mapping[str, Any]:
    if not isinstance(cookie, str) or not cookie or len(cookie) > 4096:
        raise InvalidToken("this browser started no login here (no login state): start again")
    claims = rules.states.verify(cookie)
    if claims["sid"] != _LOGIN or claims["sub"] != name:
        raise InvalidToken("the login state is for another provider: start again")
    return claims


def finish_login(
    state: IssuerState,
    rules: LoginRules,
    query: Mapping[str, str],
    cookie: object,
    client: Client,
) -> Flow[tuple[User, dict[str, Any], str]]:
    """Check the provider's callback against the login state, trade its code, verify
    the ID token, and find or make the local user: returns the user, what the session
    is for (with ``amr``), and where to go after."""
    issuer = state.issuer
    begun = _login_state(rules, issuer.name, cookie)
    returned = query.get("state")
    if not isinstance(returned, str) or not hmac.compare_digest(returned, str(begun["st"])):
        raise InvalidToken("the callback's state is not this login's: start again")
    if query.get("error"):
        error = _NAME.sub("", str(query["error"]))[:64]
        yield Emit(
            AuditEvent("login_failure", "", client_ip=client.ip, detail=f"{issuer.name}: {error}")
        )
        raise LoginRefused(f"{issuer.name} did not log you in ({error})")
    code = query.get("code")
    token_endpoint = (state.metadata or {}).get("token_endpoint")
    if not isinstance(code, str) or not code or len(code) > 2048:
        raise InvalidToken("the callback brings no code")
    if not isinstance(token_endpoint, str):
        raise ProviderUnavailable(f"trusted issuer {issuer.name}: no token endpoint")
    try:
        tokens = yield ExchangeCode(
            token_endpoint,
            issuer.login_client_id,
            issuer.login_client_secret,
            code,
            rules.callback(issuer.name),
            str(begun["pkce"]),
        )
    except FetchFailed as err:
        yield Emit(
            AuditEvent("login_failure", "", client_ip=client.ip, detail=f"{issuer.name}: {err}")
        )
        raise LoginRefused(f"{issuer.name} did not accept the login: {err}") from None
    id_claims = _id_token_claims(state, tokens.get("id_token"), str(begun["nonce"]))
    found = read_claims(issuer, id_claims)
    user = yield from local_user(state.issuer, rules.roles.order, found, id_claims, client)
    via = dict(begun["via"]) if isinstance(begun.get("via"), Mapping) else {"kind": "browser"}
    amr = id_claims.get("amr")
    via["amr"] = [a for a in amr if isinstance(a, str)][:8] if isinstance(amr, list) else ["ext"]
    return user, via, str(begun.get("next") or "")


def _id_token_claims(state: IssuerState, id_token: object, nonce: str) -> Mapping[str, Any]:
    """The claims of the ID token of a code exchange, verified with the provider's keys:
    the issuer exactly, this client as its audience, its times, and the login's nonce."""
    if not isinstance(id_token, str):
        raise InvalidToken("the provider sent no ID token")
    issuer = state.issuer
    if state.keys.ring is None:
        raise ProviderUnavailable(f"trusted issuer {issuer.name}: no keys to check its ID token")
    if state.id_verifier is None or state.id_verifier.ring is not state.keys.ring:
        audience = dataclasses.replace(
            issuer, audiences=(issuer.login_client_id,), token_types=("JWT", "id_token+jwt")
        )
        state.id_verifier = ExternalVerifier(audience, state.keys.ring, cache_size=64)
    claims = state.id_verifier.verify(id_token)
    if not hmac.compare_digest(str(claims.get("nonce", "")), nonce):
        raise InvalidToken("the ID token's nonce is not this login's")
    azp = claims.get("azp")
    if azp is not None and azp != issuer.login_client_id:
        raise InvalidToken("the ID token was issued to another client")
    return claims
