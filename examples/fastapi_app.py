"""The demo app on FastAPI (ASGI): ``uvicorn examples.fastapi_app:app``; ``/docs`` has
an "Authorize" button for the bearer token.

Configured only from ``AUTHGATE_*`` variables; seeds the admin at start.
"""

from __future__ import annotations

from typing import Any

from fastapi import Depends, FastAPI, Request, WebSocket
from fastapi.responses import JSONResponse

from authgate import AsyncGate, Identity, NotAuthenticated
from authgate.decorators import check_object_permission
from authgate.integrations.fastapi import (
    AuthGate,
    require_auth,
    require_permission,
    require_role,
)
from examples.demo import (
    ITEM_ACCESS,
    MISSING,
    POLICY,
    Items,
    item_id,
    item_view,
    items_view,
    parse_title,
)

gate = AsyncGate.from_env(policy=POLICY)
gate.ensure_superuser_now()
app = FastAPI(title="authgate demo")
AuthGate(gate).install(app)
items = Items.from_env()


@app.get("/public")
async def public() -> dict[str, str]:
    return {"message": "hello, anyone"}


@app.get("/protected")
async def protected(me: Identity = Depends(require_auth())) -> dict[str, str]:
    return {"message": f"hello, {me.username}"}


@app.get("/operator", dependencies=[Depends(require_role("operator"))])
async def operator() -> dict[str, str]:
    return {"message": "operators and admins only"}


@app.get("/admin", dependencies=[Depends(require_role("admin"))])
async def admin() -> dict[str, str]:
    return {"message": "admins only"}


@app.post("/items", status_code=201)
async def create_item(
    request: Request, me: Identity = Depends(require_permission("items:create"))
) -> JSONResponse:
    item = items.create(me.username, parse_title(await request.body()))
    return JSONResponse(item_view(item), status_code=201)


@app.get("/items")
async def list_items(me: Identity = Depends(require_auth())) -> dict[str, Any]:
    return items_view(items.readable_by(me))


@app.get("/items/{id}")
async def show_item(id: str, me: Identity = Depends(require_auth())) -> dict[str, Any]:
    item = items.get(item_id(id))
    check_object_permission(item, "read", ITEM_ACCESS, me, missing=MISSING)
    return item_view(item)


@app.websocket("/ws")
async def echo(websocket: WebSocket) -> None:
    if not websocket.scope["user"].is_authenticated:
        raise NotAuthenticated()
    await websocket.accept()
    async for text in websocket.iter_text():
        await websocket.send_text(text)
