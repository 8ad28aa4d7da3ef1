"""The ASGI middleware: every credential form and refusal, raw ASGI and Starlette."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.authentication import requires
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.testclient import TestClient, WebSocketDenialResponse
from starlette.websockets import WebSocket, WebSocketDisconnect

from authgate.context import current_identity
from authgate.decorators import check, require_role
from authgate.errors import AuthGateError
from authgate.gate import AsyncGate, Gate
from authgate.http import CredentialRules, error_response
from authgate.middleware.asgi import WS_SESSION_REVOKED, AuthGateMiddleware
from authgate.permissions import HasRole, IsAuthenticated
from authgate.stores import MemoryStore, SyncStoreAsAsync
from authgate.testing import cheap_hasher
from authgate.types import Receive, Scope, Send
from conftest import SECRET

PW = "correct horse battery"


async def raw_app(scope: Scope, receive: Receive, send: Send) -> None:
    """A plain ASGI app, no framework: guards raise, the middleware renders."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] == "websocket":
        await receive()
        await send({"type": "websocket.accept"})
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return
            await send({"type": "websocket.send", "text": "echo:" + message.get("text", "")})
    path = scope["path"]
    if path == "/protected":
        check(IsAuthenticated())
    elif path == "/admin":
        check(HasRole("admin"))
    if path == "/stream":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for i in range(3):
            await send(
                {"type": "http.response.body", "body": f"chunk{i};".encode(), "more_body": i < 2}
            )
        return
    who = current_identity()
    body = json.dumps(
        {"user": who.username, "auth": who.is_authenticated, "scope_user": scope["user"].username}
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": body})


@pytest.fixture
def gate() -> AsyncGate:
    memory = MemoryStore()
    g = AsyncGate(
        store=SyncStoreAsAsync(memory, offload=False), hasher=cheap_hasher(), secret_key=SECRET
    )
    sync = Gate(store=memory, hasher=cheap_hasher(), secret_key=SECRET)
    for name, role in (("root", "admin"), ("olga", "operator"), ("vic", "viewer")):
        sync.create_user(name, PW, roles=[role])
    g.sync_twin = sync  # type: ignore[attr-defined]
    return g


def token_for(gate: AsyncGate, name: str) -> str:
    """Log in through a sync gate over the same store (usable inside a running loop)."""
    twin: Gate = gate.sync_twin  # type: ignore[attr-defined]
    return twin.login(name, PW).access_token


def revoke_all(gate: AsyncGate, name: str) -> None:
    twin: Gate = gate.sync_twin  # type: ignore[attr-defined]
    twin.revoke_sessions(name)


@pytest.fixture
def raw(gate: AsyncGate) -> AuthGateMiddleware:
    return AuthGateMiddleware(raw_app, gate, rules=CredentialRules(cookie_name="session"))


@pytest.fixture
async def client(raw: AuthGateMiddleware) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=raw)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        yield c


async def test_anonymous_passes_as_anonymous(client: httpx.AsyncClient) -> None:
    r = await client.get("/public")
    assert r.status_code == 200
    assert r.json() == {"user": "", "auth": False, "scope_user": ""}


@pytest.mark.parametrize(
    "form",
    [
        "Bearer {}",
        "bearer {}",
        "BEARER {}",
        "BEARER authToken={}",
        "Bearer authtoken={}",
        "  Bearer   {}  ",
    ],
)
async def test_authorization_header_forms(
    client: httpx.AsyncClient, gate: AsyncGate, form: str
) -> None:
    token = token_for(gate, "olga")
    r = await client.get("/public", headers={"Authorization": form.format(token)})
    assert r.status_code == 200
    assert r.json() == {"user": "olga", "auth": True, "scope_user": "olga"}


async def test_other_schemes_are_anonymous(client: httpx.AsyncClient) -> None:
    r = await client.get("/public", headers={"Authorization": "Basic YWxpY2U6c2VjcmV0"})
    assert r.json()["auth"] is False


@pytest.mark.parametrize(
    "header",
    [
        "Bearer",
        "Bearer ",
        "Bearer not-a-jwt",
        "Bearer a.b.c",
        "BEARER authToken=",
        "Bearer two tokens",
        "Bearer " + "x" * 9000,
    ],
)
async def test_bad_token_is_401_with_rfc6750_challenge(
    client: httpx.AsyncClient, header: str
) -> None:
    r = await client.get("/public", headers={"Authorization": header})
    assert r.status_code == 401
    challenge = r.headers["www-authenticate"]
    assert challenge.startswith('Bearer realm="authgate", error="invalid_token"')
    assert r.json()["error"] == "invalid_token"
    assert r.json()["detail"]


async def test_missing_credentials_on_a_guard_is_401_without_error_code(
    client: httpx.AsyncClient,
) -> None:
    r = await client.get("/protected")
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == 'Bearer realm="authgate"'
    assert r.json() == {
        "error": "not_authenticated",
        "detail": "authentication required",
    }


async def test_insufficient_role_is_403_saying_what_was_required(
    client: httpx.AsyncClient, gate: AsyncGate
) -> None:
    headers = {"Authorization": f"Bearer {token_for(gate, 'vic')}"}
    r = await client.get("/admin", headers=headers)
    assert r.status_code == 403
    assert r.json() == {"error": "forbidden", "detail": "requires admin role"}
    admin = {"Authorization": f"Bearer {token_for(gate, 'root')}"}
    assert (await client.get("/admin", headers=admin)).status_code == 200


async def test_revoked_session_is_401(client: httpx.AsyncClient, gate: AsyncGate) -> None:
    token = token_for(gate, "olga")
    revoke_all(gate, "olga")
    r = await client.get("/public", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 401
    assert 'error="invalid_token"' in r.headers["www-authenticate"]


async def test_cookie_with_csrf_double_submit(client: httpx.AsyncClient, gate: AsyncGate) -> None:
    token = token_for(gate, "olga")
    cookies = {"session": token, "authgate_csrf": "nonce123"}
    client.cookies.update(cookies)
    assert (await client.get("/public")).json()["user"] == "olga"
    refused = await client.post("/public")
    assert refused.status_code == 403
    assert "CSRF" in refused.json()["detail"]
    wrong = await client.post("/public", headers={"X-CSRF-Token": "other"})
    assert wrong.status_code == 403
    ok = await client.post("/public", headers={"X-CSRF-Token": "nonce123"})
    assert ok.json()["user"] == "olga"


async def test_query_token_is_ignored_on_http(client: httpx.AsyncClient, gate: AsyncGate) -> None:
    r = await client.get("/public", params={"token": token_for(gate, "olga")})
    assert r.json()["auth"] is False


async def test_cors_preflight_passes_with_a_bad_token(client: httpx.AsyncClient) -> None:
    r = await client.options("/public", headers={"Authorization": "Bearer garbage"})
    assert r.status_code == 200
    assert r.json()["auth"] is False


async def test_streaming_messages_pass_one_by_one(raw: AuthGateMiddleware) -> None:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        sent.append(dict(message))

    scope = {"type": "http", "method": "GET", "path": "/stream", "headers": [], "query_string": b""}
    await raw(scope, receive, send)
    assert [m["type"] for m in sent] == ["http.response.start"] + ["http.response.body"] * 3
    assert [m.get("more_body") for m in sent[1:]] == [True, True, False]


async def test_lifespan_passes_through(raw: AuthGateMiddleware) -> None:
    inbox = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    sent: list[str] = []

    async def receive() -> dict[str, Any]:
        return inbox.pop(0)

    async def send(message: Any) -> None:
        sent.append(message["type"])

    await raw({"type": "lifespan"}, receive, send)
    assert sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"]


def test_websocket_header_and_query_token_and_refusal(
    raw: AuthGateMiddleware, gate: AsyncGate
) -> None:
    token = token_for(gate, "olga")
    with TestClient(raw) as tc:
        with tc.websocket_connect("/ws", headers={"Authorization": f"Bearer {token}"}) as ws:
            ws.send_text("hi")
            assert ws.receive_text() == "echo:hi"
        with tc.websocket_connect(f"/ws?token={token}") as ws:
            ws.send_text("q")
            assert ws.receive_text() == "echo:q"
        # Refused before accept: TestClient offers websocket.http.response, so a real 401.
        with (
            pytest.raises(WebSocketDenialResponse) as info,
            tc.websocket_connect("/ws?token=garbage"),
        ):
            pass
        assert info.value.status_code == 401
        assert "invalid_token" in info.value.headers["www-authenticate"]
        with (
            pytest.raises(WebSocketDenialResponse),
            tc.websocket_connect("/ws", headers={"Authorization": "Bearer x.y.z"}),
        ):
            pass


async def test_websocket_refused_with_1008_without_the_http_response_extension(
    raw: AuthGateMiddleware,
) -> None:
    inbox = [{"type": "websocket.connect"}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return inbox.pop(0)

    async def send(message: Any) -> None:
        sent.append(dict(message))

    scope = {"type": "websocket", "path": "/ws", "headers": [], "query_string": b"token=bad"}
    await raw(scope, receive, send)
    assert sent == [{"type": "websocket.close", "code": 1008}]


def test_websocket_closed_with_4401_when_session_revoked(
    raw: AuthGateMiddleware, gate: AsyncGate
) -> None:
    token = token_for(gate, "olga")
    with (
        TestClient(raw) as tc,
        tc.websocket_connect("/ws", headers={"Authorization": f"Bearer {token}"}) as ws,
    ):
        ws.send_text("one")
        assert ws.receive_text() == "echo:one"
        revoke_all(gate, "olga")
        ws.send_text("two")
        with pytest.raises(WebSocketDisconnect) as info:
            ws.receive_text()
        assert info.value.code == WS_SESSION_REVOKED


# -- Starlette on top ---------------------------------------------------------------------


@requires("authenticated")
async def starlette_protected(request: Request) -> JSONResponse:
    return JSONResponse({"user": request.user.display_name, "scopes": request.auth.scopes})


@requires(["authenticated", "admin"])
async def starlette_admin(request: Request) -> PlainTextResponse:
    return PlainTextResponse("admin")


@require_role("operator")
async def guarded(request: Request) -> PlainTextResponse:
    return PlainTextResponse(current_identity().username)


async def ws_echo(websocket: WebSocket) -> None:
    await websocket.accept()
    async for text in websocket.iter_text():
        await websocket.send_text(f"{websocket.user.username}:{text}")


async def render_authgate_error(request: Request, exc: Exception) -> Response:
    """Starlette answers unhandled errors with 500 itself; hand authgate's to the core."""
    assert isinstance(exc, AuthGateError)
    rendered = error_response(exc)
    return Response(rendered.body, rendered.status, headers=dict(rendered.headers))


def starlette_app(gate: AsyncGate) -> AuthGateMiddleware:
    app = Starlette(
        exception_handlers={AuthGateError: render_authgate_error},
        routes=[
            Route("/protected", starlette_protected),
            Route("/admin", starlette_admin),
            Route("/guarded", guarded),
            WebSocketRoute("/ws", ws_echo),
        ],
    )
    return AuthGateMiddleware(app, gate)


def test_starlette_requires_works_on_top(gate: AsyncGate) -> None:
    with TestClient(starlette_app(gate)) as tc:
        assert tc.get("/protected").status_code == 403  # Starlette's own answer
        olga = {"Authorization": f"Bearer {token_for(gate, 'olga')}"}
        r = tc.get("/protected", headers=olga)
        assert r.json() == {"user": "olga", "scopes": ["authenticated", "operator"]}
        assert tc.get("/admin", headers=olga).status_code == 403
        root = {"Authorization": f"Bearer {token_for(gate, 'root')}"}
        assert tc.get("/admin", headers=root).text == "admin"
        assert tc.get("/guarded", headers=olga).text == "olga"
        vic = {"Authorization": f"Bearer {token_for(gate, 'vic')}"}
        denied = tc.get("/guarded", headers=vic)
        assert denied.status_code == 403
        assert denied.json()["detail"] == "requires operator or admin role"
        assert tc.get("/guarded").status_code == 401
        with tc.websocket_connect("/ws", headers=olga) as ws:
            ws.send_text("x")
            assert ws.receive_text() == "olga:x"
