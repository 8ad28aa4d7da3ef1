"""The private PostgreSQL and MariaDB servers of `authgate.testing`, really started:
SQL and transactions on them, scratch databases made and dropped, nothing left behind."""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path

import pytest
import sqlalchemy as sa

from authgate import testing
from authgate.stores.sql.faces import parse_sql_url
from authgate.testing import mariadb_server, postgres_server, scratch_database

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
