"""The demo app on FastAPI (ASGI): ``uvicorn examples.fastapi_app:app``; ``/docs`` has
an "Authorize" button that logs in with a username and password (or takes a token).

Configured only from ``AUTHGATE_*`` variables; seeds the admin at start.  Each route
documents its body, its answer and its refusals (`error_responses`), as authgate's own
routes are documented.
"""

from __future__ import annotations

from fastapi import Depends, FastAPI, Request, Response, WebSocket
from pydantic import BaseModel

from authgate import AsyncGate, Identity, NotAuthenticated
from authgate.decorators import check_object_permission
from authgate.integrations.fastapi import (
    AuthGate,
    error_responses,
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


class Message(BaseModel):
    message: str


class Item(BaseModel):
    id: int
    owner: str
    title: str


class ServedItem(Item):
    served_by: int  # the worker process that answered


class ItemList(BaseModel):
    items: list[Item]
    served_by: int


# `parse_title` reads the body as every demo app does (a 400 with authgate's error body
# for anything else), so the schema is given here rather than by a model.
NEW_ITEM = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "properties": {"title": {"type": "string", "minLength": 1, "maxLength": 200}},
                "required": ["title"],
                "additionalProperties": False,
            }
        }
    },
}
ITEM_LINKS = {"GetItem": {"operationId": "show_item", "parameters": {"id": "$response.body#/id"}}}


@app.get("/public", responses=error_responses(public=True))
async def public() -> Message:
    return Message(message="hello, anyone")


@app.get("/protected", responses=error_responses())
async def protected(me: Identity = Depends(require_auth())) -> Message:
    return Message(message=f"hello, {me.username}")


@app.get(
    "/operator", dependencies=[Depends(require_role("operator"))], responses=error_responses(403)
)
async def operator() -> Message:
    return Message(message="operators and admins only")


@app.get("/admin", dependencies=[Depends(require_role("admin"))], responses=error_responses(403))
async def admin() -> Message:
    return Message(message="admins only")


@app.post(
    "/items",
    status_code=201,
    responses={**error_responses(403), 201: {"links": ITEM_LINKS}},
    openapi_extra={"requestBody": NEW_ITEM},
)
async def create_item(
    request: Request, me: Identity = Depends(require_permission("items:create"))
) -> ServedItem:
    item = items.create(me.username, parse_title(await request.body()))
    return ServedItem.model_validate(item_view(item))


@app.options("/items", include_in_schema=False, status_code=204, response_model=None)
async def item_methods(response: Response) -> None:
    # Starlette's 405 would name the methods of one of the two routes only.
    response.headers["Allow"] = "GET, POST"


@app.get("/items", responses=error_responses())
async def list_items(me: Identity = Depends(require_auth())) -> ItemList:
    return ItemList.model_validate(items_view(items.readable_by(me)))


@app.get("/items/{id}", operation_id="show_item", responses=error_responses(403, 404))
async def show_item(id: str, me: Identity = Depends(require_auth())) -> ServedItem:
    item = items.get(item_id(id))
    check_object_permission(item, "read", ITEM_ACCESS, me, missing=MISSING)
    return ServedItem.model_validate(item_view(item))


@app.websocket("/ws")
async def echo(websocket: WebSocket) -> None:
    if not websocket.scope["user"].is_authenticated:
        raise NotAuthenticated()
    await websocket.accept()
    async for text in websocket.iter_text():
        await websocket.send_text(text)
