"""Browser logins in each framework adapter: Flask (its Jinja2 templates get
``csrf_token``), Starlette and FastAPI (their exception handler redirects a page to the
login page); the plain middlewares are tested in test_browser.py, Django in
test_django.py."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

pytest.importorskip("flask")
pytest.importorskip("fastapi")

import httpx
from fastapi import Depends, FastAPI
from flask import Flask, render_template_string
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from authgate import AsyncGate, Gate, current_identity, require_auth
from authgate.context import csrf_token
from authgate.identity import Identity
from authgate.integrations import fastapi as fastapi_adapter
from authgate.integrations.flask import AuthGate as FlaskAuthGate
from authgate.integrations.starlette import AuthGate as StarletteAuthGate
from authgate.testing import cheap_hasher

SECRET = "framework-browser-secret-0123456789-abcdefghijk"
PW = "correct horse 1"
HTML = {"accept": "text/html,*/*;q=0.8"}
SETTINGS: dict[str, Any] = {
    "store": "memory://",
    "secret_key": SECRET,
    "cookie_sessions": True,
    "login_url": "/login",
    "max_failures_per_address": 0,
}


def _flask(notes: list[str]) -> tuple[Any, Gate]:
    app = Flask(__name__)
    gate = Gate(hasher=cheap_hasher(), **SETTINGS)
    FlaskAuthGate(app, gate=gate)

    @app.get("/login")
    def login() -> str:
        return render_template_string("<input name=csrf_token value='{{ csrf_token() }}'>")

    @app.get("/page")
    @require_auth
    def page() -> dict[str, str]:
        return {"user": current_identity.username}

    @app.post("/notes")
    @require_auth
    def add() -> dict[str, list[str]]:
        from flask import request

        notes.append(request.form["text"])
        return {"notes": notes}

    return app, gate


async def _login_page(request: Request) -> PlainTextResponse:
    return PlainTextResponse(f"<input name=csrf_token value='{csrf_token()}'>")


@require_auth
async def _page(request: Request) -> JSONResponse:
    return JSONResponse({"user": current_identity.username})


def _starlette(notes: list[str]) -> tuple[Any, AsyncGate]:
    gate = AsyncGate(hasher=cheap_hasher(), **SETTINGS)
    auth = StarletteAuthGate(gate)

    @require_auth
    async def add(request: Request) -> JSONResponse:
        notes.append(str((await request.form())["text"]))
        return JSONResponse({"notes": notes})

    app = Starlette(
        routes=[
            Route("/login", _login_page),
            Route("/page", _page),
            Route("/notes", add, methods=["POST"]),
            *auth.routes,
        ],
        middleware=auth.middleware,
        exception_handlers=auth.exception_handlers,
    )
    return app, gate


def _fastapi(notes: list[str]) -> tuple[Any, AsyncGate]:
    gate = AsyncGate(hasher=cheap_hasher(), **SETTINGS)
    app = FastAPI()
    fastapi_adapter.AuthGate(gate).install(app)

    @app.get("/login", response_class=PlainTextResponse)
    async def login() -> str:
        return f"<input name=csrf_token value='{csrf_token()}'>"

    @app.get("/page")
    async def page(me: Identity = Depends(fastapi_adapter.require_auth())) -> dict[str, str]:
        return {"user": me.username}

    @app.post("/notes")
    async def add(
        request: Request, me: Identity = Depends(fastapi_adapter.require_auth())
    ) -> dict[str, list[str]]:
        notes.append(str((await request.form())["text"]))
        return {"notes": notes}

    return app, gate


APPS: dict[str, Callable[[list[str]], tuple[Any, Any]]] = {
    "flask": _flask,
    "starlette": _starlette,
    "fastapi": _fastapi,
}


@pytest.fixture(params=sorted(APPS))
def site(request: pytest.FixtureRequest) -> Iterator[tuple[httpx.Client, list[str]]]:
    notes: list[str] = []
    app, gate = APPS[request.param](notes)
    store: Any = gate.store
    store = store.sync if isinstance(gate, AsyncGate) else store  # memory: one dict, two faces
    Gate(hasher=cheap_hasher(), **{**SETTINGS, "store": store}).create_user("alice", PW)
    if request.param == "flask":
        transport = httpx.WSGITransport(app=app)
        with httpx.Client(transport=transport, base_url="https://testserver") as client:
            yield client, notes
    else:
        with TestClient(app, base_url="https://testserver", follow_redirects=False) as client:
            yield client, notes


def _token_of(page: str) -> str:
    return page.split("value='")[1].split("'")[0]


def test_a_form_login_then_a_protected_form_post(site: tuple[httpx.Client, list[str]]) -> None:
    client, notes = site
    token = _token_of(client.get("/login", headers=HTML).text)
    reply = client.post(
        "/auth/session",
        data={"username": "alice", "password": PW, "csrf_token": token, "next": "/page"},
    )
    assert reply.status_code == 303 and reply.headers["location"] == "/page"
    names = [c.split("=")[0] for c in reply.headers.get_list("set-cookie")]
    assert names == ["__Host-authgate_session", "__Host-authgate_csrf"]
    assert client.get("/page").json() == {"user": "alice"}
    session_token = _token_of(client.get("/login", headers=HTML).text)
    assert session_token != token  # bound to the session now
    refused = client.post("/notes", data={"text": "forged"})
    assert refused.status_code == 403 and notes == []
    stale = client.post("/notes", data={"text": "old token", "csrf_token": token})
    assert stale.status_code == 403 and notes == []
    done = client.post("/notes", data={"text": "mine", "csrf_token": session_token})
    assert done.status_code == 200 and notes == ["mine"]
    out = client.post("/auth/logout", data={"csrf_token": session_token})
    assert out.status_code == 303 and out.headers["location"] == "/login"
    assert client.get("/page", headers=HTML).status_code == 302


def test_a_page_without_a_session_redirects_and_an_api_call_gets_401(
    site: tuple[httpx.Client, list[str]],
) -> None:
    client, _ = site
    reply = client.get("/page?a=1", headers=HTML)
    assert reply.status_code == 302 and reply.headers["location"] == "/login?next=/page%3Fa%3D1"
    api = client.get("/page", headers={"accept": "application/json"})
    assert api.status_code == 401 and "www-authenticate" in api.headers
