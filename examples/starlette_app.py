"""The demo app on Starlette (ASGI): ``uvicorn examples.starlette_app:app``.

Configured only from ``AUTHGATE_*`` variables; seeds the admin at start.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from authgate import (
    AsyncGate,
    current_identity,
    require_auth,
    require_object_permission,
    require_permission,
    require_role,
)
from authgate.integrations.starlette import AuthGate
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
auth = AuthGate(gate)
items = Items.from_env()


async def public(request: Request) -> JSONResponse:
    return JSONResponse({"message": "hello, anyone"})


@require_auth
async def protected(request: Request) -> JSONResponse:
    return JSONResponse({"message": f"hello, {current_identity().username}"})


@require_role("operator")
async def operator(request: Request) -> JSONResponse:
    return JSONResponse({"message": "operators and admins only"})


@require_role("admin")
async def admin(request: Request) -> JSONResponse:
    return JSONResponse({"message": "admins only"})


@require_permission("items:create")
async def create_item(request: Request) -> JSONResponse:
    item = items.create(current_identity().username, parse_title(await request.body()))
    return JSONResponse(item_view(item), status_code=201)


@require_auth
async def list_items(request: Request) -> JSONResponse:
    return JSONResponse(items_view(items.readable_by(current_identity())))


@require_object_permission(
    "read",
    load=lambda request: items.get(item_id(request.path_params["id"])),
    policy=ITEM_ACCESS,
    missing=MISSING,
)
async def show_item(request: Request) -> JSONResponse:
    return JSONResponse(item_view(items.get(item_id(request.path_params["id"]))))


@require_auth
async def echo(websocket: WebSocket) -> None:
    await websocket.accept()
    async for text in websocket.iter_text():
        await websocket.send_text(text)


app = Starlette(
    routes=[
        Route("/public", public),
        Route("/protected", protected),
        Route("/operator", operator),
        Route("/admin", admin),
        Route("/items", create_item, methods=["POST"]),
        Route("/items", list_items, methods=["GET"]),
        Route("/items/{id}", show_item),
        WebSocketRoute("/ws", echo),
        *auth.routes,
    ],
    middleware=auth.middleware,
    exception_handlers=auth.exception_handlers,
)
