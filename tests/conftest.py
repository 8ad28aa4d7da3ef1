"""Fixtures shared by the suites: real backends, started by the tests themselves."""

from __future__ import annotations

import asyncio
import inspect
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from authgate.passwords import PasswordHasher
from authgate.stores import open_async_store, open_store
from authgate.testing import (
    ClusterSet,
    SentinelSet,
    cheap_hasher,
    env_redis_url,
    redis_cluster,
    redis_sentinel,
    redis_server,
)

#: Redis as one server, as a 3-primary cluster, and as a primary behind 3 sentinels.
REDIS_BACKENDS = ("redis", "redis-cluster", "redis-sentinel")
BACKENDS = ("memory", "sqlite", "json", *REDIS_BACKENDS, "postgres", "mariadb")
PERSISTENT = ("sqlite", "json", *REDIS_BACKENDS, "postgres", "mariadb")
#: The SQL backends' URL schemes; ``asyncpg`` is PostgreSQL through asyncpg (async only).
SQL_SCHEMES = {"postgres": "postgresql", "asyncpg": "postgresql+asyncpg", "mariadb": "mariadb"}
#: Every backend and face of the contract suites: ``[sqlite-sync]``, ``[asyncpg-async]``...
STORE_PARAMS = [f"{b}-{face}" for b in BACKENDS for face in ("sync", "async")] + ["asyncpg-async"]


@pytest.fixture(scope="session")
def redis_base_url() -> Iterator[str]:
    """A real Redis: ``REDIS_URL`` if set (never flushed: tests use unique key prefixes),
    else a private ``redis-server`` on a free port, stopped at the end."""
    url = env_redis_url()
    if url:
        yield url
        return
    with redis_server() as started:
        yield started


@pytest.fixture(scope="session")
def redis_cluster_set() -> Iterator[ClusterSet]:
    """A private Redis Cluster of three primaries on loopback, for the whole session
    (tests use unique key prefixes; none may stop its nodes: see `redis_cluster`)."""
    with redis_cluster() as started:
        yield started


@pytest.fixture(scope="session")
def redis_sentinel_set() -> Iterator[SentinelSet]:
    """A private primary, replica and three sentinels, for the whole session (a test
    that kills the primary starts a set of its own)."""
    with redis_sentinel() as started:
        yield started


@pytest.fixture(scope="session")
def postgres_database(postgres_base_url: str) -> Iterator[str]:
    """A private database on the PostgreSQL server for the whole session (each store
    in it gets a table prefix of its own), dropped at the end, before the server stops."""
    from authgate.testing import scratch_database

    with scratch_database(postgres_base_url) as url:
        yield url


@pytest.fixture(scope="session")
def mariadb_database(mysql_base_url: str) -> Iterator[str]:
    """`postgres_database` on the MySQL/MariaDB server."""
    from authgate.testing import scratch_database

    with scratch_database(mysql_base_url) as url:
        yield url


@pytest.fixture
def make_store_url(tmp_path: Path, request: pytest.FixtureRequest) -> Callable[[str], str]:
    """Build a fresh, private store URL for a backend name: a SQL store gets its own
    table prefix in the session's private database on that server."""

    def make(backend: str) -> str:
        if backend in SQL_SCHEMES:
            database = "mariadb_database" if backend == "mariadb" else "postgres_database"
            rest = request.getfixturevalue(database).split("://", 1)[1]
            return f"{SQL_SCHEMES[backend]}://{rest}?prefix=t{uuid.uuid4().hex[:10]}_"
        if backend == "memory":
            return "memory://"
        if backend == "sqlite":
            return f"sqlite:///{tmp_path / f'authgate-{uuid.uuid4().hex[:8]}.db'}"
        if backend == "json":
            return f"json:///{tmp_path / f'json-{uuid.uuid4().hex[:8]}'}"
        prefix = f"prefix=test-{uuid.uuid4().hex}"
        if backend == "redis":
            redis_base_url = request.getfixturevalue("redis_base_url")
            sep = "&" if "?" in redis_base_url else "?"
            return f"{redis_base_url}{sep}{prefix}"
        if backend == "redis-cluster":
            cluster: ClusterSet = request.getfixturevalue("redis_cluster_set")
            return cluster.url(prefix)
        if backend == "redis-sentinel":
            sentinel: SentinelSet = request.getfixturevalue("redis_sentinel_set")
            return sentinel.url(prefix)
        raise ValueError(backend)

    return make


class AsyncFace:
    """Runs an async store's coroutines on a private loop so one contract suite can
    drive both faces; every call really goes through the async code path."""

    def __init__(self, store: Any, loop: asyncio.AbstractEventLoop) -> None:
        self.store = store
        self.loop = loop
        self.url = getattr(store, "url", "")

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.store, name)
        if not inspect.iscoroutinefunction(method):
            return method

        def call(*args: Any, **kwargs: Any) -> Any:
            return self.loop.run_until_complete(method(*args, **kwargs))

        return call

    def gather(self, count: int, name: str, *args: Any) -> list[Any]:
        """Run `count` concurrent calls of one method on the loop."""
        method = getattr(self.store, name)

        async def many() -> list[Any]:
            return list(await asyncio.gather(*(method(*args) for _ in range(count))))

        return self.loop.run_until_complete(many())


@pytest.fixture(params=STORE_PARAMS)
def store(request: pytest.FixtureRequest, make_store_url: Callable[[str], str]) -> Iterator[Any]:
    """Every backend, through both faces: ids like ``[sqlite-sync]``, ``[redis-async]``."""
    backend, face = request.param.rsplit("-", 1)
    url = make_store_url(backend)
    if face == "sync":
        sync = open_store(url)
        yield sync
        sync.close()
        return
    loop = asyncio.new_event_loop()
    facade = AsyncFace(open_async_store(url), loop)
    yield facade
    facade.close()
    loop.close()


@pytest.fixture(params=PERSISTENT)
def persistent_url(request: pytest.FixtureRequest, make_store_url: Callable[[str], str]) -> str:
    """A URL for each backend that other processes can open too."""
    return make_store_url(request.param)


@pytest.fixture
def hasher() -> PasswordHasher:
    """Cheap argon2 parameters so tests do not spend 100 ms per hash."""
    return cheap_hasher()


SECRET = "test-secret-key-that-is-long-enough-0123456789"


@pytest.fixture(params=STORE_PARAMS)
def make_gate(
    request: pytest.FixtureRequest, make_store_url: Callable[[str], str]
) -> Iterator[Callable[..., Any]]:
    """Build gates on every backend and face (``[redis-async]``...); the async ones are
    wrapped so a test drives both with the same calls."""
    from authgate.gate import AsyncGate, Gate

    backend, face = request.param.rsplit("-", 1)
    url = make_store_url(backend)
    made: list[Any] = []
    loop = asyncio.new_event_loop()
    sync_store = open_store(url) if face == "sync" else None
    async_store = open_async_store(url) if face == "async" else None

    def make(**settings: Any) -> Any:
        settings.setdefault("secret_key", SECRET)
        hasher = settings.pop("hasher", None) or cheap_hasher()
        if face == "sync":
            gate = Gate(store=sync_store, hasher=hasher, **settings)
            made.append(gate)
            return gate
        agate = AsyncGate(store=async_store, hasher=hasher, **settings)
        facade = AsyncFace(agate, loop)
        facade.gate = agate  # type: ignore[attr-defined]
        made.append(facade)
        return facade

    make.backend = backend  # type: ignore[attr-defined]
    make.face = face  # type: ignore[attr-defined]
    yield make
    if sync_store is not None:
        sync_store.close()
    if async_store is not None:
        loop.run_until_complete(async_store.close())
    loop.close()


@pytest.fixture(scope="session")
def postgres_base_url() -> Iterator[str]:
    """A real PostgreSQL server: ``AUTHGATE_TEST_POSTGRES_URL`` if set, else a private one
    started once per session (per worker under xdist).  Tests work in databases of their
    own (`authgate.testing.scratch_database`), never in the one the URL names."""
    from authgate.testing import env_postgres_url, postgres_server

    url = env_postgres_url()
    if url:
        yield url
        return
    with postgres_server() as started:
        yield started


@pytest.fixture(scope="session")
def mysql_base_url() -> Iterator[str]:
    """A real MySQL or MariaDB server: ``AUTHGATE_TEST_MYSQL_URL`` if set, else a private
    MariaDB started once per session (per worker under xdist).  Tests work in databases
    of their own (`authgate.testing.scratch_database`)."""
    from authgate.testing import env_mysql_url, mariadb_server

    url = env_mysql_url()
    if url:
        yield url
        return
    with mariadb_server() as started:
        yield started
