"""What the example apps share: the role policy, the items, and their rules."""

from __future__ import annotations

import json
import os
import threading
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from authgate import (
    HasRole,
    Identity,
    IsAuthenticated,
    IsOwner,
    NotFound,
    Policy,
    RolePolicy,
    ValidationError,
)
from authgate.permissions import filter_objects

#: What a missing item answers (404), and so what a hidden one answers too
#: (``AUTHGATE_HIDE_OBJECTS=true``): the two cannot be told apart.
MISSING = "no such item"

#: operator and admin may create items; admin may do anything.
POLICY = RolePolicy({"operator": ["items:create"], "admin": ["*:*"]})

#: The guarded pages of the plain (framework-less) apps: path -> (guard, message).
PAGES: dict[str, tuple[Policy | None, str | None]] = {
    "/public": (None, "hello, anyone"),
    "/protected": (IsAuthenticated(), None),
    "/operator": (HasRole("operator"), "operators and admins only"),
    "/admin": (HasRole("admin"), "admins only"),
}

#: An item is readable by its owner and by admins (demo items are never shared with
#: groups; `IsOwner()` alone would also admit the groups an item is shared with).
ITEM_ACCESS = HasRole("admin") | IsOwner(groups_attr=None)


@dataclass(frozen=True)
class Item:
    """A demo record with an owner."""

    id: int
    owner: str
    title: str


class Items:
    """The demo's item table, in a store every worker shares: a SQLite file next to
    authgate's (``sqlite:///authgate.db`` -> ``authgate.db-items.db``), a hash under the
    same Redis prefix, a ``<prefix>demo_items`` table beside authgate's in a SQL
    database, or process memory for ``memory://`` and ``json://`` (one process).  Ids
    come from the store, so two workers never hand out the same one."""

    def __init__(self, store_url: str = "memory://") -> None:
        self._url = store_url
        self._lock = threading.Lock()
        self._memory: dict[int, Item] = {}
        self._redis: Any = None
        self._table: tuple[Any, Any] | None = None
        scheme = store_url.partition(":")[0]
        if scheme == "sqlite":
            self._table = _sqlite_items(_sqlite_path(store_url) + "-items.db")
        elif scheme.split("+")[0] in ("postgresql", "postgres", "mysql", "mariadb"):
            self._table = _sql_items(store_url)
        elif scheme.partition("+")[0] in ("redis", "rediss"):  # one server, cluster, Sentinel
            from authgate.stores.redis import redis_client

            prefix = parse_qs(urlsplit(store_url).query).get("prefix", ["authgate"])[0]
            self._redis = redis_client(store_url)
            self._key = f"demo-items:{prefix}"

    @classmethod
    def from_env(cls) -> Items:
        """Items in the store ``AUTHGATE_STORE`` names."""
        return cls(os.environ.get("AUTHGATE_STORE", "sqlite:///authgate.db"))

    def create(self, owner: str, title: str) -> Item:
        """Store a new item."""
        if self._table is not None:
            engine, table = self._table
            with engine.begin() as conn:
                made = conn.execute(table.insert().values(owner=owner, title=title))
                return Item(int(made.inserted_primary_key[0]), owner, title)
        if self._redis is not None:
            new_id = int(self._redis.hincrby(self._key, "next-id", 1))
            self._redis.hset(self._key, str(new_id), json.dumps([owner, title]))
            return Item(new_id, owner, title)
        with self._lock:
            item = Item(len(self._memory) + 1, owner, title)
            self._memory[item.id] = item
            return item

    def get(self, item_id: int) -> Item:
        """The item, or `NotFound` (404)."""
        item: Item | None = None
        if self._table is not None:
            engine, table = self._table
            with engine.connect() as conn:
                found = conn.execute(table.select().where(table.c.id == item_id)).first()
            item = Item(item_id, found.owner, found.title) if found else None
        elif self._redis is not None:
            raw = self._redis.hget(self._key, str(item_id))
            item = Item(item_id, *json.loads(raw)) if raw else None
        else:
            item = self._memory.get(item_id)
        if item is None:
            raise NotFound(MISSING)
        return item

    def readable_by(self, identity: Identity) -> list[Item]:
        """The items `identity` may read, by id: in a SQL database the query asks for
        those only (`visible_rows`: the rule `ITEM_ACCESS` as a condition), elsewhere
        every item is loaded and filtered (`filter_objects`)."""
        if self._table is not None:
            import sqlalchemy as sa

            from authgate.permissions.sql import visible_rows

            engine, table = self._table
            query = (
                sa.select(table)
                .where(visible_rows(identity, ITEM_ACCESS, table))
                .order_by(table.c.id)
            )
            with engine.connect() as conn:
                return [Item(row.id, row.owner, row.title) for row in conn.execute(query)]
        if self._redis is not None:
            raw = self._redis.hgetall(self._key)
            every = [
                Item(int(key), *json.loads(value)) for key, value in raw.items() if key.isdigit()
            ]
        else:
            with self._lock:
                every = list(self._memory.values())
        every.sort(key=lambda item: item.id)
        return filter_objects(identity, "read", every, policy=ITEM_ACCESS)


def _sql_items(store_url: str) -> tuple[Any, Any]:
    """An engine and the ``<prefix>demo_items`` table beside authgate's tables."""
    import sqlalchemy as sa

    from authgate.stores.sql import parse_sql_url

    settings = parse_sql_url(store_url)
    engine = sa.create_engine(settings.sync_url, pool_pre_ping=True)
    return engine, _made(engine, f"{settings.prefix}demo_items", settings.schema)


def _sqlite_items(path: str) -> tuple[Any, Any]:
    """An engine and the ``items`` table of the SQLite file at `path`."""
    import sqlalchemy as sa

    # The rollback journal, not WAL: switching a fresh file to WAL fails at once when
    # every worker does it together (authgate's store retries it; the demo need not).
    engine = sa.create_engine(f"sqlite:///{path}", connect_args={"timeout": 10})
    return engine, _made(engine, "items", None)


def _made(engine: Any, name: str, schema: str | None) -> Any:
    """The items table, made if missing (every worker of a new deployment tries at
    once: one wins)."""
    import sqlalchemy as sa

    table = sa.Table(
        name,
        sa.MetaData(schema=schema),
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("owner", sa.String(64), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sqlite_autoincrement=True,  # ids are never reused, as before
    )
    try:
        table.create(engine, checkfirst=True)
    except sa.exc.DatabaseError:  # another worker made it meanwhile
        if not sa.inspect(engine).has_table(table.name, schema=schema):
            raise
    return table


def _sqlite_path(url: str) -> str:
    """``sqlite:///relative`` or ``sqlite:////absolute``, as authgate reads it."""
    path = unquote(urlsplit(url).path)
    return path[1:] if path.startswith("/") else path


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
    """An item as JSON, with ``served_by``: the id of the worker process that answered
    (run the app with several workers and watch requests spread over them)."""
    return {**asdict(item), "served_by": os.getpid()}


def item_id(raw: str) -> int:
    """A path parameter as an item id; 404 for anything that is not one (ASCII digits
    only: ``"²".isdigit()`` is true, and ``int("١٢")`` is 12)."""
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 12:
        raise NotFound(MISSING)
    return int(raw)


def items_view(found: list[Item]) -> dict[str, object]:
    """``GET /items``: the items the caller may read."""
    return {"items": [asdict(item) for item in found], "served_by": os.getpid()}
