"""What the example apps share: the role policy, the items, and their rules."""

from __future__ import annotations

import json
import threading
from dataclasses import asdict, dataclass

from authgate import (
    HasRole,
    IsAuthenticated,
    IsOwner,
    NotFound,
    Policy,
    RolePolicy,
    ValidationError,
)

#: operator and admin may create items; admin may do anything.
POLICY = RolePolicy({"operator": ["items:create"], "admin": ["*:*"]})

#: The guarded pages of the plain (framework-less) apps: path -> (guard, message).
PAGES: dict[str, tuple[Policy | None, str | None]] = {
    "/public": (None, "hello, anyone"),
    "/protected": (IsAuthenticated(), None),
    "/operator": (HasRole("operator"), "operators and admins only"),
    "/admin": (HasRole("admin"), "admins only"),
}

#: An item is readable by its owner and by admins.
ITEM_ACCESS = HasRole("admin") | IsOwner()


@dataclass(frozen=True)
class Item:
    """A demo record with an owner."""

    id: int
    owner: str
    title: str


class Items:
    """An in-memory item table, safe across threads."""

    def __init__(self) -> None:
        self._items: dict[int, Item] = {}
        self._lock = threading.Lock()

    def create(self, owner: str, title: str) -> Item:
        """Store a new item."""
        with self._lock:
            item = Item(len(self._items) + 1, owner, title)
            self._items[item.id] = item
            return item

    def get(self, item_id: int) -> Item:
        """The item, or `NotFound` (404)."""
        item = self._items.get(item_id)
        if item is None:
            raise NotFound("no such item")
        return item


def parse_title(body: bytes) -> str:
    """The ``title`` of a ``POST /items`` body; 400 for anything else."""
    try:
        data = json.loads(body or b"null")
    except (ValueError, UnicodeDecodeError):
        raise ValidationError("the request body is not valid JSON") from None
    if not isinstance(data, dict):
        raise ValidationError("the request body must be a JSON object")
    unknown = sorted(set(data) - {"title"})
    if unknown:
        raise ValidationError(f"unknown field {unknown[0]!r}", field=unknown[0])
    title = data.get("title")
    if not isinstance(title, str) or not 1 <= len(title) <= 200:
        raise ValidationError(
            "field 'title' must be a string of 1 to 200 characters", field="title"
        )
    return title


def item_view(item: Item) -> dict[str, object]:
    """An item as JSON."""
    return asdict(item)


def item_id(raw: str) -> int:
    """A path parameter as an item id; 404 for anything that is not one."""
    if not raw.isdigit() or len(raw) > 12:
        raise NotFound("no such item")
    return int(raw)
