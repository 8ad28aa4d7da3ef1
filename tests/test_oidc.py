"""Trusted issuers against a real OpenID provider (panva's oidc-provider under Node.js,
`oidc.OpenIdProvider`), on every example app: its access tokens, got over HTTP with the
client_credentials grant, are accepted on the guarded routes with the roles its claims
give; a token of another issuer, for another audience, signed with an algorithm outside
the allow-list or naming a forged ``kid`` is a 401 ``invalid_token``; the provider
rotates its keys and the new tokens are accepted without a restart; stopped, its cached
keys serve until they expire, then 503; restarted, it serves again."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from oidc import Client, OpenIdProvider, Resource
from test_contract_apps import APPS, Case, Deployment, _env, _inprocess, _over_http

API = "https://api.example.test"
SERVICE = Client("svc", "svc secret")


@pytest.fixture(scope="module")
def provider() -> Iterator[OpenIdProvider]:
    with OpenIdProvider(clients=[SERVICE], resources=[Resource(API, alg="RS256")]) as made:
        yield made


def _issuers(provider: OpenIdProvider, **extra: Any) -> str:
    issuer = {
        "issuer": provider.issuer,
        "audience": API,
        "name": "op",
        "preset": "keycloak",
        "algorithms": ["RS256"],
        "refetch_cooldown": 0.5,
        **extra,
    }
    return json.dumps([issuer])


@pytest.fixture
def deployment(
    request: pytest.FixtureRequest, provider: OpenIdProvider, tmp_path: Path
) -> Iterator[Deployment]:
    app, extra = request.param if isinstance(request.param, tuple) else (request.param, {})
    env = {
        **_env(f"sqlite:///{tmp_path / 'authgate.db'}"),
        "AUTHGATE_TRUSTED_ISSUERS": _issuers(provider, **extra),
    }
    yield from _inprocess(Case(app, "sqlite", "inprocess"), env, tmp_path / "log")


def _token(provider: OpenIdProvider, *roles: str, **claims: Any) -> str:
    body = {"sub": "ada", "preferred_username": "ada", "realm_access": {"roles": list(roles)}}
    return provider.token(SERVICE, API, claims={**body, **claims})


@pytest.mark.parametrize("deployment", sorted(APPS), indirect=True)
def test_a_providers_token_is_accepted_with_its_roles_on_every_example_app(
    deployment: Deployment, provider: OpenIdProvider
) -> None:
    admin, viewer = _token(provider, "admin"), _token(provider, "viewer")
    assert deployment.call("GET", "/admin", token=admin).status == 200
    assert deployment.call("GET", "/operator", token=admin).status == 200  # admin ranks above
    me = deployment.call("GET", "/protected", token=viewer)
    assert me.status == 200 and "op:ada" in me.text
    refused = deployment.call("GET", "/admin", token=viewer)
    assert refused.status == 403 and refused.json["error"] == "forbidden"
    assert deployment.call("GET", "/protected").status == 401
    # The local admin's own tokens work beside the provider's.
    assert deployment.call("GET", "/admin", token=deployment.admin()).status == 200


def _forged(provider: OpenIdProvider, kid: str, issuer: str | None = None) -> str:
    """A token signed by a key the provider never published."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = int(time.time())
    claims = {"iss": issuer or provider.issuer, "aud": API, "sub": "mallory",
              "iat": now, "exp": now + 300, "realm_access": {"roles": ["admin"]}}  # fmt: skip
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": kid, "typ": "at+jwt"})


@pytest.mark.parametrize("deployment", ["fastapi", "flask"], indirect=True)
def test_tokens_that_must_not_pass_are_401_invalid_token(
    deployment: Deployment, provider: OpenIdProvider
) -> None:
    real_kid = jwt.get_unverified_header(_token(provider, "admin"))["kid"]
    bad = {
        "another issuer": _forged(provider, real_kid, issuer="http://127.0.0.1:1/other"),
        "another audience": _token(provider, "admin", aud="https://other.example"),
        "an algorithm outside the list": provider.token(
            SERVICE, API, alg="ES256", claims={"sub": "ada", "realm_access": {"roles": ["admin"]}}
        ),
        "a forged kid": _forged(provider, "forged-kid"),
        "a known kid, another key": _forged(provider, real_kid),
        "expired": _token(provider, "admin", exp=int(time.time()) - 120),
    }
    for why, token in bad.items():
        answer = deployment.call("GET", "/admin", token=token)
        assert answer.status == 401, (why, answer.text)
        challenge = answer.headers["www-authenticate"]
        assert 'error="invalid_token"' in challenge, (why, challenge)


@pytest.mark.parametrize("deployment", ["starlette", "django"], indirect=True)
def test_a_key_rotation_is_picked_up_without_a_restart(
    deployment: Deployment, provider: OpenIdProvider
) -> None:
    before = _token(provider, "admin")
    assert deployment.call("GET", "/admin", token=before).status == 200
    rotated = provider.rotate_keys()
    after = _token(provider, "admin")
    assert jwt.get_unverified_header(after)["kid"] == rotated["RS256"]
    time.sleep(0.6)  # the refetch cooldown since the app's first fetch
    assert deployment.call("GET", "/admin", token=after).status == 200
    assert deployment.call("GET", "/admin", token=before).status == 200  # still published


@pytest.fixture
def own_provider() -> Iterator[OpenIdProvider]:
    with OpenIdProvider(clients=[SERVICE], resources=[Resource(API, alg="RS256")]) as made:
        yield made


def test_an_outage_keeps_the_cached_keys_then_answers_503_then_recovers(
    own_provider: OpenIdProvider, tmp_path: Path
) -> None:
    env = {
        **_env(f"sqlite:///{tmp_path / 'authgate.db'}"),
        "AUTHGATE_TRUSTED_ISSUERS": _issuers(
            own_provider, keys_max_age=2, refresh_interval=0.5, refetch_cooldown=0.2
        ),
    }
    for deployment in _inprocess(Case("plain_asgi", "sqlite", "inprocess"), env, tmp_path / "log"):
        token = _token(own_provider, "admin")
        assert deployment.call("GET", "/admin", token=token).status == 200
        own_provider.stop()
        assert deployment.call("GET", "/admin", token=token).status == 200  # cached keys
        time.sleep(2.3)
        down = deployment.call("GET", "/admin", token=token)
        assert down.status == 503 and down.json["error"] == "provider_unavailable"
        assert int(down.headers["retry-after"]) >= 1
        assert str(own_provider.port) not in down.text  # no internal address
        assert deployment.call("GET", "/admin", token=deployment.admin()).status == 200
        own_provider.restart()
        deadline = time.monotonic() + 10
        while deployment.call("GET", "/admin", token=token).status != 200:
            assert time.monotonic() < deadline, "the keys were not fetched again"
            time.sleep(0.2)
    # The app, its gate and the gate's key refresher go (the module kept them).
    sys.modules.pop(APPS["plain_asgi"], None)


@pytest.mark.parametrize("app", ["fastapi", "flask"])
def test_four_workers_each_keep_the_providers_keys(
    provider: OpenIdProvider, app: str, tmp_path: Path
) -> None:
    """uvicorn --workers 4 and gunicorn -w 4, from a fresh store: every worker takes the
    provider's tokens (each fetched the keys itself, its refresher its own), and after
    a rotation each picks the new key up."""
    env = {
        **_env(f"sqlite:///{tmp_path / 'authgate.db'}"),
        "AUTHGATE_TRUSTED_ISSUERS": _issuers(provider),
    }
    case = Case(app, "sqlite", "http", workers=4)
    for deployment in _over_http(case, env, tmp_path / "server.log"):
        for _ in range(16):  # a new connection each: spread over the workers
            assert deployment.call("GET", "/admin", token=_token(provider, "admin")).status == 200
        provider.rotate_keys()
        time.sleep(0.6)  # the refetch cooldown since each worker's first fetch
        for _ in range(16):
            answer = deployment.call("GET", "/admin", token=_token(provider, "admin"))
            assert answer.status == 200, answer.text
        assert "Traceback" not in (tmp_path / "server.log").read_text()
