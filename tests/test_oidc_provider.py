"""The OpenID provider fixture (`oidc.OpenIdProvider`) does what authgate's OIDC tests
will lean on, checked with httpx and PyJWT alone: discovery and JWKS, RFC 9068 access
tokens signed as asked and carrying the claims asked, the authorization code flow with
PKCE driven without a browser, RP-initiated logout, key rotation, an outage and a
recovery on the same port."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import httpx
import jwt
import pytest

from oidc import (
    Client,
    LoginRefused,
    LoginRequired,
    OpenIdProvider,
    ProviderRefused,
    Resource,
    User,
    query,
    require_node,
)

API = "https://api.example.test"
CALLBACK = "http://127.0.0.1:9/auth/oidc/callback"
SIGNED_OUT = "http://127.0.0.1:9/signed-out"
SERVICE = Client("service", "service secret")
WEB = Client("web", "web secret", (CALLBACK,), (SIGNED_OUT,), id_token_alg="RS256")
SPA = Client("spa", None, (CALLBACK,), id_token_alg="ES256")
ALICE_CLAIMS: dict[str, Any] = {
    "preferred_username": "alice",
    "email": "alice@example.test",
    "realm_access": {"roles": ["admin", "editor"]},
}
ALICE = User("alice", "alice's password", ALICE_CLAIMS)
#: Role claims shaped as each provider writes them.
ROLE_CLAIMS: dict[str, Any] = {
    "realm_access": {"roles": ["admin"]},  # Keycloak
    "resource_access": {"service": {"roles": ["reader"]}},  # Keycloak, per client
    "permissions": ["read:reports", "write:reports"],  # Auth0 RBAC
    "https://example.test/roles": ["admin"],  # Auth0, a namespaced claim
    "cognito:groups": ["admins"],  # Cognito
    "roles": ["Reports.Admin"],  # Entra ID
    "scp": "Reports.Read",  # Entra ID, delegated
}


@pytest.fixture(scope="module")
def provider() -> Iterator[OpenIdProvider]:
    """One provider for the module's tests (its keys may rotate: each check reads the
    JWKS afresh)."""
    with OpenIdProvider(
        clients=[SERVICE, WEB, SPA],
        resources=[Resource(API, scope="read write")],
        users=[ALICE],
    ) as started:
        yield started


@pytest.fixture
def own_provider() -> Iterator[OpenIdProvider]:
    """A provider of the test's own, for a test that stops it."""
    with OpenIdProvider(clients=[SERVICE], resources=[Resource(API)]) as started:
        yield started


def verified(provider: OpenIdProvider, token: str, alg: str, audience: str) -> dict[str, Any]:
    """A token's claims after checking its signature against the provider's JWKS (a
    fresh client, so nothing is cached), its algorithm, issuer and audience."""
    key = jwt.PyJWKClient(provider.jwks_uri, cache_keys=False).get_signing_key_from_jwt(token)
    claims: dict[str, Any] = jwt.decode(
        token, key, algorithms=[alg], audience=audience, issuer=provider.issuer
    )
    return claims


# -- discovery and tokens --------------------------------------------------------------


def test_discovery_names_the_issuer_and_pkce_and_logout(provider: OpenIdProvider) -> None:
    answer = httpx.get(f"{provider.issuer}/.well-known/openid-configuration").json()
    assert answer["issuer"] == provider.issuer
    assert answer["code_challenge_methods_supported"] == ["S256"]
    assert answer["end_session_endpoint"] == f"{provider.issuer}/session/end"
    assert {"authorization_code", "client_credentials"} <= set(answer["grant_types_supported"])
    assert {"RS256", "ES256"} <= set(answer["id_token_signing_alg_values_supported"])


def test_jwks_serves_one_public_key_per_algorithm(provider: OpenIdProvider) -> None:
    keys = httpx.get(provider.jwks_uri).json()["keys"]
    assert sorted((key["alg"], key["kty"], key["use"]) for key in keys) == [
        ("ES256", "EC", "sig"),
        ("RS256", "RSA", "sig"),
    ]
    assert not any("d" in key for key in keys)


@pytest.mark.parametrize("alg", ["RS256", "ES256"])
def test_client_credentials_token_is_an_rfc9068_jwt_signed_as_asked(
    provider: OpenIdProvider, alg: str
) -> None:
    token = provider.token(SERVICE, API, scope="read", claims={"sub": "svc-reports"}, alg=alg)

    header = jwt.get_unverified_header(token)
    assert header["typ"] == "at+jwt"
    assert header["alg"] == alg
    claims = verified(provider, token, alg, API)
    assert claims["sub"] == "svc-reports"
    assert claims["client_id"] == "service"
    assert claims["scope"] == "read"
    assert claims["exp"] - claims["iat"] == 300


def test_client_credentials_token_carries_the_chosen_role_claims(
    provider: OpenIdProvider,
) -> None:
    token = provider.token("service", API, claims=ROLE_CLAIMS)

    claims = verified(provider, token, "RS256", API)
    assert {name: claims[name] for name in ROLE_CLAIMS} == ROLE_CLAIMS


def test_chosen_claims_can_mint_validly_signed_bad_tokens(provider: OpenIdProvider) -> None:
    expired = provider.token(SERVICE, API, claims={"exp": int(time.time()) - 60})
    elsewhere = provider.token(SERVICE, API, claims={"aud": "https://other.example.test"})
    no_expiry = provider.token(SERVICE, API, claims={"exp": None})

    with pytest.raises(jwt.ExpiredSignatureError):
        verified(provider, expired, "RS256", API)
    with pytest.raises(jwt.InvalidAudienceError):
        verified(provider, elsewhere, "RS256", API)
    assert "exp" not in verified(provider, no_expiry, "RS256", API)


def test_unknown_audience_or_algorithm_is_refused(provider: OpenIdProvider) -> None:
    with pytest.raises(ProviderRefused) as unknown_audience:
        provider.token(SERVICE, "https://unknown.example.test")
    with pytest.raises(ProviderRefused) as unknown_alg:
        provider.token(SERVICE, API, alg="PS256")

    assert unknown_audience.value.error == "invalid_target"
    assert unknown_alg.value.error == "invalid_request"


# -- the authorization code flow -------------------------------------------------------


@pytest.mark.parametrize("client", [WEB, SPA], ids=["confidential", "public"])
def test_code_flow_with_pkce_gives_an_id_token_with_the_nonce(
    provider: OpenIdProvider, client: Client
) -> None:
    request = provider.authorization_request(client, scope="openid profile read", resource=API)

    callback = provider.login(request.url, "alice", "alice's password")
    assert callback.startswith(CALLBACK + "?")
    assert query(callback)["state"] == request.state
    assert query(callback)["iss"] == provider.issuer  # RFC 9207
    answer = provider.exchange_code(request, callback)

    id_token = verified(provider, answer["id_token"], client.id_token_alg, client.client_id)
    assert id_token["nonce"] == request.nonce
    assert id_token["sub"] == "alice"
    assert id_token["realm_access"] == {"roles": ["admin", "editor"]}
    access = verified(provider, answer["access_token"], "RS256", API)
    assert jwt.get_unverified_header(answer["access_token"])["typ"] == "at+jwt"
    assert access["sub"] == "alice"
    assert access["scope"] == "read"
    assert access["realm_access"] == {"roles": ["admin", "editor"]}


def test_code_exchange_without_the_pkce_verifier_is_refused(provider: OpenIdProvider) -> None:
    request = provider.authorization_request(WEB)
    code = query(provider.login(request.url, "alice", "alice's password"))["code"]

    with pytest.raises(ProviderRefused) as refused:
        provider.request_token(
            WEB,
            {"grant_type": "authorization_code", "code": code, "redirect_uri": CALLBACK},
        )
    assert refused.value.error == "invalid_grant"


def test_authorization_without_pkce_is_refused(provider: OpenIdProvider) -> None:
    params = {"response_type": "code", "client_id": "web", "redirect_uri": CALLBACK}
    url = f"{provider.authorization_endpoint}?{urlencode({**params, 'scope': 'openid'})}"

    with provider.user_agent() as agent:
        callback = agent.authorize(url)
    assert query(callback)["error"] == "invalid_request"


def test_wrong_password_is_refused(provider: OpenIdProvider) -> None:
    request = provider.authorization_request(WEB)

    with pytest.raises(LoginRefused):
        provider.login(request.url, "alice", "not alice's password")
    with pytest.raises(LoginRefused):
        provider.login(request.url, "mallory", "alice's password")


def test_session_spares_a_second_login_until_rp_initiated_logout(
    provider: OpenIdProvider,
) -> None:
    with provider.user_agent() as agent:
        first = provider.authorization_request(WEB)
        answer = provider.exchange_code(
            first, agent.authorize(first.url, "alice", "alice's password")
        )
        second = provider.authorization_request(WEB)
        assert "code" in query(agent.authorize(second.url))

        logout = {
            "id_token_hint": answer["id_token"],
            "post_logout_redirect_uri": SIGNED_OUT,
            "state": "bye",
        }
        signed_out = agent.logout(f"{provider.end_session_endpoint}?{urlencode(logout)}")

        assert signed_out == f"{SIGNED_OUT}?state=bye"
        with pytest.raises(LoginRequired):
            agent.authorize(provider.authorization_request(WEB).url)


# -- keys and outages ------------------------------------------------------------------


def test_rotation_signs_with_a_new_kid_and_old_tokens_still_verify(
    provider: OpenIdProvider,
) -> None:
    before = provider.token(SERVICE, API)
    old_kid = jwt.get_unverified_header(before)["kid"]

    new_kids = provider.rotate_keys()
    after = provider.token(SERVICE, API)

    assert jwt.get_unverified_header(after)["kid"] == new_kids["RS256"] != old_kid
    ecdsa = provider.token(SERVICE, API, alg="ES256")
    assert jwt.get_unverified_header(ecdsa)["kid"] == new_kids["ES256"]
    served = {key["kid"] for key in provider.jwks()["keys"]}
    assert {old_kid, new_kids["RS256"], new_kids["ES256"]} <= served
    verified(provider, before, "RS256", API)
    verified(provider, after, "RS256", API)

    assert provider.retire_keys() == new_kids
    assert {key["kid"] for key in provider.jwks()["keys"]} == set(new_kids.values())
    with pytest.raises(jwt.PyJWKClientError):
        verified(provider, before, "RS256", API)


def test_stopped_provider_refuses_connections_and_recovers_on_restart(
    own_provider: OpenIdProvider,
) -> None:
    before = own_provider.token(SERVICE, API)
    discovery = f"{own_provider.issuer}/.well-known/openid-configuration"

    assert own_provider.stop() == 0  # SIGTERM, a clean exit
    with pytest.raises(ConnectionRefusedError), socket.socket() as sock:
        sock.connect(("127.0.0.1", own_provider.port))
    with pytest.raises(httpx.ConnectError):
        httpx.get(discovery)

    own_provider.restart()
    assert httpx.get(discovery).json()["jwks_uri"] == own_provider.jwks_uri
    after = own_provider.token(SERVICE, API)
    verified(own_provider, before, "RS256", API)
    assert jwt.get_unverified_header(after)["kid"] == jwt.get_unverified_header(before)["kid"]


def test_issuer_may_be_named_localhost() -> None:
    with OpenIdProvider(
        clients=[SERVICE, WEB], resources=[Resource(API)], users=[ALICE], host="localhost"
    ) as provider:
        assert provider.issuer == f"http://localhost:{provider.port}"
        token = provider.token(SERVICE, API)
        assert verified(provider, token, "RS256", API)["iss"] == provider.issuer
        request = provider.authorization_request(WEB)
        assert "code" in query(provider.login(request.url, "alice", "alice's password"))


# -- without Node.js -------------------------------------------------------------------


def test_missing_node_skips_but_fails_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("shutil.which", lambda name: None)

    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="need Node.js"):
        require_node()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI runs the OpenID provider tests"):
        require_node()
