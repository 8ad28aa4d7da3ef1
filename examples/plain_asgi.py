"""The demo app with no framework at all (ASGI): ``uvicorn examples.plain_asgi:app``."""

from __future__ import annotations

import json

from authgate import AsyncGate, AuthGateMiddleware, current_identity
from authgate.decorators import check, check_object_permission
from authgate.errors import NotFound
from authgate.middleware.asgi import AuthGateApi
from authgate.permissions import HasPermission, IsAuthenticated
from authgate.types import Receive, Scope, Send
from examples.demo import (
    ITEM_ACCESS,
    MISSING,
    PAGES,
    POLICY,
    Items,
    item_id,
    item_view,
    items_view,
    parse_title,
)

gate = AsyncGate.from_env(policy=POLICY)
gate.ensure_superuser_now()
items = Items.from_env()


async def _json(send: Send, status: int, payload: object) -> None:
    body = json.dumps(payload).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _body(receive: Receive) -> bytes:
    body = b""
    while True:
        message = await receive()
        body += bytes(message.get("body", b""))
        if not message.get("more_body") or len(body) > 65536:
            return body


async def demo(scope: Scope, receive: Receive, send: Send) -> None:
    """The demo routes; authgate's errors raised here become 401/403/404 JSON."""
    if scope["type"] == "lifespan":
        while (message := await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    path = scope["path"]
    if scope["type"] == "websocket":
        if path != "/ws":
            await send({"type": "websocket.close", "code": 1008})
            return
        check(IsAuthenticated())
        await receive()
        await send({"type": "websocket.accept"})
        while (message := await receive())["type"] == "websocket.receive":
            await send({"type": "websocket.send", "text": message.get("text", "")})
        return
    method = scope["method"]
    if path in PAGES and method == "GET":
        policy, text = PAGES[path]
        if policy is not None:
            check(policy)
        await _json(send, 200, {"message": text or f"hello, {current_identity().username}"})
    elif path == "/items" and method == "POST":
        check(HasPermission("items:create"))
        title = parse_title(await _body(receive))
        await _json(send, 201, item_view(items.create(current_identity().username, title)))
    elif path == "/items" and method == "GET":
        who = check(IsAuthenticated())
        await _json(send, 200, items_view(items.readable_by(who)))
    elif path.startswith("/items/") and method == "GET":
        check(IsAuthenticated())
        item = items.get(item_id(path[len("/items/") :]))
        check_object_permission(item, "read", ITEM_ACCESS, missing=MISSING)
        await _json(send, 200, item_view(item))
    else:
        raise NotFound("no such route")


app = AuthGateMiddleware(AuthGateApi(demo, gate), gate)
