"""The demo app with no framework at all (WSGI): ``gunicorn examples.plain_wsgi:app``."""

from __future__ import annotations

import json
from collections.abc import Iterable

from authgate import AuthGateWSGIMiddleware, Gate, current_identity
from authgate.decorators import check, check_object_permission
from authgate.errors import NotFound
from authgate.middleware.wsgi import AuthGateWSGIApi
from authgate.permissions import HasPermission, IsAuthenticated
from authgate.types import StartResponse, WSGIEnviron
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

gate = Gate.from_env(policy=POLICY)
gate.ensure_superuser()
items = Items.from_env()


def _json(start_response: StartResponse, status: str, payload: object) -> list[bytes]:
    body = json.dumps(payload).encode()
    start_response(
        status, [("content-type", "application/json"), ("content-length", str(len(body)))]
    )
    return [body]


def demo(environ: WSGIEnviron, start_response: StartResponse) -> Iterable[bytes]:
    """The demo routes; authgate's errors raised here become 401/403/404 JSON."""
    path, method = environ.get("PATH_INFO", "/"), environ.get("REQUEST_METHOD", "GET")
    if path in PAGES and method == "GET":
        policy, message = PAGES[path]
        if policy is not None:
            check(policy)
        return _json(
            start_response,
            "200 OK",
            {"message": message or f"hello, {current_identity().username}"},
        )
    if path == "/items" and method == "POST":
        check(HasPermission("items:create"))
        length = int(environ.get("CONTENT_LENGTH") or 0)
        title = parse_title(environ["wsgi.input"].read(min(length, 65536)))
        return _json(
            start_response,
            "201 Created",
            item_view(items.create(current_identity().username, title)),
        )
    if path == "/items" and method == "GET":
        who = check(IsAuthenticated())
        return _json(start_response, "200 OK", items_view(items.readable_by(who)))
    if path.startswith("/items/") and method == "GET":
        check(IsAuthenticated())
        item = items.get(item_id(path[len("/items/") :]))
        check_object_permission(item, "read", ITEM_ACCESS, missing=MISSING)
        return _json(start_response, "200 OK", item_view(item))
    raise NotFound("no such route")


app = AuthGateWSGIMiddleware(AuthGateWSGIApi(demo, gate), gate)
