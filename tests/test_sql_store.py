"""What only the SQL store has: migrations, URL parameters, its databases' own
primitives under concurrency, and the session cache's feeds (LISTEN/NOTIFY on
PostgreSQL, the polled change log on MySQL/MariaDB).  The behaviour every store shares
is pinned by ``test_store_contract.py``, which runs on both databases too."""

from __future__ import annotations

import asyncio
import multiprocessing
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from _workers import open_and_close
from authgate.cli import main as cli
from authgate.errors import ConfigError, SessionRevoked, StoreError, StoreUnavailable
from authgate.gate import Gate
from authgate.stores import open_async_store, open_store
from authgate.stores.sql import SQLStore, migrate, parse_sql_url
from authgate.stores.sql.faces import migration_engine
from authgate.stores.sql.feed import DEAF_AFTER
from authgate.testing import cheap_hasher
from authgate.users import Session, User, utcnow
from conftest import SECRET

PW = "correct horse battery"


@pytest.fixture(params=["postgres", "mariadb"])
def sql_url(request: pytest.FixtureRequest, make_store_url: Callable[[str], str]) -> str:
    """A fresh table prefix in a private database, on each SQL backend."""
    return make_store_url(request.param)


@pytest.fixture
def engine(sql_url: str) -> Iterator[sa.Engine]:
    """A plain engine on the store's database, for looking under the store."""
    made = migration_engine(parse_sql_url(sql_url))
    yield made
    made.dispose()


def _session(username: str, seconds: float = 600) -> Session:
    return Session(
        id=uuid.uuid4().hex, username=username, expires_at=utcnow() + timedelta(seconds=seconds)
    )


def _cli(url: str, *args: str) -> str:
    result = CliRunner().invoke(cli, ["--store", url, *args])
    assert result.exit_code == 0, result.output
    return result.output


# -- migrations -------------------------------------------------------------------------


def test_first_revision_upgrades_to_head_with_its_data_in_place(
    sql_url: str, engine: sa.Engine
) -> None:
    settings = parse_sql_url(sql_url)
    migrate.upgrade(engine, "0001", settings.prefix)
    assert "0001 (behind" in _cli(sql_url, "db", "current")
    users = sa.table(
        f"{settings.prefix}users",
        *(sa.column(name) for name in ("id", "username", "version", "enabled", "roles")),
        *(sa.column(name) for name in ("groups", "permissions", "email", "first_name")),
        *(sa.column(name) for name in ("last_name", "display_name", "created_at")),
        *(sa.column(name) for name in ("updated_at", "password_hash", "scram_credentials")),
    )
    now = utcnow().replace(tzinfo=None)
    with engine.begin() as conn:
        conn.execute(
            users.insert().values(
                id="u1", username="olduser", version=3, enabled=True, roles='["operator"]',
                groups="[]", permissions='["items:read"]', email="o@example.com",
                first_name="", last_name="", display_name="Old", created_at=now,
                updated_at=now, password_hash="", scram_credentials="",
            )
        )  # fmt: skip
    assert f"upgraded authgate's tables from 0001 to {migrate.head()}" in _cli(
        sql_url, "db", "upgrade"
    )
    assert _cli(sql_url, "db", "current").strip() == f"{migrate.head()} (head)"
    store = open_store(sql_url)
    user = store.get_user("olduser")
    assert user is not None
    assert (set(user.roles), set(user.permissions), user.version) == (
        {"operator"},
        {"items:read"},
        3,
    )
    assert user.email_verified is False  # 0004's column, filled for the rows before it
    session = store.create_session(_session("olduser"))
    assert store.revoke_session(session.id)  # announced through the new change log
    assert "nothing to do" in _cli(sql_url, "db", "upgrade")
    store.close()


def test_tables_at_head_are_the_tables_the_store_uses(sql_url: str, engine: sa.Engine) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    store: Any = open_store(sql_url)
    prefix = store.settings.prefix
    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn,
            opts={
                "include_name": lambda name, kind, _: (
                    kind != "table"
                    or (name.startswith(prefix) and name != f"{prefix}alembic_version")
                ),
                "compare_type": True,
            },
        )
        differences = compare_metadata(context, store.tables.metadata)
    store.close()
    assert differences == []


def test_tables_from_a_newer_authgate_are_refused(sql_url: str, engine: sa.Engine) -> None:
    open_store(sql_url).close()
    prefix = parse_sql_url(sql_url).prefix
    with engine.begin() as conn:
        version = sa.table(f"{prefix}alembic_version", sa.column("version_num"))
        conn.execute(version.update().values(version_num="9999"))
    with pytest.raises(ConfigError, match="revision '9999'.*upgrade authgate"):
        open_store(sql_url)


def test_without_migrate_a_store_on_missing_tables_says_to_run_the_upgrade(sql_url: str) -> None:
    store = open_store(sql_url + "&migrate=false")
    with pytest.raises(StoreError, match="authgate db upgrade"):
        store.get_user("alice")
    store.close()


def test_four_processes_opening_a_fresh_store_at_once_all_start(
    sql_url: str, engine: sa.Engine
) -> None:
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(4, mp_context=ctx) as pool:
        outcomes = list(pool.map(open_and_close, [sql_url] * 4))
    assert outcomes == ["ok"] * 4
    assert migrate.current(engine, parse_sql_url(sql_url).prefix) == migrate.head()


def test_prefixes_keep_two_stores_apart_in_one_database(sql_url: str) -> None:
    base = sql_url.split("?")[0]
    one = open_store(f"{base}?prefix=one_{uuid.uuid4().hex[:6]}_")
    two = open_store(f"{base}?prefix=two_{uuid.uuid4().hex[:6]}_")
    one.create_user(User.new("alice"))
    assert two.get_user("alice") is None
    two.create_user(User.new("alice"))  # no clash
    one.close()
    two.close()


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("prefix=bad-name", "prefix must be at most 32 letters"),
        ("prefix=x%27%3B", "prefix must be"),
        ("schema=a.b", "schema must be"),
        ("cache_ttl=nan", "cache_ttl must be a number"),
        ("timeout=0", "timeout must be a number"),
        ("migrate=perhaps", "migrate must be true or false"),
        ("pool_size=-2", "pool_size must be a whole number"),
    ],
)
def test_bad_parameters_in_a_sql_url_are_config_errors(query: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        open_store(f"postgresql://u@127.0.0.1:1/db?{query}")


def test_an_unknown_driver_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="unsupported"):
        open_store("postgresql+pg8000://u@127.0.0.1/db")


@pytest.mark.parametrize("scheme", ["postgresql", "mysql"])
def test_unreachable_database_is_unavailable_and_never_shows_the_password(scheme: str) -> None:
    with pytest.raises(StoreUnavailable) as caught:
        open_store(f"{scheme}://someone:s3cret-pw@127.0.0.1:1/db")
    assert "127.0.0.1:1" in caught.value.reason
    assert "s3cret" not in caught.value.reason
    assert "s3cret" not in caught.value.detail


# -- the database's own primitives under concurrency ----------------------------------


def test_a_refresh_token_is_spent_once_by_many_threads(sql_url: str) -> None:
    store = open_store(sql_url)
    session = store.create_session(
        Session(
            id=uuid.uuid4().hex,
            username="alice",
            expires_at=utcnow() + timedelta(hours=1),
            refresh_hash="old",
        )
    )
    barrier = threading.Barrier(16)
    wins: list[bool] = []

    def spend(n: int) -> None:
        barrier.wait()
        wins.append(
            store.rotate_refresh(session.id, "old", f"new{n}", utcnow() + timedelta(hours=1))
        )

    threads = [threading.Thread(target=spend, args=(n,)) for n in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(wins) == [False] * 15 + [True]
    stored = store.get_session(session.id)
    assert stored is not None
    assert stored.refresh_hash.startswith("new")
    store.close()


def test_concurrent_user_updates_at_one_version_let_one_win(sql_url: str) -> None:
    from authgate.errors import VersionConflict

    async def race() -> list[str]:
        store = open_async_store(sql_url)
        user = await store.create_user(User.new("carol"))

        async def change(n: int) -> str:
            try:
                await store.update_user(user.changed(email=f"{n}@example.com"), user.version)
            except VersionConflict:
                return "conflict"
            return "won"

        outcomes = await asyncio.gather(*(change(n) for n in range(12)))
        stored = await store.get_user("carol")
        await store.close()
        assert stored is not None
        assert stored.version == user.version + 1
        return sorted(outcomes)

    assert asyncio.run(race()) == ["conflict"] * 11 + ["won"]


# -- the session cache's feed ---------------------------------------------------------


def _cached(gate: Gate, token: str, sid: str) -> bool:
    """Check `token` (which caches the answer once the feed is heard); is it cached?"""
    gate.authenticate(token)
    cache = getattr(gate.store, "_cache", None)
    return cache is not None and cache.get(sid, "alice") is not None


def _signed_in(url: str) -> tuple[Gate, str, str]:
    gate = Gate(store=url, hasher=cheap_hasher(), secret_key=SECRET)
    gate.create_user("alice", PW)
    token = gate.login("alice", PW).access_token
    identity = gate.authenticate(token)
    assert identity.session_id is not None
    return gate, token, identity.session_id


def _wait_for(condition: Callable[[], bool], seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "the condition never held"
        time.sleep(0.005)


def _revoked(gate: Gate, token: str) -> bool:
    try:
        gate.authenticate(token)
    except SessionRevoked:
        return True
    return False


def test_the_cache_answers_while_its_feed_is_heard(sql_url: str, engine: sa.Engine) -> None:
    """A row deleted behind the store's back (no announcement) is not seen while the
    feed is heard: the check is answered from the cache, not the database."""
    gate, token, sid = _signed_in(sql_url)
    store: Any = gate.store
    _wait_for(lambda: _cached(gate, token, sid))
    with engine.begin() as conn:
        conn.execute(sa.delete(store.tables.sessions).where(store.tables.sessions.c.id == sid))
    assert gate.authenticate(token).username == "alice"  # cached: nobody announced it
    gate.close()


def test_a_stopped_feed_turns_the_cache_off(sql_url: str, engine: sa.Engine) -> None:
    gate, token, sid = _signed_in(sql_url)
    store: Any = gate.store
    _wait_for(lambda: _cached(gate, token, sid))
    store._feed.stop()
    store._feed.join(5)
    with engine.begin() as conn:
        conn.execute(sa.delete(store.tables.sessions).where(store.tables.sessions.c.id == sid))
    # Deaf after DEAF_AFTER seconds at most: every check then reads the database.
    _wait_for(lambda: _revoked(gate, token), DEAF_AFTER + 3)
    gate.close()


def test_a_killed_listener_connection_turns_the_cache_off_then_it_recovers(
    make_store_url: Callable[[str], str],
) -> None:
    url = make_store_url("postgres")
    gate, token, sid = _signed_in(url)
    store: Any = gate.store
    _wait_for(lambda: _cached(gate, token, sid))
    feed = store._feed
    admin = migration_engine(parse_sql_url(url))
    with admin.begin() as conn:
        killed = conn.execute(
            sa.text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = 'authgate-feed' AND datname = current_database() "
                "AND pid <> pg_backend_pid()"
            )
        ).all()
    assert killed
    _wait_for(lambda: not store._cache.enabled or store._cache.get(sid, "alice") is None)
    with admin.begin() as conn:  # behind the store's back: seen only by reading
        conn.execute(sa.delete(store.tables.sessions).where(store.tables.sessions.c.id == sid))
    _wait_for(lambda: _revoked(gate, token))
    # The feed reconnects by itself, and the cache answers again.
    _wait_for(lambda: store._cache.enabled, 10)
    token2 = gate.login("alice", PW).access_token
    sid2 = gate.authenticate(token2).session_id
    _wait_for(lambda: _cached(gate, token2, sid2))
    assert feed.is_alive()
    admin.dispose()
    gate.close()


def test_a_revocation_in_another_process_reaches_the_cache(sql_url: str) -> None:
    from _workers import revoke_user_sessions

    gate, token, _ = _signed_in(sql_url)
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(1, mp_context=ctx) as pool:
        assert pool.submit(revoke_user_sessions, sql_url, "alice").result() == 1
    _wait_for(lambda: _revoked(gate, token), 2.0)
    gate.close()


def test_sql_store_is_one_of_the_protocol_faces(sql_url: str) -> None:
    from authgate.stores import AsyncStore, Store

    sync = open_store(sql_url)
    assert isinstance(sync, SQLStore)
    assert isinstance(sync, Store)
    sync.close()
    made = open_async_store(sql_url)
    assert isinstance(made, AsyncStore)
    asyncio.run(made.close())


# -- outages, partitions, forks ---------------------------------------------------------


def _through_proxy(url: str, marker: bytes) -> tuple[str, Any]:
    from test_session_cache import SilencingProxy

    parsed = sa.make_url(url)
    proxy = SilencingProxy((parsed.host or "127.0.0.1", parsed.port or 5432), marker)
    return parsed.set(port=proxy.port).render_as_string(hide_password=False), proxy


def test_a_database_outage_is_503_with_retry_after_and_service_comes_back(
    sql_url: str,
) -> None:
    """Every connection to the database cut under a WSGI app: each request is a 503
    with ``Retry-After`` (never a 500, never a hang past the timeout) whose detail names
    no host or port, and service is back within two seconds of the database."""
    import webtest

    from authgate.middleware.wsgi import AuthGateWSGIApi, AuthGateWSGIMiddleware

    proxied, proxy = _through_proxy(sql_url, b"LISTEN")
    gate = Gate(store=proxied + "&timeout=3", hasher=cheap_hasher(), secret_key=SECRET)
    gate.create_user("alice", PW)

    def hello(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"hello"]

    app = webtest.TestApp(AuthGateWSGIMiddleware(AuthGateWSGIApi(hello, gate), gate))
    login = {"username": "alice", "password": PW}
    token = app.post_json("/auth/login", login).json["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    assert app.get("/auth/me", headers=headers).status_int == 200
    proxy.cut()
    try:
        for _ in range(5):
            started = time.monotonic()
            reply = app.post_json("/auth/login", login, expect_errors=True)
            assert reply.status_int == 503, reply.text
            assert reply.headers["Retry-After"] == "1"
            assert str(proxy.target[1]) not in reply.text and "127.0.0.1" not in reply.text
            assert time.monotonic() - started < 4
    finally:
        proxy.restore()
    back = time.monotonic()
    while True:
        reply = app.post_json("/auth/login", login, expect_errors=True)
        if reply.status_int == 200:
            break
        assert reply.status_int == 503, reply.text
        assert time.monotonic() - back < 2.0, "service did not come back with the database"
        time.sleep(0.05)
    assert app.get("/auth/me", headers=headers).status_int == 200
    gate.close()
    proxy.close()


def test_a_silent_listener_turns_the_cache_off_within_deaf_after(
    make_store_url: Callable[[str], str],
) -> None:
    """The LISTEN connection goes quiet without an error (a partition): the NOTIFY of a
    revocation never arrives, the heartbeat notices, and the revoked session is
    refused within seconds, not at the cache entry's 60 s expiry."""
    from authgate.stores.sql.feed import HEARTBEAT

    direct = make_store_url("postgres")
    proxied, proxy = _through_proxy(direct, b"LISTEN")
    here = Gate(store=proxied, hasher=cheap_hasher(), secret_key=SECRET)
    there = Gate(store=direct, hasher=cheap_hasher(), secret_key=SECRET)
    try:
        there.create_user("alice", PW)
        token = there.login("alice", PW).access_token
        sid = here.authenticate(token).session_id
        assert sid is not None
        _wait_for(lambda: _cached(here, token, sid))
        assert proxy.silence_subscribers() == 1
        there.revoke_sessions("alice")  # notified, but never delivered here
        revoked = time.monotonic()
        _wait_for(lambda: _revoked(here, token), 10)
        assert time.monotonic() - revoked < DEAF_AFTER + HEARTBEAT + 1.0
    finally:
        here.close()
        there.close()
        proxy.close()


def test_a_forked_worker_follows_the_feed_for_itself(sql_url: str) -> None:
    """A store opened before the fork (gunicorn --preload): the child gets fresh
    connections and a feed of its own, and hears a revocation made elsewhere."""
    from test_session_cache import assert_a_forked_child_hears_revocations

    assert_a_forked_child_hears_revocations(
        SQLStore(sql_url), lambda: SQLStore(sql_url), DEAF_AFTER
    )


def test_a_postgresql_schema_holds_the_tables(make_store_url: Callable[[str], str]) -> None:
    base = make_store_url("postgres").split("?")[0]
    schema = f"s_{uuid.uuid4().hex[:8]}"
    store = open_store(f"{base}?schema={schema}")
    store.create_user(User.new("alice"))
    engine = migration_engine(parse_sql_url(base))
    with engine.connect() as conn:
        names = sa.inspect(conn).get_table_names(schema=schema)
    engine.dispose()
    assert {"users", "sessions", "counters", "alembic_version"} <= set(names)
    assert open_store(base).get_user("alice") is None  # not in the default schema
    store.close()


# aiomysql's connections can only be closed through their own loop: a MySQL store's
# async face serves one event loop.
@pytest.mark.parametrize("backend", ["postgres", "asyncpg"])
def test_an_async_store_serves_one_event_loop_after_another(
    backend: str, make_store_url: Callable[[str], str]
) -> None:
    """``asyncio.run`` twice, or a test client's loop after the app's: connections
    opened on a loop that is gone are left behind, and the store carries on."""
    store = open_async_store(make_store_url(backend))

    async def round_trip(name: str) -> bool:
        await store.create_user(User.new(name))
        return await store.get_user(name) is not None

    assert asyncio.run(round_trip("first")) is True
    assert asyncio.run(round_trip("second")) is True
    asyncio.run(store.close())


@pytest.mark.parametrize("backend", ["postgres", "asyncpg"])
def test_a_read_on_a_connection_the_database_dropped_is_tried_again(
    backend: str, make_store_url: Callable[[str], str]
) -> None:
    """The pool's connections ended by the server (a restart, an idle timeout): a read
    finds its connection dead, and is tried once more on a fresh one, unnoticed."""
    url = make_store_url(backend) + "&cache_ttl=0"
    admin = migration_engine(parse_sql_url(url))

    def end_the_pools_connections() -> int:
        with admin.begin() as conn:
            ended = conn.execute(
                sa.text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid() "
                    "AND application_name <> 'authgate-feed'"
                )
            ).scalar_one()
        return int(ended)

    async def reads() -> None:
        store = open_async_store(url)
        await store.create_user(User.new("alice"))
        assert end_the_pools_connections() >= 1
        assert await store.get_user("alice") is not None
        await store.close()

    if backend == "asyncpg":
        asyncio.run(reads())
    else:
        store = open_store(url)
        store.create_user(User.new("alice"))
        assert end_the_pools_connections() >= 1
        assert store.get_user("alice") is not None
        store.close()
    admin.dispose()
