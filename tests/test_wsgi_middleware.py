"""The WSGI middleware: credential forms, refusals, streaming and close(), raw WSGI and Flask."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

import flask
import pytest
import webtest

from authgate.context import current_identity
from authgate.decorators import check, require_role
from authgate.gate import Gate
from authgate.http import CredentialRules
from authgate.middleware.wsgi import AuthGateWSGIMiddleware
from authgate.permissions import HasRole, IsAuthenticated
from authgate.testing import cheap_hasher
from authgate.types import StartResponse, WSGIEnviron
from conftest import SECRET

PW = "correct horse battery"
CLOSED: list[str] = []


class Streamed:
    """A response iterable that records its close() and the identity while iterating."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def __iter__(self) -> Iterator[bytes]:
        for i in range(3):
            yield f"{i}:{current_identity().username or '-'};".encode()

    def close(self) -> None:
        CLOSED.append("closed")


def raw_app(environ: WSGIEnviron, start_response: StartResponse) -> Iterable[bytes]:
    path = environ["PATH_INFO"]
    if path == "/protected":
        check(IsAuthenticated())
    elif path == "/admin":
        check(HasRole("admin"))
    elif path == "/lazy-admin":
        return lazy_admin(start_response)
    if path == "/stream":
        start_response("200 OK", [("content-type", "text/plain")])
        return Streamed()
    who = environ["authgate.identity"]
    body = json.dumps(
        {
            "user": who.username,
            "remote_user": environ.get("REMOTE_USER"),
            "ctx": current_identity().username,
        }
    ).encode()
    start_response("200 OK", [("content-type", "application/json")])
    return [body]


def lazy_admin(start_response: StartResponse) -> Iterator[bytes]:
    check(HasRole("admin"))  # runs on the first step of the generator
    start_response("200 OK", [("content-type", "text/plain")])
    yield b"admin"


@pytest.fixture
def gate() -> Gate:
    g = Gate(store="memory://", hasher=cheap_hasher(), secret_key=SECRET)
    for name, role in (("root", "admin"), ("olga", "operator"), ("vic", "viewer")):
        g.create_user(name, PW, roles=[role])
    return g


@pytest.fixture
def app(gate: Gate) -> webtest.TestApp:
    wrapped = AuthGateWSGIMiddleware(raw_app, gate, rules=CredentialRules(cookie_name="session"))
    return webtest.TestApp(wrapped)


def bearer(gate: Gate, name: str, form: str = "Bearer {}") -> dict[str, str]:
    return {"Authorization": form.format(gate.login(name, PW).access_token)}


def test_anonymous(app: webtest.TestApp) -> None:
    assert app.get("/public").json == {"user": "", "remote_user": None, "ctx": ""}


@pytest.mark.parametrize("form", ["Bearer {}", "bearer {}", "BEARER authToken={}"])
def test_header_forms_set_environ_remote_user_and_context(
    app: webtest.TestApp, gate: Gate, form: str
) -> None:
    r = app.get("/public", headers=bearer(gate, "olga", form))
    assert r.json == {"user": "olga", "remote_user": "olga", "ctx": "olga"}


@pytest.mark.parametrize("header", ["Bearer", "Bearer junk", "Bearer a.b.c", "BEARER authToken="])
def test_bad_token_is_401_with_challenge(app: webtest.TestApp, header: str) -> None:
    r = app.get("/public", headers={"Authorization": header}, status=401)
    assert r.headers["WWW-Authenticate"].startswith(
        'Bearer realm="authgate", error="invalid_token"'
    )
    assert r.json["error"] == "invalid_token"


def test_guard_refusals_are_401_and_403(app: webtest.TestApp, gate: Gate) -> None:
    r = app.get("/protected", status=401)
    assert r.headers["WWW-Authenticate"] == 'Bearer realm="authgate"'
    r = app.get("/admin", headers=bearer(gate, "vic"), status=403)
    assert r.json == {"error": "forbidden", "detail": "requires admin role"}
    assert app.get("/admin", headers=bearer(gate, "root")).status_code == 200
    app.get("/lazy-admin", headers=bearer(gate, "vic"), status=403)
    assert app.get("/lazy-admin", headers=bearer(gate, "root")).text == "admin"


def test_revoked_session_is_401(app: webtest.TestApp, gate: Gate) -> None:
    headers = bearer(gate, "olga")
    gate.revoke_sessions("olga")
    app.get("/public", headers=headers, status=401)


def test_cookie_with_csrf(app: webtest.TestApp, gate: Gate) -> None:
    app.set_cookie("session", gate.login("olga", PW).access_token)
    app.set_cookie("authgate_csrf", "n0nce")
    assert app.get("/public").json["user"] == "olga"
    assert "CSRF" in app.post("/public", status=403).json["detail"]
    assert app.post("/public", headers={"X-CSRF-Token": "n0nce"}).json["user"] == "olga"


def test_query_token_ignored_and_preflight_passes(app: webtest.TestApp, gate: Gate) -> None:
    token = gate.login("olga", PW).access_token
    assert app.get(f"/public?token={token}").json["user"] == ""
    r = app.options("/public", headers={"Authorization": "Bearer junk"})
    assert r.json["user"] == ""


def test_streaming_keeps_the_context_and_close_is_called(app: webtest.TestApp, gate: Gate) -> None:
    CLOSED.clear()
    r = app.get("/stream", headers=bearer(gate, "olga"))
    assert r.text == "0:olga;1:olga;2:olga;"
    assert CLOSED == ["closed"]


def test_iterable_is_passed_lazily(gate: Gate) -> None:
    middleware = AuthGateWSGIMiddleware(raw_app, gate)
    token = gate.login("olga", PW).access_token
    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/stream",
        "QUERY_STRING": "",
        "HTTP_AUTHORIZATION": f"Bearer {token}",
    }
    statuses: list[str] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc: Any = None) -> Any:
        statuses.append(status)
        return lambda data: None

    body = middleware(environ, start_response)
    chunks = iter(body)
    assert next(chunks) == b"0:olga;"  # one chunk at a time, nothing collected up front
    assert statuses == ["200 OK"]
    CLOSED.clear()
    body.close()  # type: ignore[attr-defined]
    assert CLOSED == ["closed"]


def test_flask_app_under_the_middleware(gate: Gate) -> None:
    app = flask.Flask(__name__)
    app.config["PROPAGATE_EXCEPTIONS"] = True

    @app.get("/operator")
    @require_role("operator")
    def operator() -> Any:
        return {"user": current_identity().username}

    client = webtest.TestApp(AuthGateWSGIMiddleware(app, gate))
    assert client.get("/operator", headers=bearer(gate, "olga")).json == {"user": "olga"}
    assert client.get("/operator", headers=bearer(gate, "root")).json == {"user": "root"}
    assert client.get("/operator", headers=bearer(gate, "vic"), status=403).json["detail"] == (
        "requires operator or admin role"
    )
    client.get("/operator", status=401)
