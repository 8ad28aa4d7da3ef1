"""Step-up: `require_fresh` and `check_fresh` in every framework (Flask, Starlette,
FastAPI, plain functions; Django's are in tests/test_django.py), the 401
``insufficient_user_authentication`` they answer (RFC 9470), and ``/auth/reauth``,
which renews a session once its user proves it again: the password, or with a second
factor a code; wrong proofs locked out as a login's are; refresh never makes a login
younger; an API key never passes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import pytest

pytest.importorskip("flask")
pytest.importorskip("fastapi")

import httpx
import pyotp
from fastapi import Depends, FastAPI
from flask import Flask
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from authgate import (
    AsyncGate,
    Gate,
    check_fresh,
    current_identity,
    require_auth,
    require_fresh,
)
from authgate.errors import (
    AccountLocked,
    BadCredentials,
    NotAuthenticated,
    SessionRevoked,
    StepUpRequired,
)
from authgate.flows.apikeys import api_key_identity
from authgate.flows.browser import browser_identity
from authgate.identity import ANONYMOUS, Identity
from authgate.integrations import fastapi as fastapi_adapter
from authgate.integrations.flask import AuthGate as FlaskAuthGate
from authgate.integrations.starlette import AuthGate as StarletteAuthGate
from authgate.middleware.wsgi import AuthGateWSGIMiddleware
from authgate.testing import cheap_hasher
from authgate.tokens import TokenPair

SECRET = "step-up-tests-secret-Hk3nW8qZ5vR1mT6pL9xB2yD7"
PW = "alice password 1"
HTML = {"accept": "text/html,*/*;q=0.8"}
SETTINGS: dict[str, Any] = {
    "store": "memory://",
    "secret_key": SECRET,
    "cookie_sessions": True,
    "login_url": "/login",
    "max_failures_per_address": 0,
}


class _Later:
    """The clock `check_fresh` reads, an hour on: every login looks an hour old."""

    @staticmethod
    def time() -> float:
        return time.time() + 3600


@pytest.fixture
def an_hour_later(monkeypatch: pytest.MonkeyPatch) -> Callable[[], None]:
    return lambda: monkeypatch.setattr("authgate.decorators.time", _Later)


def _identity(**claims: Any) -> Identity:
    return Identity(username="alice", is_authenticated=True, session_id="s", claims=claims)


# -- check_fresh ---------------------------------------------------------------------------


def test_a_recent_login_passes_and_an_old_one_is_asked_to_prove_it_again() -> None:
    now = int(time.time())
    assert check_fresh(300, _identity(auth_time=now - 10)).username == "alice"
    with pytest.raises(StepUpRequired) as old:
        check_fresh(300, _identity(auth_time=now - 301))
    assert old.value.status == 401 and old.value.max_age == 300
    assert old.value.extra() == {"max_age": 300}


@pytest.mark.parametrize(
    "claims",
    [
        {},  # an API key, a CLI identity: no login to be recent
        {"auth_time": None},
        {"auth_time": True},  # a bool is no time
        {"auth_time": str(int(time.time()))},
        {"auth_time": float(int(time.time()))},
        {"auth_time": "in 120 s"},  # from the future: a forged or skewed clock
    ],
)
def test_anything_but_a_recent_integer_login_time_is_refused(claims: dict[str, Any]) -> None:
    if claims.get("auth_time") == "in 120 s":  # computed now, not when the tests were listed
        claims = {"auth_time": int(time.time()) + 120}
    with pytest.raises(StepUpRequired):
        check_fresh(300, _identity(**claims))


def test_no_identity_is_a_401_not_authenticated_and_a_negative_age_a_mistake() -> None:
    with pytest.raises(NotAuthenticated):
        check_fresh(300, ANONYMOUS)
    with pytest.raises(ValueError, match="max_age"):
        check_fresh(-1, _identity(auth_time=int(time.time())))
    with pytest.raises(ValueError, match="max_age"):
        require_fresh(-5)


def test_the_decorator_guards_sync_and_async_functions() -> None:
    from authgate.context import as_identity

    @require_fresh(60)
    def move_money() -> str:
        return "moved"

    @require_fresh(60)
    async def move_more() -> str:
        return "moved more"

    with as_identity(_identity(auth_time=int(time.time()))):
        assert move_money() == "moved"
        assert asyncio.run(move_more()) == "moved more"
    with as_identity(_identity(auth_time=int(time.time()) - 61)):
        with pytest.raises(StepUpRequired):
            move_money()
        with pytest.raises(StepUpRequired):
            asyncio.run(move_more())


# -- in every framework -----------------------------------------------------------------------


def _flask() -> tuple[Any, Gate]:
    app = Flask(__name__)
    gate = Gate(hasher=cheap_hasher(), **SETTINGS)
    FlaskAuthGate(app, gate=gate)

    @app.get("/transfer")
    @require_auth
    @require_fresh(300)
    def transfer() -> dict[str, str]:
        return {"user": current_identity.username}

    return app, gate


@require_fresh(300)
async def _transfer(request: Request) -> JSONResponse:
    return JSONResponse({"user": current_identity.username})


def _starlette() -> tuple[Any, AsyncGate]:
    gate = AsyncGate(hasher=cheap_hasher(), **SETTINGS)
    auth = StarletteAuthGate(gate)
    app = Starlette(
        routes=[Route("/transfer", _transfer), *auth.routes],
        middleware=auth.middleware,
        exception_handlers=auth.exception_handlers,
    )
    return app, gate


RECENT = fastapi_adapter.require_fresh(300)


def _fastapi() -> tuple[Any, AsyncGate]:
    gate = AsyncGate(hasher=cheap_hasher(), **SETTINGS)
    app = FastAPI()
    fastapi_adapter.AuthGate(gate).install(app)

    @app.get("/transfer")
    async def transfer(
        me: Identity = Depends(RECENT),
    ) -> dict[str, str]:
        return {"user": me.username}

    return app, gate


APPS: dict[str, Callable[[], tuple[Any, Any]]] = {
    "flask": _flask,
    "starlette": _starlette,
    "fastapi": _fastapi,
}


@pytest.fixture(params=sorted(APPS))
def site(request: pytest.FixtureRequest) -> Iterator[httpx.Client]:
    app, gate = APPS[request.param]()
    store: Any = gate.store
    store = store.sync if isinstance(gate, AsyncGate) else store  # memory: one dict, two faces
    Gate(hasher=cheap_hasher(), **{**SETTINGS, "store": store}).create_user("alice", PW)
    if request.param == "flask":
        transport: Any = httpx.WSGITransport(app=app)
    else:
        transport = httpx.ASGITransport(app=app)
    if request.param == "flask":
        with httpx.Client(transport=transport, base_url="https://testserver") as client:
            yield client
        return
    from starlette.testclient import TestClient

    with TestClient(app, base_url="https://testserver") as client:
        yield client


def _bearer(client: httpx.Client) -> dict[str, str]:
    pair = client.post("/auth/login", json={"username": "alice", "password": PW}).json()
    return {"Authorization": f"Bearer {pair['access_token']}"}


def test_every_framework_asks_an_old_login_to_prove_it_again(
    site: httpx.Client, an_hour_later: Callable[[], None]
) -> None:
    assert site.get("/transfer").status_code == 401  # nobody: not authenticated
    me = _bearer(site)
    assert site.get("/transfer", headers=me).json() == {"user": "alice"}
    an_hour_later()
    old = site.get("/transfer", headers=me)
    assert old.status_code == 401
    assert old.json()["error"] == "insufficient_user_authentication"
    assert old.json()["max_age"] == 300
    challenge = old.headers["www-authenticate"]
    assert 'error="insufficient_user_authentication"' in challenge
    assert challenge.endswith(', max_age="300"')
    # A page request is sent to the login page, whose login is recent.
    site.post("/auth/session", json={"username": "alice", "password": PW})
    page = site.get("/transfer", headers=HTML, follow_redirects=False)
    assert page.status_code == 302 and page.headers["location"] == "/login?next=/transfer"


# -- /auth/reauth ------------------------------------------------------------------------------


@pytest.fixture
def gate() -> Iterator[Gate]:
    made = Gate(hasher=cheap_hasher(), max_login_attempts=5, **SETTINGS)
    made.create_user("alice", PW, roles=["viewer"])
    yield made
    made.close()


def _nothing(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"nothing here"]


@pytest.fixture
def client(gate: Gate) -> Iterator[httpx.Client]:
    app = AuthGateWSGIMiddleware(_nothing, gate, api=True)
    with httpx.Client(transport=httpx.WSGITransport(app=app), base_url="https://t") as made:
        yield made


def test_reauth_with_the_password_renews_the_session(gate: Gate) -> None:
    pair = gate.login("alice", PW)
    me = gate.authenticate(pair.access_token)
    assert gate.reauth_options(me) == {"methods": ["password"], "max_age": 600}
    renewed = gate.reauthenticate(me, password=PW)
    assert isinstance(renewed, TokenPair) and renewed.session_id != pair.session_id
    now = gate.authenticate(renewed.access_token)
    assert now.claims["amr"] == ("pwd",)
    assert now.claims["auth_time"] >= me.claims["auth_time"]
    with pytest.raises(SessionRevoked):  # the old session ended
        gate.refresh(pair.refresh_token)
    with pytest.raises(SessionRevoked):
        gate.reauthenticate(me, password=PW)


def test_a_refresh_keeps_the_logins_time(gate: Gate) -> None:
    pair = gate.login("alice", PW)
    first = gate.authenticate(pair.access_token).claims["auth_time"]
    time.sleep(1.1)
    later = gate.authenticate(gate.refresh(pair.refresh_token).access_token)
    assert later.claims["auth_time"] == first  # refreshing proves nothing new
    assert later.claims["amr"] == ("pwd",)


def test_wrong_passwords_at_reauth_are_locked_out_as_a_logins(gate: Gate) -> None:
    me = gate.authenticate(gate.login("alice", PW).access_token)
    for _ in range(5):
        with pytest.raises(BadCredentials):
            gate.reauthenticate(me, password="not her password")
    with pytest.raises(AccountLocked):
        gate.reauthenticate(me, password=PW)
    with pytest.raises(AccountLocked):
        gate.login("alice", PW)


def test_a_user_with_a_factor_proves_it_again_with_a_code_not_the_password(gate: Gate) -> None:
    me = gate.authenticate(gate.login("alice", PW).access_token)
    totp = pyotp.TOTP(gate.begin_totp(me).secret)
    codes = gate.confirm_totp(me, totp.now())
    assert gate.reauth_options(me)["methods"] == ["totp", "recovery_code"]
    with pytest.raises(BadCredentials, match="second factor"):
        gate.reauthenticate(me, password=PW)
    with pytest.raises(BadCredentials):
        gate.reauthenticate(me, code="000000" if totp.now() != "000000" else "111111")
    renewed = gate.reauthenticate(me, code=codes[0])
    assert isinstance(renewed, TokenPair)
    assert gate.authenticate(renewed.access_token).claims["amr"] == ("otp",)


def test_an_api_key_has_no_login_to_prove_again(gate: Gate) -> None:
    me = gate.authenticate(gate.login("alice", PW).access_token)
    raw, _ = gate.create_api_key(me, "ci")
    key = gate.run(api_key_identity(gate.rules, raw))
    with pytest.raises(StepUpRequired):
        check_fresh(600, key)
    with pytest.raises(SessionRevoked):
        gate.reauthenticate(key, password=PW)


def test_adding_a_factor_needs_a_recent_login(
    gate: Gate, client: httpx.Client, an_hour_later: Callable[[], None]
) -> None:
    pair = client.post("/auth/login", json={"username": "alice", "password": PW}).json()
    me = {"Authorization": f"Bearer {pair['access_token']}"}
    an_hour_later()
    old = client.post("/auth/mfa/totp", headers=me, json={})
    assert old.status_code == 401 and old.json()["error"] == "insufficient_user_authentication"
    identity = gate.authenticate(pair["access_token"])
    with pytest.raises(StepUpRequired):
        gate.begin_totp(identity)
    # Proven again: a new pair, whose login is now... an hour ago by that clock too,
    # so step the clock back and try with the renewed token.
    renewed = client.post("/auth/reauth", headers=me, json={"password": PW})
    assert renewed.status_code == 200
    assert client.post("/auth/mfa/totp", headers=me, json={}).status_code == 401  # ended


def test_reauth_over_http_and_its_refusals(gate: Gate, client: httpx.Client) -> None:
    pair = client.post("/auth/login", json={"username": "alice", "password": PW}).json()
    me = {"Authorization": f"Bearer {pair['access_token']}"}
    assert client.get("/auth/reauth").status_code == 401
    assert client.get("/auth/reauth", headers=me).json()["methods"] == ["password"]
    assert client.post("/auth/reauth", headers=me, json={}).status_code == 401  # no proof
    assert client.post("/auth/reauth", headers=me, json={"password": 7}).status_code == 400
    wrong = client.post("/auth/reauth", headers=me, json={"password": "nope nope"})
    assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_credentials"
    renewed = client.post("/auth/reauth", headers=me, json={"password": PW})
    assert renewed.status_code == 200 and renewed.json()["refresh_token"]
    assert renewed.headers["cache-control"] == "no-store"
    fresh = {"Authorization": f"Bearer {renewed.json()['access_token']}"}
    assert client.post("/auth/mfa/totp", headers=fresh, json={}).status_code == 201
    assert client.get("/auth/me", headers=me).status_code == 401  # the old session ended


def test_a_cookie_session_is_renewed_with_new_cookies(gate: Gate, client: httpx.Client) -> None:
    login = client.post("/auth/session", json={"username": "alice", "password": PW})
    old_cookie = client.cookies.get("__Host-authgate_session")
    token = login.json()["csrf_token"]
    # Without the session's CSRF token, nothing happens (a form from another site).
    refused = client.post("/auth/reauth", json={"password": PW})
    assert refused.status_code == 403 and refused.json()["error"] == "csrf_failed"
    assert client.cookies.get("__Host-authgate_session") == old_cookie
    renewed = client.post("/auth/reauth", json={"password": PW}, headers={"X-CSRF-Token": token})
    assert renewed.status_code == 200, renewed.text
    new_cookie = client.cookies.get("__Host-authgate_session")
    assert new_cookie and new_cookie != old_cookie
    assert renewed.json()["csrf_token"] != token
    identity = gate.run(browser_identity(gate.rules, new_cookie))
    assert identity.claims["amr"] == ("pwd",) and identity.claims["cookie"]
    with pytest.raises(SessionRevoked):
        gate.run(browser_identity(gate.rules, str(old_cookie)))


def test_a_remembered_browser_stays_remembered(gate: Gate) -> None:
    opened = gate.browser_login("alice", PW, remember=True)
    me = gate.run(browser_identity(gate.rules, opened.cookie))
    renewed = gate.reauthenticate(me, password=PW)
    assert not isinstance(renewed, TokenPair) and renewed.remember
    again = gate.run(browser_identity(gate.rules, renewed.cookie))
    assert again.claims["remembered"] is True
    assert replace(again, claims={}) != replace(me, claims={})  # another session
