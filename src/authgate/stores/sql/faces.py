"""The two faces of the SQL store: the same operations (`_SQL`), run on SQLAlchemy's
sync engine or on its asyncio engine, and the store URL's own parameters."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import math
import os
import re
import weakref
from dataclasses import dataclass, replace
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from ...errors import ConfigError, StoreError, StoreUnavailable
from ...faces import AsyncFace, Steps, SyncFace, adrive, drive
from ...users import Session, User
from .. import urlparams
from ..cache import CACHE_TTL, SessionCache
from .feed import DEAF_AFTER, NotifyFeed, PollFeed, _Feed
from .logic import _SQL, RETRIES, Begin, Commit, Done, Run, _run, retryable
from .migrate import upgrade_if_behind
from .schema import Tables
from .usertable import MappedUsers, UserTable, user_table

__all__ = ["AsyncSQLStore", "SQLSettings", "SQLStore", "parse_sql_url"]

T = TypeVar("T")

# scheme -> (family, sync driver, async driver)
_SCHEMES: dict[str, tuple[str, str, str]] = {
    "postgresql": ("postgresql", "postgresql+psycopg", "postgresql+psycopg"),
    "postgres": ("postgresql", "postgresql+psycopg", "postgresql+psycopg"),
    "postgresql+psycopg": ("postgresql", "postgresql+psycopg", "postgresql+psycopg"),
    "postgresql+asyncpg": ("postgresql", "postgresql+psycopg", "postgresql+asyncpg"),
    "mysql": ("mysql", "mysql+pymysql", "mysql+aiomysql"),
    "mysql+pymysql": ("mysql", "mysql+pymysql", "mysql+aiomysql"),
    "mysql+aiomysql": ("mysql", "mysql+pymysql", "mysql+aiomysql"),
    "mysql+asyncmy": ("mysql", "mysql+pymysql", "mysql+asyncmy"),
    "mariadb": ("mysql", "mariadb+pymysql", "mariadb+aiomysql"),
    "mariadb+pymysql": ("mysql", "mariadb+pymysql", "mariadb+aiomysql"),
    "mariadb+aiomysql": ("mysql", "mariadb+pymysql", "mariadb+aiomysql"),
    "mariadb+asyncmy": ("mysql", "mariadb+pymysql", "mariadb+asyncmy"),
}
SCHEMES = frozenset(_SCHEMES)
#: The URL query parameters that are authgate's, not the driver's.
_OWN_PARAMETERS = (
    "prefix",
    "schema",
    "cache_ttl",
    "migrate",
    "pool_size",
    "max_overflow",
    "timeout",
    "users",
)
_NAME = re.compile(r"[A-Za-z0-9_]*\Z")


@dataclass(frozen=True)
class SQLSettings:
    """A SQL store URL, understood: the database, the drivers of each face, and
    authgate's own parameters (given in the URL's query or as keyword arguments)."""

    family: str
    sync_url: sa.URL
    async_url: sa.URL
    #: Put before every table name (``authgate_`` gives ``authgate_users``...).
    prefix: str = ""
    #: The schema of the tables (PostgreSQL), None for the connection's default.
    schema: str | None = None
    #: Seconds a cached session check lives at most (0: no cache).
    cache_ttl: float = CACHE_TTL
    #: Create or upgrade the tables when the store opens.
    migrate: bool = True
    pool_size: int = 5
    max_overflow: int = 10
    #: Seconds to wait for a pooled connection, a lock, or a statement.
    timeout: float = 10.0
    #: Users in the app's own table: a `UserTable`, a preset's name
    #: (``fastapi-users``, ``flask-security``) or ``module:attribute``; None: authgate's.
    users: UserTable | str | None = None

    @property
    def channel(self) -> str:
        """The PostgreSQL NOTIFY channel of these tables."""
        if not self.prefix and not self.schema:
            return "authgate_changes"
        tag = hashlib.sha256(f"{self.schema or ''}.{self.prefix}".encode()).hexdigest()[:16]
        return f"authgate_changes_{tag}"

    def where(self) -> str:
        """Host and port, for messages (never the password)."""
        url = self.sync_url
        return f"{url.host or 'localhost'}:{url.port or ''}".rstrip(":")


def parse_sql_url(url: str, **overrides: Any) -> SQLSettings:
    """Read a SQL store URL: ``postgresql://user@host/db?prefix=authgate_``.  Query
    parameters authgate knows (``prefix``, ``schema``, ``cache_ttl``, ``migrate``,
    ``pool_size``, ``max_overflow``, ``timeout``) are taken off; the rest go to the
    driver.  `overrides` (not None) win over the query."""
    try:
        parsed = sa.make_url(url)
    except (sa_exc.ArgumentError, ValueError) as err:
        raise ConfigError(f"bad SQL store URL: {err}") from None
    scheme = parsed.drivername.lower()
    if scheme not in _SCHEMES:
        raise ConfigError(
            f"unsupported SQL store URL scheme {scheme!r}: use postgresql://, "
            "postgresql+asyncpg://, mysql:// or mariadb://"
        )
    family, sync_driver, async_driver = _SCHEMES[scheme]
    query = dict(parsed.query)
    options: dict[str, Any] = {}
    for name in _OWN_PARAMETERS:
        if name in query:
            value = query.pop(name)
            options[name] = value[-1] if isinstance(value, tuple) else value
    options.update({k: v for k, v in overrides.items() if v is not None})
    if family == "mysql" and "charset" not in query:
        query["charset"] = "utf8mb4"
    base = parsed.set(query=query)
    settings = SQLSettings(
        family,
        base.set(drivername=sync_driver),
        base.set(drivername=async_driver),
    )
    return replace(settings, **_checked(options))


def _checked(options: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in options.items():
        if name == "users":
            out[name] = value
        elif name in ("prefix", "schema"):
            if not isinstance(value, str) or not _NAME.match(value) or len(value) > 32:
                raise ConfigError(
                    f"the SQL store's {name} must be at most 32 letters, digits or '_' "
                    f"(got {value!r})"
                )
            out[name] = value or (None if name == "schema" else "")
        elif name == "migrate":
            out[name] = urlparams.flag(name, value)
        elif name in ("pool_size", "max_overflow"):
            out[name] = urlparams.whole(name, value)
        else:  # cache_ttl, timeout
            out[name] = urlparams.seconds(name, value, zero=name == "cache_ttl")
    return out


def _connect_args(driver: str, timeout: float) -> dict[str, Any]:
    """Bounds on connecting and on each statement, per driver: no request waits on the
    database past `timeout` seconds."""
    ms = int(timeout * 1000)
    if driver == "psycopg":
        return {"connect_timeout": 5, "options": f"-c statement_timeout={ms} -c lock_timeout={ms}"}
    if driver == "asyncpg":
        return {
            "timeout": 5,
            "command_timeout": timeout,
            "server_settings": {"statement_timeout": str(ms), "lock_timeout": str(ms)},
        }
    return {  # pymysql, aiomysql, asyncmy
        "connect_timeout": 5,
        "init_command": f"SET SESSION innodb_lock_wait_timeout = {max(1, math.ceil(timeout))}",
    }


def _engine_options(settings: SQLSettings, url: sa.URL) -> dict[str, Any]:
    return {
        # One round trip per read; writes of several statements say BEGIN themselves.
        "isolation_level": "AUTOCOMMIT",
        # With autocommit there is no transaction to reset; the faces end their own.
        "pool_reset_on_return": None,
        # No ping before each use (a round trip every time: 120-250 µs of a 300-600 µs
        # check); a connection a restart left dead fails its statement instead, which
        # invalidates the pool, and a read is then tried again on a fresh one.
        "pool_pre_ping": False,
        # The session check joins the user to a one-row table on the username alone, a
        # join the linter takes for a cartesian product.
        "enable_from_linting": False,
        "pool_size": settings.pool_size,
        "max_overflow": settings.max_overflow,
        "pool_timeout": settings.timeout,
        "pool_recycle": 1800,
        "connect_args": _connect_args(url.get_driver_name(), settings.timeout),
    }


def migration_engine(settings: SQLSettings) -> sa.Engine:
    """A sync engine without a pool or autocommit, for migrations and the CLI."""
    url = settings.sync_url
    return sa.create_engine(
        url, poolclass=NullPool, connect_args=_connect_args(url.get_driver_name(), 60.0)
    )


def _failure(settings: SQLSettings, err: BaseException) -> StoreError:
    """`err` (from SQLAlchemy or a driver) in the store's terms."""
    if isinstance(err, StoreError):
        return err
    orig = getattr(err, "orig", None) or err
    lost = getattr(err, "connection_invalidated", False)
    if lost or isinstance(
        err,
        (
            sa_exc.OperationalError,
            sa_exc.InterfaceError,
            sa_exc.TimeoutError,
            sa_exc.DisconnectionError,
            OSError,
            TimeoutError,
        ),
    ):
        return StoreUnavailable(
            f"cannot reach the database at {settings.where()}: {type(orig).__name__}: {orig}"
        )
    if isinstance(err, sa_exc.ProgrammingError):
        return StoreError(
            f"the database refused an operation ({orig}); if authgate's tables are missing "
            "or old, run `authgate db upgrade`"
        )
    return StoreError(f"the database refused an operation: {type(orig).__name__}: {orig}")


class _Conversation:
    """One operation's connection: runs its steps, and knows whether a transaction it
    began is still open (then the connection is thrown away, never pooled)."""

    __slots__ = ("conn", "open")

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.open = False

    def control(self, step: object) -> str:
        """The SQL of a transaction step, tracking whether one is open."""
        if type(step) is Begin:
            self.open = True
            return "BEGIN"
        return "COMMIT" if type(step) is Commit else "ROLLBACK"

    def may_retry(self, err: sa_exc.DBAPIError, attempt: int, statement: object) -> bool:
        """Run a statement again, outside a transaction only (in one, the transaction
        is retried whole: `_SQL._transaction`): one the database refused for a deadlock
        or a serialization failure (it changed nothing), or a read whose connection
        turned out dead (a database restart; SQLAlchemy has then emptied the pool, and
        the next try connects afresh).  A write on a dead connection is not tried
        again: it may have been applied before the connection went."""
        if self.open or attempt >= RETRIES:
            return False
        if err.connection_invalidated:
            return attempt == 1 and isinstance(statement, sa.Select)
        return retryable(err)

    def ended(self, step: object) -> None:
        if type(step) is not Begin:
            self.open = False


def _done(result: sa.CursorResult[Any]) -> Done:
    context: Any = result.context
    key = None
    if context.isinsert and not context.executemany:
        # the key the database chose (read from RETURNING or lastrowid by SQLAlchemy);
        # an insert with a RETURNING of its own has none to give
        with contextlib.suppress(sa_exc.InvalidRequestError):
            inserted = result.inserted_primary_key
            key = inserted[0] if inserted else None
    rows = result.all() if result.returns_rows else ()
    return Done(rows, result.rowcount, key)


#: Stores whose engines a forked child must not share with its parent.
_OPEN: weakref.WeakSet[_SQLFace] = weakref.WeakSet()


def _fresh_after_fork() -> None:
    """A forked child (a pre-loading server's worker) gets new pools, leaving its
    parent's connections alone, and a session cache of its own."""
    for store in list(_OPEN):
        store._after_fork()


os.register_at_fork(after_in_child=_fresh_after_fork)


class _SQLFace(_SQL):
    """What both faces share: settings, tables, migrations, and the cache's feed."""

    _feed: _Feed | None = None

    def __init__(
        self,
        url: str,
        *,
        prefix: str | None = None,
        schema: str | None = None,
        cache_ttl: float | None = None,
        migrate: bool | None = None,
        users: UserTable | str | None = None,
    ) -> None:
        self.url = url
        self.settings = parse_sql_url(
            url, prefix=prefix, schema=schema, cache_ttl=cache_ttl, migrate=migrate, users=users
        )
        s = self.settings
        super().__init__(Tables.build(s.prefix, s.schema), s.family, s.channel)
        if s.migrate or s.users is not None:
            engine = migration_engine(s)
            try:
                if s.migrate:
                    upgrade_if_behind(engine, s.prefix, s.schema)
                if s.users is not None:
                    self.mapped = MappedUsers(
                        user_table(s.users), engine, self.tables, _run, self._transaction,
                        self._announce,
                    )  # fmt: skip
            except sa_exc.SQLAlchemyError as err:
                raise _failure(s, err) from err
            finally:
                engine.dispose()
        _OPEN.add(self)

    def __repr__(self) -> str:
        s = self.settings
        return f"{type(self).__name__}({s.family}://{s.where()}, prefix={s.prefix!r})"

    def _session_cache(self) -> SessionCache | None:
        if self._cache is None and self.settings.cache_ttl > 0:
            cache = SessionCache(self.settings.cache_ttl, deaf_after=DEAF_AFTER)
            url = self.settings.sync_url
            options = _connect_args(url.get_driver_name(), 10.0)
            if self.family == "postgresql":  # named, for pg_stat_activity
                options["application_name"] = "authgate-feed"
            feed_engine = sa.create_engine(url, poolclass=NullPool, connect_args=options)
            feed: _Feed
            if self.family == "postgresql":
                feed = NotifyFeed(feed_engine, cache, self.channel)
            else:
                feed = PollFeed(feed_engine, cache, self.tables)
            feed.start()
            self._feed, self._cache = feed, cache
        return self._cache

    def peek_session_user(
        self, session_id: str, username: str
    ) -> tuple[Session | None, User | None] | None:
        """The cached answer, or None (never a database read)."""
        cache = self._cache or self._session_cache()  # the feed starts on the first check
        return cache.get(session_id, username) if cache is not None else None

    def _stop_feed(self) -> None:
        if self._feed is not None:
            self._feed.stop()
            self._feed.join(2)
            self._feed = None
        self._cache = None

    def _after_fork(self) -> None:
        self._feed = None
        self._cache = None


class SQLStore(_SQLFace, SyncFace):
    """The sync face of the SQL store (SQLAlchemy's `Engine`): PostgreSQL through
    psycopg, MySQL and MariaDB through PyMySQL."""

    def __init__(self, url: str, *, engine: sa.Engine | None = None, **options: Any) -> None:
        super().__init__(url, **options)
        s = self.settings
        self._engine = engine or sa.create_engine(s.sync_url, **_engine_options(s, s.sync_url))

    def _drive(self, steps: Steps[T]) -> T:
        try:
            with self._engine.connect() as conn:
                talk = _Conversation(conn)
                try:
                    return drive(steps, lambda step: self._step(talk, step))
                finally:
                    if talk.open:
                        conn.invalidate()
        except sa_exc.SQLAlchemyError as err:
            raise _failure(self.settings, err) from err

    @staticmethod
    def _step(talk: _Conversation, step: Any) -> Done | None:
        if type(step) is Run:
            attempt = 0
            while True:
                try:
                    return _done(talk.conn.execute(step.statement, step.params))
                except sa_exc.DBAPIError as err:
                    attempt += 1
                    if not talk.may_retry(err, attempt, step.statement):
                        raise
                    if err.connection_invalidated:  # SQLAlchemy reconnects after this
                        talk.conn.rollback()
        talk.conn.exec_driver_sql(talk.control(step))
        talk.ended(step)
        return None

    def _after_fork(self) -> None:
        super()._after_fork()
        self._engine.dispose(close=False)

    def close(self) -> None:
        """Stop the cache's feed and close the pooled connections."""
        self._stop_feed()
        self._engine.dispose()


class AsyncSQLStore(_SQLFace, AsyncFace):
    """The async face of the SQL store (SQLAlchemy's `AsyncEngine`): PostgreSQL through
    psycopg's or asyncpg's asyncio connections, MySQL and MariaDB through aiomysql."""

    def __init__(self, url: str, *, engine: AsyncEngine | None = None, **options: Any) -> None:
        super().__init__(url, **options)
        s = self.settings
        self._engine = engine or create_async_engine(s.async_url, **_engine_options(s, s.async_url))
        #: The event loop the pool's connections belong to.
        self._loop: asyncio.AbstractEventLoop | None = None

    async def _drive(self, steps: Steps[T]) -> T:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            self._moved_to(loop)
        try:
            async with self._engine.connect() as conn:
                talk = _Conversation(conn)
                try:
                    return await adrive(steps, lambda step: self._step(talk, step))
                finally:
                    if talk.open:
                        await conn.invalidate()
        except sa_exc.SQLAlchemyError as err:
            raise _failure(self.settings, err) from err

    @staticmethod
    async def _step(talk: _Conversation, step: Any) -> Done | None:
        conn: AsyncConnection = talk.conn
        if type(step) is Run:
            attempt = 0
            while True:
                try:
                    return _done(await conn.execute(step.statement, step.params))
                except sa_exc.DBAPIError as err:
                    attempt += 1
                    if not talk.may_retry(err, attempt, step.statement):
                        raise
                    if err.connection_invalidated:  # SQLAlchemy reconnects after this
                        await conn.rollback()
        await conn.exec_driver_sql(talk.control(step))
        talk.ended(step)
        return None

    def _moved_to(self, loop: asyncio.AbstractEventLoop) -> None:
        """The store is used from another event loop than before (a second
        ``asyncio.run``, a test client's loop): connections opened on the old one
        cannot serve this one, so the pool starts anew, leaving them to the old loop."""
        if self._loop is not None:
            self._engine.sync_engine.dispose(close=False)
        self._loop = loop

    def _after_fork(self) -> None:
        super()._after_fork()
        self._engine.sync_engine.dispose(close=False)

    async def close(self) -> None:
        """Stop the cache's feed and close the pooled connections (those of another
        event loop than this one are left to it)."""
        self._stop_feed()
        if asyncio.get_running_loop() is not self._loop:
            self._moved_to(asyncio.get_running_loop())
        await self._engine.dispose()
