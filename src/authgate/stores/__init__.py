"""Stores: where users, groups, sessions and counters live.

`open_store` and `open_async_store` pick a backend from a URL:

========================================  ============================================
``memory://``                             in process (tests, demos)
``sqlite:///relative.db``,                one SQLite file (the embedded default)
``sqlite:////absolute/path.db``
``json:///path/to/dir``                   JSON files, written atomically
``redis://host:port/db?prefix=authgate``  Redis (``rediss://`` for TLS)
``postgresql://user@host/db``,            PostgreSQL, MySQL or MariaDB through
``mysql://...``, ``mariadb://...``         SQLAlchemy (`authgate.stores.sql`)
========================================  ============================================
"""

from __future__ import annotations

import os
from urllib.parse import unquote, urlsplit

from ..errors import ConfigError
from .base import AsyncStore, Page, Session, Store
from .memory import MemoryStore
from .sqlite import SQLiteStore
from .threaded import SyncStoreAsAsync

__all__ = [
    "AsyncStore",
    "MemoryStore",
    "Page",
    "SQLiteStore",
    "Session",
    "Store",
    "SyncStoreAsAsync",
    "is_sql_url",
    "open_async_store",
    "open_store",
]

_SCHEMES = (
    "memory://, sqlite:///path/to/file.db, json:///path/to/dir, "
    "redis://host:port/db or rediss://..., redis+cluster://h1:p1,h2:p2/, "
    "redis+sentinel://s1:p1,s2:p2/MASTER, postgresql://user@host/db, "
    "postgresql+asyncpg://..., mysql://... or mariadb://..."
)


def _sql_scheme(scheme: str) -> bool:
    return scheme.split("+")[0] in ("postgresql", "postgres", "mysql", "mariadb")


def is_sql_url(url: str) -> bool:
    """Does `url` name a SQL store (PostgreSQL, MySQL, MariaDB)?"""
    return isinstance(url, str) and _sql_scheme(urlsplit(url).scheme.lower())


def _sqlite_path(url: str) -> str:
    """The path of a file URL: ``scheme:///relative`` or ``scheme:////absolute``."""
    parts = urlsplit(url)
    scheme = parts.scheme
    if parts.netloc not in ("", "localhost"):
        raise ConfigError(
            f"bad {scheme} URL {url!r}: use {scheme}:///relative/path or {scheme}:////abs/path"
        )
    path = unquote(parts.path[1:] if parts.path.startswith("/") else parts.path)
    if not path:
        raise ConfigError(f"bad {scheme} URL {url!r}: it names no path ({scheme}:///authgate)")
    if _meant_absolute(path):
        raise ConfigError(
            f"{scheme}:///{path} names the relative path {path!r}, which does not exist here, "
            f"while /{path.split('/')[0]} does: for the absolute path write "
            f"{scheme}:////{path} (four slashes), for a relative one create its directory"
        )
    return path


def _meant_absolute(path: str) -> bool:
    """A relative path whose first directory is missing here but exists at the root:
    ``json:///srv/auth`` (three slashes) written for ``/srv/auth``, which would create
    ``./srv/auth`` without a word."""
    head, sep, _ = path.partition("/")
    return (
        bool(sep)
        and not os.path.isabs(path)
        and not os.path.exists(head)
        and os.path.isdir("/" + head)
    )


_REDIS_SCHEMES = frozenset(
    {"redis", "rediss", "unix", "redis+cluster", "rediss+cluster"}
    | {"redis+sentinel", "rediss+sentinel"}
)


def open_store(url: str) -> Store:
    """Open the sync face of the store named by `url`; `ConfigError` for a bad URL,
    `StoreUnavailable` when the server or file cannot be reached."""
    scheme = urlsplit(url).scheme.lower() if isinstance(url, str) else ""
    if scheme == "memory":
        return MemoryStore(url)
    if scheme == "sqlite":
        return SQLiteStore(_sqlite_path(url), url=url)
    if scheme in _REDIS_SCHEMES:
        from .redis import RedisStore

        return RedisStore(url)
    if scheme == "json":
        from .jsonfile import JSONFileStore

        return JSONFileStore(_sqlite_path(url).rstrip("/") or "/", url=url)
    if _sql_scheme(scheme):
        from .sql import SQLStore

        return SQLStore(url)
    raise ConfigError(f"unsupported store URL {url!r}: expected {_SCHEMES}")


def open_async_store(url: str) -> AsyncStore:
    """Open the async face of the store named by `url` (see `open_store`)."""
    scheme = urlsplit(url).scheme.lower() if isinstance(url, str) else ""
    if scheme in _REDIS_SCHEMES:
        from .redis import AsyncRedisStore

        return AsyncRedisStore(url)
    if scheme == "memory":
        return SyncStoreAsAsync(open_store(url), offload=False)
    if _sql_scheme(scheme):
        from .sql import AsyncSQLStore

        return AsyncSQLStore(url)
    # SQLite's session check reads in-line (a read by key never waits under WAL); a JSON
    # file's takes a file lock and parses the file: the pool.
    return SyncStoreAsAsync(open_store(url), inline_checks=scheme == "sqlite")
