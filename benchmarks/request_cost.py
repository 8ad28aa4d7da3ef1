"""Per-request cost of authgate's middleware next to the bare apps and the peers.

Run: ``pip install -e '.[all,dev,bench]' && python benchmarks/request_cost.py``
(starts a private redis-server).  Everything runs in this process, no network: each
ASGI request is one call of the app with a ready scope; each WSGI request one call of
the app with a ready environ, its body consumed.  Prints min / median / max µs per
request over repeats and the median as a ratio to the bare app, then permission
decisions per second next to pycasbin's ``enforce`` on the same role policy.

Each authgate row runs twice: with one hot token, and with `POPULATION` distinct live
tokens (`USERS` users, several sessions each) sent round-robin, each measured pass over
them all preceded by an unmeasured one: the steady state of a process whose tokens all
come back within the session cache's lifetime (``cache_ttl``, 60 s by default; a
token seen less often costs one store read per lifetime).
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import itertools
import logging
import statistics
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import casbin
import flask
import jwt
import starlette
from flask_jwt_extended import JWTManager, create_access_token, jwt_required
from http_apps import JWTBackend, guarded, hello, peer_hello
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
REPEATS = 7
PW = "correct horse battery"

Samples = list[float]

# The realistic population: this many users, each with several live sessions.
USERS = 1_000
POPULATION = 10_000
_minted: dict[str, list[str]] = {}


def live_tokens(gate: Gate, url: str) -> list[str]:
    """`POPULATION` distinct live access tokens over `USERS` users, minted by logging
    in (kept per store URL, so the ASGI and WSGI rows share one population)."""
    if url in _minted:
        return _minted[url]
    tokens: list[str] = []
    for i in range(USERS):
        name = f"user{i:04d}"
        if gate.store.get_user(name) is None:
            gate.create_user(name, PW)
        tokens.extend(gate.login(name, PW).access_token for _ in range(POPULATION // USERS))
    if url != "memory://":  # every memory store is a new one
        _minted[url] = tokens
    return tokens


def once(fn: Callable[[], object], number: int) -> float:
    """µs per call over one batch."""
    start = time.perf_counter()
    for _ in range(number):
        fn()
    return (time.perf_counter() - start) / number * 1e6


def once_async(loop: asyncio.AbstractEventLoop, fn: Callable[[], Any], number: int) -> float:
    """µs per awaited call over one batch."""

    async def batch() -> float:
        start = time.perf_counter()
        for _ in range(number):
            await fn()
        return (time.perf_counter() - start) / number * 1e6

    return loop.run_until_complete(batch())


def measure(fn: Callable[[], object], number: int) -> Samples:
    """µs per call, one figure per repeat."""
    fn()
    return [once(fn, number) for _ in range(REPEATS)]


def interleaved(cases: list[tuple[str, Callable[[], float]]]) -> dict[str, Samples]:
    """Run one batch of every case per round, so machine noise hits all of them alike."""
    samples: dict[str, Samples] = {name: [] for name, _ in cases}
    for _ in range(REPEATS):
        for name, batch in cases:
            samples[name].append(batch())
    return samples


def report(samples: dict[str, Samples]) -> None:
    names = list(samples)
    base = statistics.median(samples[names[0]])
    for name in names:
        values = samples[name]
        med = statistics.median(values)
        print(
            f"{name:<58} {min(values):8.1f} {med:8.1f} {max(values):8.1f} {med / base:6.2f}x",
            flush=True,
        )


def asgi_caller(app: Any, token: str | list[str] | None) -> Callable[[], Any]:
    """One request per call; a list of tokens is sent round-robin."""
    tokens = token if isinstance(token, list) else [token]
    rotation = itertools.cycle(
        [(b"host", b"test"), *([(b"authorization", f"Bearer {t}".encode())] if t else [])]
        for t in tokens
    )

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    status: list[int] = []

    async def send(message: Any) -> None:
        if message["type"] == "http.response.start":
            status.append(message["status"])

    async def call() -> None:
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": "/",
            "raw_path": b"/",
            "root_path": "",
            "query_string": b"",
            "headers": next(rotation),
            "server": ("test", 80),
            "client": ("127.0.0.1", 5000),
        }
        status.clear()
        await app(scope, receive, send)
        if status != [200]:
            raise RuntimeError(f"unexpected status {status}")

    return call


def bench_asgi(urls: dict[str, str]) -> dict[str, Samples]:
    loop = asyncio.new_event_loop()
    cases: list[tuple[str, Callable[[], float]]] = []

    def add(name: str, app: Any, token: str | list[str] | None, number: int) -> None:
        call = asgi_caller(app, token)
        passes = len(token) if isinstance(token, list) else 1

        def batch() -> float:
            once_async(loop, call, passes)  # each token seen just before: the steady state
            return once_async(loop, call, number)

        loop.run_until_complete(call())  # fail early on a wrong status
        cases.append((name, batch))

    add(
        f"ASGI bare Starlette {starlette.__version__}",
        Starlette(routes=[Route("/", hello)]),
        None,
        3000,
    )
    peer_app = Starlette(
        routes=[Route("/", peer_hello)],
        middleware=[Middleware(AuthenticationMiddleware, backend=JWTBackend())],
    )
    peer_token = jwt.encode(
        {"sub": "alice", "iss": "authgate", "aud": "authgate", "exp": int(time.time()) + 3600},
        SECRET,
        algorithm="HS256",
    )
    add("ASGI Starlette AuthenticationMiddleware + pyjwt + requires", peer_app, peer_token, 1000)

    guarded_app = Starlette(routes=[Route("/", guarded)])
    closers: list[Any] = []
    for label, url, stateless in [
        ("stateless", "memory://", True),
        *[(f"session check, {k}", v, False) for k, v in urls.items()],
    ]:
        sync = Gate(store=url, secret_key=SECRET, hasher=cheap_hasher())
        if sync.store.get_user("alice") is None:
            sync.create_user("alice", PW)
        token = sync.login("alice", PW).access_token
        tokens = live_tokens(sync, url)
        store: Any = SyncStoreAsAsync(sync.store, offload=False) if url == "memory://" else url
        gate = AsyncGate(store=store, secret_key=SECRET, hasher=cheap_hasher(), stateless=stateless)
        app = AuthGateMiddleware(guarded_app, gate)
        add(f"ASGI authgate + require_auth, {label}, one token", app, token, 3000)
        add(
            f"ASGI authgate + require_auth, {label}, {POPULATION:,} tokens", app, tokens, POPULATION
        )
        closers.append((gate, sync))
    samples = interleaved(cases)
    for gate, sync in closers:
        loop.run_until_complete(gate.close())
        sync.close()
    loop.close()
    return samples


# -- WSGI -------------------------------------------------------------------------------


def wsgi_caller(app: Any, token: str | list[str] | None) -> Callable[[], None]:
    """One request per call; a list of tokens is sent round-robin."""
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
        "wsgi.input": None,
        "wsgi.errors": None,
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
        "wsgi.version": (1, 0),
    }
    tokens = token if isinstance(token, list) else [token]
    rotation = itertools.cycle({"HTTP_AUTHORIZATION": f"Bearer {t}"} if t else {} for t in tokens)
    status: list[str] = []

    def start_response(s: str, headers: Any, exc: Any = None) -> Any:
        status.append(s)
        return None

    def call() -> None:
        import io

        environ = dict(environ_base, **next(rotation), **{"wsgi.input": io.BytesIO(b"")})
        status.clear()
        body: Iterable[bytes] = app(environ, start_response)
        for _ in body:
            pass
        close = getattr(body, "close", None)
        if close:
            close()
        if status != ["200 OK"]:
            raise RuntimeError(f"unexpected status {status}")

    return call


def bench_wsgi(urls: dict[str, str]) -> dict[str, Samples]:
    cases: list[tuple[str, Callable[[], float]]] = []

    def add(name: str, app: Any, token: str | list[str] | None, number: int) -> None:
        call = wsgi_caller(app, token)
        passes = len(token) if isinstance(token, list) else 1

        def batch() -> float:
            once(call, passes)  # each token seen just before: the steady state
            return once(call, number)

        call()  # fail early on a wrong status
        cases.append((name, batch))

    bare = flask.Flask("bare")
    bare.add_url_rule("/", "hello", lambda: "hello")
    add(f"WSGI bare Flask {importlib.metadata.version('flask')}", bare, None, 1000)

    peer = flask.Flask("peer")
    peer.config["JWT_SECRET_KEY"] = SECRET
    JWTManager(peer)

    @peer.get("/")
    @jwt_required()  # type: ignore[untyped-decorator]
    def peer_hello() -> str:
        return "hello"

    with peer.app_context():
        peer_token = create_access_token(identity="alice")
    add("WSGI Flask-JWT-Extended jwt_required", peer, peer_token, 500)

    app = flask.Flask("authgate")

    @app.get("/")
    @require_auth
    def hello() -> str:
        return "hello"

    gates = []
    for label, url, stateless in [
        ("stateless", "memory://", True),
        *[(f"session check, {k}", v, False) for k, v in urls.items()],
    ]:
        gate = Gate(store=url, secret_key=SECRET, hasher=cheap_hasher(), stateless=stateless)
        if gate.store.get_user("alice") is None:
            gate.create_user("alice", PW)
        token = gate.login("alice", PW).access_token
        tokens = live_tokens(gate, url)
        guarded_wsgi = AuthGateWSGIMiddleware(app, gate)
        add(f"WSGI authgate + require_auth, {label}, one token", guarded_wsgi, token, 1000)
        add(
            f"WSGI authgate + require_auth, {label}, {POPULATION:,} tokens",
            guarded_wsgi,
            tokens,
            POPULATION,
        )
        gates.append(gate)
    samples = interleaved(cases)
    for gate in gates:
        gate.close()
    return samples


def bench_revocation(url: str, trials: int = 20) -> None:
    """How long a revocation made through another connection takes to reach a gate
    whose session check is cached (Redis: the pub/sub invalidation)."""
    from authgate.errors import SessionRevoked
    from authgate.stores import open_store

    gate = Gate(store=url, secret_key=SECRET, hasher=cheap_hasher())
    if gate.store.get_user("bob") is None:
        gate.create_user("bob", PW)
    other = open_store(url)
    delays = []
    for _ in range(trials):
        token = gate.login("bob", PW).access_token
        for _ in range(3):
            gate.authenticate(token)
        other.revoke_user_sessions("bob")
        revoked = time.perf_counter()
        while True:
            try:
                gate.authenticate(token)
            except SessionRevoked:
                break
        delays.append((time.perf_counter() - revoked) * 1000)
    print(
        f"revocation through another connection reaches a cached gate in: "
        f"median {statistics.median(delays):.3f} ms, max {max(delays):.3f} ms "
        f"({trials} trials)"
    )
    other.close()
    gate.close()


def bench_event_loop() -> None:
    """p99 latency of a cheap authenticated GET while 4 logins hash (real argon2)."""
    loop = asyncio.new_event_loop()
    gate = AsyncGate(store="memory://", secret_key=SECRET)  # RFC 9106 argon2 parameters
    loop.run_until_complete(gate.create_user("alice", PW))
    token = loop.run_until_complete(gate.login("alice", PW)).access_token
    app = AuthGateMiddleware(Starlette(routes=[Route("/", guarded)]), gate)
    call = asgi_caller(app, token)

    async def run() -> list[float]:
        latencies: list[float] = []
        logins = [asyncio.create_task(gate.login("alice", PW)) for _ in range(4)]
        while not all(t.done() for t in logins):
            start = time.perf_counter()
            await call()
            latencies.append((time.perf_counter() - start) * 1000)
            await asyncio.sleep(0.001)
        await asyncio.gather(*logins)
        return latencies

    latencies = sorted(loop.run_until_complete(run()))
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    print(
        f"\nevent loop while 4 logins hash: {len(latencies)} GETs, "
        f"p50 {statistics.median(latencies):.2f} ms, p99 {p99:.2f} ms, "
        f"max {latencies[-1]:.2f} ms"
    )
    loop.run_until_complete(gate.close())
    loop.close()


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


def bench_permissions() -> None:
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
    print()
    print(f"{'permission decisions (same role policy)':<58} {'per s':>12} {'vs casbin':>10}")
    for name, samples in (
        ("pycasbin enforce", casbin_us),
        ("authgate PermissionSet.allows (per identity, memoised)", warm),
        ("authgate, first decision (set built per call)", cold),
    ):
        per_sec = 1e6 / statistics.median(samples)
        ratio = statistics.median(casbin_us) / statistics.median(samples)
        print(f"{name:<58} {per_sec:12,.0f} {ratio:9.1f}x")


def main() -> None:
    logging.getLogger("authgate.audit").setLevel(logging.WARNING)  # 10,000 logins
    header = f"{'per request (µs), in process':<58} {'min':>8} {'median':>8} {'max':>8}"
    with tempfile.TemporaryDirectory() as tmp, redis_server() as redis_url:
        urls = {
            "memory": "memory://",
            "sqlite": f"sqlite:///{Path(tmp) / 'bench.db'}",
            "redis": f"{redis_url}?prefix=bench",
        }
        print(header, " vs bare")
        report(bench_asgi(urls))
        print()
        print(header, " vs bare")
        report(bench_wsgi(urls))
        print()
        bench_revocation(urls["redis"])
    bench_permissions()
    bench_event_loop()
    print(
        f"\nPyJWT {jwt.__version__}, Starlette {starlette.__version__}, "
        f"Flask {importlib.metadata.version('flask')}, "
        f"casbin {importlib.metadata.version('casbin')}; {REPEATS} interleaved rounds"
    )


if __name__ == "__main__":
    main()
