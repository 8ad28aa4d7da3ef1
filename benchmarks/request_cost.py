"""Per-request cost of authgate's middleware next to the bare apps and the peers, at
production shape: populations of 1,000, 10,000 and 100,000 users (`population.py`: a
Zipf mix of hot and cold users, each with a token of their own, refreshed as it
expires), on the memory, SQLite, Redis and PostgreSQL stores, next to Starlette's
AuthenticationMiddleware + pyjwt and Flask-JWT-Extended, each with and without the
Redis blocklist their docs recommend.

Run: ``pip install -e '.[all,dev,bench]' && python benchmarks/request_cost.py``
(starts a private redis-server, and a PostgreSQL unless AUTHGATE_TEST_POSTGRES_URL
names one: `databases.py`).  Everything runs in this process, no network: each
ASGI request is one call of the app with a ready scope; each WSGI request one call of
the app with a ready environ, its body consumed.  Every row has its own gate (its own
caches) and replays its population's requests in order: each round replays the
`WARM` requests before its slice unmeasured (the steady state), then measures the next
`SLICE`.  Reported: min / median / max µs per request over the rounds, the median as a
ratio to the bare app, and, for authgate, to the same row with one hot token.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import io
import logging
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import casbin
import flask
import jwt
import redis
import redis.asyncio
import starlette
import timing
from databases import sql_databases
from flask_jwt_extended import create_access_token
from http_apps import (
    JWTBackend,
    flask_jwt_app,
    guarded,
    hello,
    peer_hello,
    scale_time,
)
from population import (
    MINT_TTL,
    PW,
    Population,
    authgate_tokens,
    command,
    time_scale,
)
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.routing import Route

from authgate import AsyncGate, Gate, RolePolicy
from authgate.decorators import require_auth
from authgate.middleware.asgi import AuthGateMiddleware
from authgate.middleware.wsgi import AuthGateWSGIMiddleware
from authgate.permissions import PermissionSet
from authgate.stores import SyncStoreAsAsync
from authgate.testing import cheap_hasher, redis_server

SECRET = "benchmark-secret-key-that-is-long-enough-000"
ROUNDS = 3
WARM = 20_000
SLICE = 10_000
SIZES = (1_000, 10_000, 100_000)

Samples = timing.Samples
measure = timing.measure


@dataclass
class Row:
    """One measured configuration: a caller of one request, and the credentials its
    requests carry in order (None: no credential; one: a hot token)."""

    name: str
    population: str
    call: Any  # the ASGI or WSGI app
    credentials: list[Any]
    gate: Any = None
    samples: Samples = field(default_factory=list)


def run_rows(rows: list[Row], runner: Callable[[Row, list[Any]], float]) -> None:
    """ROUNDS interleaved rounds.  Round j of a population row replays its requests
    [j * SLICE, j * SLICE + WARM) unmeasured (the steady state), scales the clocks of
    its session state to the model at the pace it just ran, then measures the next
    SLICE requests, none of which it has sent before."""
    for row in rows:
        row.samples.clear()
    for j in range(ROUNDS):
        for row in rows:
            if len(row.credentials) == 1:
                runner(row, row.credentials * 2_000)
                row.samples.append(runner(row, row.credentials * SLICE))
                continue
            start = j * SLICE
            warm = row.credentials[start : start + WARM]
            measured = row.credentials[start + WARM : start + WARM + SLICE]
            if len(measured) < SLICE:
                raise RuntimeError(f"{row.name}: the population ran out of requests")
            rate = 1e6 / runner(row, warm)
            if row.gate is not None:
                scale_time(row.gate, time_scale(rate))
            row.samples.append(runner(row, measured))


# -- ASGI -------------------------------------------------------------------------------


def asgi_scope(credential: str | None) -> dict[str, Any]:
    headers = [(b"host", b"test")]
    if credential:
        headers.append((b"authorization", f"Bearer {credential}".encode()))
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/",
        "raw_path": b"/",
        "root_path": "",
        "query_string": b"",
        "headers": headers,
        "server": ("test", 80),
        "client": ("127.0.0.1", 5000),
    }


def asgi_runner(loop: asyncio.AbstractEventLoop) -> Callable[[Row, list[Any]], float]:
    status: list[int] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        if message["type"] == "http.response.start":
            status.append(message["status"])

    async def batch(app: Any, headers: list[Any]) -> float:
        scope = asgi_scope(None)
        start = time.perf_counter()
        for header in headers:
            await app({**scope, "headers": header}, receive, send)
        elapsed = time.perf_counter() - start
        if status.count(200) != len(status):
            raise RuntimeError(f"unexpected statuses {set(status)}")
        status.clear()
        return elapsed / len(headers) * 1e6

    def run(row: Row, requests: list[Any]) -> float:
        return loop.run_until_complete(batch(row.call, requests))

    return run


def asgi_headers(tokens: Iterable[str | None]) -> list[Any]:
    return [asgi_scope(token)["headers"] for token in tokens]


def peer_token(user: int, epoch: int) -> str:
    now = int(time.time())
    claims: dict[str, Any] = {"sub": f"user{user:06d}", "iss": "authgate", "aud": "authgate"}
    claims |= {"iat": now, "exp": now + MINT_TTL, "jti": uuid.uuid4().hex}
    return jwt.encode(claims, SECRET, algorithm="HS256")


def bench_asgi(urls: dict[str, str], populations: list[Population], redis_url: str) -> list[Row]:
    loop = asyncio.new_event_loop()
    rows: list[Row] = [
        Row(
            f"bare Starlette {starlette.__version__}",
            "-",
            Starlette(routes=[Route("/", hello)]),
            asgi_headers([None]),
        )
    ]
    blocklist = redis.asyncio.Redis.from_url(redis_url)
    peers = [
        ("Starlette AuthenticationMiddleware + pyjwt", JWTBackend()),
        (
            "Starlette AuthenticationMiddleware + pyjwt + Redis blocklist",
            JWTBackend(blocklist),
        ),
    ]
    for population in populations:
        tokens = asgi_headers(population.tokens(peer_token))
        for name, backend in peers:
            app = Starlette(
                routes=[Route("/", peer_hello)],
                middleware=[Middleware(AuthenticationMiddleware, backend=backend)],
            )
            rows.append(Row(name, population.label, app, tokens))
    guarded_app = Starlette(routes=[Route("/", guarded)])
    closers: list[Any] = []
    for label, url, stateless in [
        ("stateless", "memory://", True),
        *[(f"session check, {k}", v, False) for k, v in urls.items()],
    ]:
        minting = Gate(store=url, secret_key=SECRET, hasher=cheap_hasher(), access_ttl=MINT_TTL)
        closers.append(minting)
        shape: list[tuple[str, list[Any]]] = [
            ("one hot token", asgi_headers(authgate_tokens(minting, Population(1, 1))))
        ]
        shape += [(p.label, asgi_headers(_minted(minting, url, p))) for p in populations]
        for population_label, headers in shape:
            store: Any = (
                SyncStoreAsAsync(minting.store, offload=False) if url == "memory://" else url
            )
            gate = AsyncGate(
                store=store, secret_key=SECRET, hasher=cheap_hasher(), stateless=stateless
            )
            closers.append(gate)
            served = AuthGateMiddleware(guarded_app, gate)
            rows.append(
                Row(f"authgate + require_auth, {label}", population_label, served, headers, gate)
            )
    run_rows(rows, asgi_runner(loop))
    for closer in closers:
        result = closer.close()
        if asyncio.iscoroutine(result):
            loop.run_until_complete(result)
    loop.run_until_complete(blocklist.aclose())
    loop.close()
    return rows


_minted_tokens: dict[tuple[str, int], list[str]] = {}


def _minted(gate: Gate, url: str, population: Population) -> list[str]:
    """A population's authgate tokens, minted once per store (the ASGI and WSGI rows
    of a persistent store share them)."""
    key = (url, population.size)
    if key not in _minted_tokens or url == "memory://":  # every memory store is new
        _minted_tokens[key] = authgate_tokens(gate, population)
    return _minted_tokens[key]


# -- WSGI -------------------------------------------------------------------------------


def wsgi_runner() -> Callable[[Row, list[Any]], float]:
    environ_base = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/",
        "SCRIPT_NAME": "",
        "QUERY_STRING": "",
        "SERVER_NAME": "test",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_HOST": "test",
        "wsgi.url_scheme": "http",
        "wsgi.errors": None,
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
        "wsgi.version": (1, 0),
    }
    status: list[str] = []

    def start_response(s: str, headers: Any, exc: Any = None) -> Any:
        status.append(s)
        return None

    def run(row: Row, requests: list[Any]) -> float:
        app = row.call
        start = time.perf_counter()
        for extra in requests:
            environ = {**environ_base, **extra, "wsgi.input": io.BytesIO(b"")}
            body: Any = app(environ, start_response)
            for _ in body:
                pass
            close = getattr(body, "close", None)
            if close:
                close()
        elapsed = time.perf_counter() - start
        if status.count("200 OK") != len(status):
            raise RuntimeError(f"{row.name}: unexpected statuses {set(status)}")
        status.clear()
        return elapsed / len(requests) * 1e6

    return run


def wsgi_environs(tokens: Iterable[str | None]) -> list[dict[str, str]]:
    return [{"HTTP_AUTHORIZATION": f"Bearer {t}"} if t else {} for t in tokens]


def bench_wsgi(urls: dict[str, str], populations: list[Population], redis_url: str) -> list[Row]:
    bare = flask.Flask("bare")
    bare.add_url_rule("/", "hello", lambda: "hello")
    rows = [Row(f"bare Flask {importlib.metadata.version('flask')}", "-", bare, [{}])]
    blocklist = redis.Redis.from_url(redis_url)
    peers = [
        ("Flask-JWT-Extended jwt_required", flask_jwt_app(None)),
        ("Flask-JWT-Extended jwt_required + Redis blocklist", flask_jwt_app(blocklist)),
    ]
    for population in populations:
        with peers[0][1].app_context():
            tokens = wsgi_environs(
                population.tokens(lambda user, epoch: create_access_token(f"user{user:06d}"))
            )
        for name, peer in peers:
            rows.append(Row(name, population.label, peer, tokens))

    app = flask.Flask("authgate")

    @app.get("/")
    @require_auth
    def guarded_hello() -> str:
        return "hello"

    closers: list[Gate] = []
    for label, url, stateless in [
        ("stateless", "memory://", True),
        *[(f"session check, {k}", v, False) for k, v in urls.items()],
    ]:
        minting = Gate(store=url, secret_key=SECRET, hasher=cheap_hasher(), access_ttl=MINT_TTL)
        closers.append(minting)
        shape: list[tuple[str, list[Any]]] = [
            ("one hot token", wsgi_environs(authgate_tokens(minting, Population(1, 1))))
        ]
        shape += [(p.label, wsgi_environs(_minted(minting, url, p))) for p in populations]
        for population_label, environs in shape:
            gate = Gate(
                store=minting.store if url == "memory://" else url,
                secret_key=SECRET,
                hasher=cheap_hasher(),
                stateless=stateless,
            )
            closers.append(gate)
            served = AuthGateWSGIMiddleware(app, gate)
            rows.append(
                Row(f"authgate + require_auth, {label}", population_label, served, environs, gate)
            )
    run_rows(rows, wsgi_runner())
    for gate in closers:
        gate.close()
    blocklist.close()
    return rows


def table(title: str, rows: list[Row]) -> str:
    """A markdown table: µs per request, ratio to the bare app and to one hot token."""
    base = statistics.median(rows[0].samples)
    hot = {
        row.name: statistics.median(row.samples)
        for row in rows
        if row.population == "one hot token"
    }
    lines = [
        f"| {title} | population | min µs | median µs | max µs | vs bare | vs one hot token |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        med = statistics.median(row.samples)
        versus_hot = f"{med / hot[row.name]:.2f}x" if row.name in hot else ""
        lines.append(
            f"| {row.name} | {row.population} | {min(row.samples):.1f} | {med:.1f} | "
            f"{max(row.samples):.1f} | {med / base:.2f}x | {versus_hot} |"
        )
    return "\n".join(lines)


def bench_event_loop(seconds: float = 5.0) -> str:
    """Latency of a cheap authenticated GET while 4 logins hash at all times (real
    argon2 parameters), for `seconds`."""
    loop = asyncio.new_event_loop()
    gate = AsyncGate(store="memory://", secret_key=SECRET)  # RFC 9106 argon2 parameters
    loop.run_until_complete(gate.create_user("alice", PW))
    token = loop.run_until_complete(gate.login("alice", PW)).access_token
    app = AuthGateMiddleware(Starlette(routes=[Route("/", guarded)]), gate)
    scope = asgi_scope(token)

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        pass

    async def keep_logging_in(until: float) -> int:
        done = 0
        while time.monotonic() < until:
            await gate.login("alice", PW)
            done += 1
        return done

    async def run() -> tuple[list[float], int]:
        latencies: list[float] = []
        until = time.monotonic() + seconds
        logins = [asyncio.create_task(keep_logging_in(until)) for _ in range(4)]
        while time.monotonic() < until:
            start = time.perf_counter()
            await app(dict(scope), receive, send)
            latencies.append((time.perf_counter() - start) * 1000)
            await asyncio.sleep(0.001)
        return latencies, sum(await asyncio.gather(*logins))

    latencies, logins = loop.run_until_complete(run())
    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    loop.run_until_complete(gate.close())
    loop.close()
    return (
        f"A cheap authenticated GET on the ASGI app while 4 logins at a time hash with the "
        f"default argon2 parameters (t=3, m=64 MiB, p=4; {logins} logins in {seconds:g} s): "
        f"{len(latencies):,} GETs, p50 {statistics.median(latencies):.2f} ms, p99 "
        f"{p99:.2f} ms, max {latencies[-1]:.2f} ms."
    )


# -- permission decisions ---------------------------------------------------------------

CASBIN_MODEL = """
[request_definition]
r = sub, obj, act
[policy_definition]
p = sub, obj, act
[role_definition]
g = _, _
[policy_effect]
e = some(where (p.eft == allow))
[matchers]
m = g(r.sub, p.sub) && keyMatch2(r.obj, p.obj) && (r.act == p.act || p.act == "*")
"""

CASBIN_POLICY = """
p, viewer, items/*, read
p, operator, items/*, create
p, operator, streams/1/*, send
p, admin, *, *
g, operator, viewer
g, admin, operator
g, alice, operator
"""


def bench_permissions() -> str:
    with tempfile.TemporaryDirectory() as tmp:
        model = Path(tmp) / "model.conf"
        policy_file = Path(tmp) / "policy.csv"
        model.write_text(CASBIN_MODEL)
        policy_file.write_text(CASBIN_POLICY.strip() + "\n")
        enforcer = casbin.Enforcer(str(model), str(policy_file))
    policy = RolePolicy(
        {"viewer": ["items:read"], "operator": ["items:create", "streams/1:send"], "admin": ["*:*"]}
    )
    grants: PermissionSet = policy.permissions_for(frozenset({"operator"}))
    questions = [
        ("items/5", "read", True),
        ("items/5", "create", True),
        ("streams/1/topics/7", "send", True),
        ("streams/2/topics/7", "send", False),
        ("users/3", "delete", False),
    ]
    for obj, act, expected in questions:
        assert enforcer.enforce("alice", obj, act) is expected, (obj, act)
        assert grants.allows(f"{obj}:{act}") is expected, (obj, act)
    perms = [f"{obj}:{act}" for obj, act, _ in questions]

    def casbin_round() -> None:
        for obj, act, _ in questions:
            enforcer.enforce("alice", obj, act)

    def authgate_round() -> None:
        for perm in perms:
            grants.allows(perm)

    def authgate_cold_round() -> None:
        fresh = PermissionSet(grants.grants)  # no memo: every decision computed
        for perm in perms:
            fresh.allows(perm)

    casbin_us = [s / len(questions) for s in measure(casbin_round, 300)]
    warm = [s / len(questions) for s in measure(authgate_round, 50000)]
    cold = [s / len(questions) for s in measure(authgate_cold_round, 5000)]
    lines = [
        "| permission decisions (same role policy) | per second | vs pycasbin |",
        "|---|---|---|",
    ]
    for name, samples in (
        ("pycasbin `enforce`", casbin_us),
        ("authgate `PermissionSet.allows` (per identity, memoised)", warm),
        ("authgate, first decision (set built per call)", cold),
    ):
        per_sec = 1e6 / statistics.median(samples)
        ratio = statistics.median(casbin_us) / statistics.median(samples)
        lines.append(f"| {name} | {per_sec:,.0f} | {ratio:.1f}x |")
    return "\n".join(lines)


def run(sizes: tuple[int, ...] = SIZES) -> str:
    """Every in-process measurement, as a markdown section."""
    logging.getLogger("authgate.audit").setLevel(logging.WARNING)
    populations = [Population(size, WARM + ROUNDS * SLICE) for size in sizes]
    with (
        tempfile.TemporaryDirectory() as tmp,
        redis_server() as redis_url,
        sql_databases(mariadb=False) as sql,
    ):
        urls = {
            "memory": "memory://",
            "SQLite": f"sqlite:///{Path(tmp) / 'bench.db'}",
            "Redis": f"{redis_url}?prefix=bench",
            "PostgreSQL": sql["PostgreSQL"],
        }
        asgi = table("ASGI, in process", bench_asgi(urls, populations, redis_url))
        wsgi = table("WSGI, in process", bench_wsgi(urls, populations, redis_url))
    lines = [
        "### Cost of an authenticated request, in process",
        "",
        f"Populations (`benchmarks/population.py`, {ROUNDS} rounds of {SLICE:,} measured "
        f"requests per row, each after {WARM:,} replayed unmeasured):",
        "",
        *[f"- {p.describe()}" for p in populations],
        "",
        asgi,
        "",
        wsgi,
        "",
        bench_permissions(),
        "",
        bench_event_loop(),
        "",
        f"PyJWT {jwt.__version__}, Starlette {starlette.__version__}, "
        f"Flask {importlib.metadata.version('flask')}, "
        f"Flask-JWT-Extended {importlib.metadata.version('flask-jwt-extended')}, "
        f"casbin {importlib.metadata.version('casbin')}.",
    ]
    return "\n".join(lines)


def main() -> None:
    command(run, __doc__ or "", SIZES)


if __name__ == "__main__":
    main()
