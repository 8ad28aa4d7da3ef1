"""Frameworks with no integration of their own, protected by the plain middlewares in a
few lines (`examples/protect_litestar.py`, `protect_quart.py`, `protect_falcon.py`):
authgate's answers on the wire, never a 500, and no traceback in the log."""

from __future__ import annotations

import asyncio
import importlib
import io
import logging
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from authgate import AsyncGate, AuthGateMiddleware, AuthGateWSGIMiddleware, Gate, require_role
from authgate.testing import cheap_hasher
from conftest import SECRET

EXAMPLES = {"litestar": "protect_litestar", "quart": "protect_quart", "falcon": "protect_falcon"}
ROOT = Path(__file__).resolve().parent.parent

Call = Callable[..., httpx.Response]
WSGI_ERRORS = io.StringIO()


@pytest.fixture(params=sorted(EXAMPLES))
def example(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Call]:
    """The example app of one framework, on a fresh store with olga (operator) and vic
    (viewer), and a way to call it."""
    WSGI_ERRORS.seek(0)
    WSGI_ERRORS.truncate()
    monkeypatch.setenv("AUTHGATE_STORE", f"sqlite:///{tmp_path / 'store.db'}")
    monkeypatch.setenv("AUTHGATE_SECRET_KEY", SECRET)
    monkeypatch.syspath_prepend(str(ROOT))
    seed = Gate.from_env(hasher=cheap_hasher())
    seed.create_user("olga", "olga password", roles=["operator"])
    seed.create_user("vic", "vic password1", roles=["viewer"])
    seed.close()
    name = f"examples.{EXAMPLES[request.param]}"
    sys.modules.pop(name, None)
    app = importlib.import_module(name).app
    if isinstance(app, AuthGateWSGIMiddleware):
        # Falcon writes its tracebacks to wsgi.errors, not to a logger: keep them.
        transport = httpx.WSGITransport(app=app, wsgi_errors=WSGI_ERRORS)
        with httpx.Client(transport=transport, base_url="http://t") as sync:
            yield sync.request
        return
    loop = asyncio.new_event_loop()
    aclient = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")

    def call(method: str, path: str, **kwargs: Any) -> httpx.Response:
        return loop.run_until_complete(aclient.request(method, path, **kwargs))

    yield call
    loop.run_until_complete(aclient.aclose())
    loop.close()


def _token(call: Call, username: str, password: str) -> str:
    reply = call("POST", "/auth/login", json={"username": username, "password": password})
    assert reply.status_code == 200, reply.text  # the HTTP API, mounted by api=True
    return str(reply.json()["access_token"])


def test_anonymous_is_401_a_lower_role_403_never_a_500(
    example: Call, caplog: pytest.LogCaptureFixture
) -> None:
    olga, vic = _token(example, "olga", "olga password"), _token(example, "vic", "vic password1")
    with caplog.at_level(logging.INFO):
        anonymous = example("GET", "/reports")
        lower = example("GET", "/reports", headers={"Authorization": f"Bearer {vic}"})
        allowed = example("GET", "/reports", headers={"Authorization": f"Bearer {olga}"})
        garbage = example("GET", "/reports", headers={"Authorization": "Bearer not.a.token"})
    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"] == 'Bearer realm="authgate"'
    assert anonymous.json() == {
        "error": "not_authenticated",
        "detail": "authentication required: operator or admin role",
    }
    assert lower.status_code == 403
    assert lower.json() == {"error": "forbidden", "detail": "requires operator or admin role"}
    assert allowed.status_code == 200 and allowed.json() == {"for": "olga"}
    assert garbage.status_code == 401 and "invalid_token" in garbage.headers["www-authenticate"]
    # A refusal is no server error: nothing at ERROR, no traceback, in any logger or
    # in the WSGI server's error stream.
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
    assert "Traceback" not in WSGI_ERRORS.getvalue()


# -- the fallback: a framework that answers the refusal with a 500 of its own -----------


def _swallowing_asgi(handler: Callable[[], Any]) -> Any:
    """An ASGI app that, like Litestar, answers any exception with a 500 of its own."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        try:
            body = await handler()
            status = 200
        except Exception:
            body, status = b"Internal Server Error: secrets of the framework", 500
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": body, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    return app


def _swallowing_wsgi(handler: Callable[[], bytes]) -> Any:
    """A WSGI app that answers any exception with a 500 of its own."""

    def app(environ: Any, start_response: Any) -> list[bytes]:
        try:
            body = handler()
        except Exception:
            start_response("500 Internal Server Error", [("content-type", "text/plain")])
            return [b"Internal Server Error: secrets of the framework"]
        start_response("200 OK", [("content-type", "text/plain")])
        return [body]

    return app


def test_a_500_for_a_refusal_becomes_authgates_answer_on_asgi_and_wsgi() -> None:
    @require_role("admin")
    async def guarded_async() -> bytes:
        return b"ok"

    async def crashing() -> bytes:
        raise RuntimeError("a real bug")

    @require_role("admin")
    def guarded() -> bytes:
        return b"ok"

    def crashing_sync() -> bytes:
        raise RuntimeError("a real bug")

    async def over_asgi() -> None:
        agate = AsyncGate(store="memory://", secret_key=SECRET, hasher=cheap_hasher())
        for handler, status in ((guarded_async, 401), (crashing, 500)):
            app = AuthGateMiddleware(_swallowing_asgi(handler), agate)
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                reply = await client.get("/x")
            assert reply.status_code == status
            if status == 401:  # authgate's answer, and nothing of the framework's 500
                assert reply.json()["error"] == "not_authenticated"
                assert b"secrets" not in reply.content
            else:  # a real bug stays the framework's 500
                assert b"a real bug" not in reply.content and b"secrets" in reply.content

    asyncio.run(over_asgi())
    gate = Gate(store="memory://", secret_key=SECRET, hasher=cheap_hasher())
    for sync_handler, status in ((guarded, 401), (crashing_sync, 500)):
        app = AuthGateWSGIMiddleware(_swallowing_wsgi(sync_handler), gate)
        with httpx.Client(transport=httpx.WSGITransport(app=app), base_url="http://t") as client:
            reply = client.get("/x")
        assert reply.status_code == status
        if status == 401:
            assert reply.json()["error"] == "not_authenticated"
            assert reply.headers["www-authenticate"] == 'Bearer realm="authgate"'
            assert b"secrets" not in reply.content
