"""The demo app on Flask (WSGI): ``gunicorn examples.flask_app:app``.

Configured only from ``AUTHGATE_*`` variables; seeds the admin at start.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, request

from authgate import require_auth, require_object_permission, require_permission, require_role
from authgate.integrations.flask import AuthGate, current_identity
from examples.demo import ITEM_ACCESS, MISSING, POLICY, Items, item_view, items_view, parse_title

app = Flask(__name__)
auth = AuthGate(app, policy=POLICY)
with app.app_context():
    auth.gate.ensure_superuser()
items = Items.from_env()


@app.get("/public")
def public() -> Any:
    return {"message": "hello, anyone"}


@app.get("/protected")
@require_auth
def protected() -> Any:
    return {"message": f"hello, {current_identity.username}"}


@app.get("/operator")
@require_role("operator")
def operator() -> Any:
    return {"message": "operators and admins only"}


@app.get("/admin")
@require_role("admin")
def admin() -> Any:
    return {"message": "admins only"}


@app.post("/items")
@require_permission("items:create")
def create_item() -> Any:
    item = items.create(current_identity.username, parse_title(request.get_data()))
    return item_view(item), 201


@app.get("/items")
@require_auth
def list_items() -> Any:
    return items_view(items.readable_by(current_identity))


@app.get("/items/<int:item_id>")
@require_object_permission(
    "read", load=lambda item_id: items.get(item_id), policy=ITEM_ACCESS, missing=MISSING
)
def show_item(item_id: int) -> Any:
    return item_view(items.get(item_id))
