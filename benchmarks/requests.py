"""Per-request cost of authgate's middleware next to the bare apps and the peers.

Run: ``pip install -e '.[all,dev,bench]' && python benchmarks/requests.py``
(starts a private redis-server).  Everything runs in this process, no network: each
ASGI request is one call of the app with a ready scope; each WSGI request one call of
the app with a ready environ, its body consumed.  Prints min / median / max µs per
request over repeats and the median as a ratio to the bare app, then permission
decisions per second next to pycasbin's ``enforce`` on the same role policy.
"""

from __future__ import annotations

import asyncio
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
from starlette.applications import Starlette
from starlette.authentication import (
    AuthCredentials,
    AuthenticationBackend,
    AuthenticationError,
    SimpleUser,
    requires,
)
from starlette.middleware import Middleware
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.requests import HTTPConnection, Request
from starlette.responses import PlainTextResponse
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


def measure(fn: Callable[[], object], number: int) -> Samples:
    """µs per call, one figure per repeat."""
    out = []
    fn()
    for _ in range(REPEATS):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        out.append((time.perf_counter() - start) / number * 1e6)
    return out


def measure_async(loop: asyncio.AbstractEventLoop, fn: Callable[[], Any], number: int) -> Samples:
    async def many() -> float:
        start = time.perf_counter()
        for _ in range(number):
            await fn()
        return (time.perf_counter() - start) / number * 1e6

    loop.run_until_complete(fn())
    return [loop.run_until_complete(many()) for _ in range(REPEATS)]


ROWS: list[tuple[str, Samples, float | None]] = []


def row(name: str, samples: Samples, base: Samples | None) -> None:
    ROWS.append((name, samples, statistics.median(base) if base else None))
    med = statistics.median(samples)
    ratio = f"{med / statistics.median(base):6.2f}x" if base else "  1.00x"
    print(f"{name:<58} {min(samples):8.1f} {med:8.1f} {max(samples):8.1f} {ratio}", flush=True)


# -- ASGI -------------------------------------------------------------------------------


def asgi_caller(app: Any, token: str | None) -> Callable[[], Any]:
    headers = [(b"host", b"test")]
    if token:
        headers.append((b"authorization", f"Bearer {token}".encode()))

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    status: list[int] = []

    async def send(message: Any) -> None:
        if message["type"] == "http.response.start":
            status.append(message["status"])

    async def call() -> None:
        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
            "method": "GET", "scheme": "http", "path": "/", "raw_path": b"/",
            "root_path": "", "query_string": b"", "headers": headers,
            "server": ("test", 80), "client": ("127.0.0.1", 5000),
        }
        status.clear()
        await app(scope, receive, send)
        if status != [200]:
            raise RuntimeError(f"unexpected status {status}")

    return call


async def plain_hello(request: Request) -> PlainTextResponse:
    return PlainTextResponse("hello")


@require_auth
async def guarded_hello(request: Request) -> PlainTextResponse:
    return PlainTextResponse("hello")


@requires("authenticated")
async def starlette_hello(request: Request) -> PlainTextResponse:
    return PlainTextResponse("hello")


class JWTBackend(AuthenticationBackend):
    """The usual Starlette recipe: pyjwt in an AuthenticationBackend."""

    async def authenticate(self, conn: HTTPConnection) -> tuple[AuthCredentials, SimpleUser] | None:
        header = conn.headers.get("authorization")
        if not header:
            return None
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer":
            return None
        try:
            claims = jwt.decode(token, SECRET, algorithms=["HS256"], audience="authgate",
                                issuer="authgate")
        except jwt.PyJWTError as err:
            raise AuthenticationError("invalid token") from err
        return AuthCredentials(["authenticated"]), SimpleUser(claims["sub"])


def bench_asgi(urls: dict[str, str]) -> None:
    loop = asyncio.new_event_loop()
    bare = Starlette(routes=[Route("/", plain_hello)])
    base = measure_async(loop, asgi_caller(bare, None), 5000)
    row(f"ASGI bare Starlette {starlette.__version__}", base, None)

    peer_app = Starlette(routes=[Route("/", starlette_hello)],
                         middleware=[Middleware(AuthenticationMiddleware, backend=JWTBackend())])
    peer_token = jwt.encode({"sub": "alice", "iss": "authgate", "aud": "authgate",
                             "exp": int(time.time()) + 3600}, SECRET, algorithm="HS256")
    row("ASGI Starlette AuthenticationMiddleware + pyjwt + requires",
        measure_async(loop, asgi_caller(peer_app, peer_token), 3000), base)

    guarded = Starlette(routes=[Route("/", guarded_hello)])
    for label, url, stateless in [("stateless", "memory://", True),
                                  *[(f"session check, {k}", v, False) for k, v in urls.items()]]:
        sync = Gate(store=url, secret_key=SECRET, hasher=cheap_hasher())
        if sync.store.get_user("alice") is None:
            sync.create_user("alice", PW)
        token = sync.login("alice", PW).access_token
        store: Any = SyncStoreAsAsync(sync.store, offload=False) if url == "memory://" else url
        gate = AsyncGate(store=store, secret_key=SECRET, hasher=cheap_hasher(),
                         stateless=stateless)
        app = AuthGateMiddleware(guarded, gate)
        number = 1000 if "redis" in label else 3000
        row(f"ASGI authgate + require_auth, {label}",
            measure_async(loop, asgi_caller(app, token), number), base)
        loop.run_until_complete(gate.close())
        sync.close()
    loop.close()


# -- WSGI -------------------------------------------------------------------------------


def wsgi_caller(app: Any, token: str | None) -> Callable[[], None]:
    environ_base = {
        "REQUEST_METHOD": "GET", "PATH_INFO": "/", "SCRIPT_NAME": "", "QUERY_STRING": "",
        "SERVER_NAME": "test", "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_HOST": "test", "wsgi.url_scheme": "http", "wsgi.input": None,
        "wsgi.errors": None, "wsgi.multithread": False, "wsgi.multiprocess": False,
        "wsgi.run_once": False, "wsgi.version": (1, 0),
    }
    if token:
        environ_base["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    status: list[str] = []

    def start_response(s: str, headers: Any, exc: Any = None) -> Any:
        status.append(s)
        return None

    def call() -> None:
        import io

        environ = dict(environ_base, **{"wsgi.input": io.BytesIO(b"")})
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


def bench_wsgi(urls: dict[str, str]) -> None:
    bare = flask.Flask("bare")
    bare.add_url_rule("/", "hello", lambda: "hello")
    base = measure(wsgi_caller(bare, None), 3000)
    row(f"WSGI bare Flask {flask.__version__ if hasattr(flask, '__version__') else ''}".strip(),
        base, None)

    peer = flask.Flask("peer")
    peer.config["JWT_SECRET_KEY"] = SECRET
    JWTManager(peer)

    @peer.get("/")
    @jwt_required()
    def peer_hello() -> str:
        return "hello"

    with peer.app_context():
        peer_token = create_access_token(identity="alice")
    row("WSGI Flask-JWT-Extended jwt_required",
        measure(wsgi_caller(peer, peer_token), 2000), base)

    app = flask.Flask("authgate")

    @app.get("/")
    @require_auth
    def hello() -> str:
        return "hello"

    for label, url, stateless in [("stateless", "memory://", True),
                                  *[(f"session check, {k}", v, False) for k, v in urls.items()]]:
        gate = Gate(store=url, secret_key=SECRET, hasher=cheap_hasher(), stateless=stateless)
        if gate.store.get_user("alice") is None:
            gate.create_user("alice", PW)
        token = gate.login("alice", PW).access_token
        number = 1000 if "redis" in label else 2000
        row(f"WSGI authgate + require_auth, {label}",
            measure(wsgi_caller(AuthGateWSGIMiddleware(app, gate), token), number), base)
        gate.close()


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
    policy = RolePolicy({"viewer": ["items:read"],
                         "operator": ["items:create", "streams/1:send"],
                         "admin": ["*:*"]})
    grants: PermissionSet = policy.permissions_for(frozenset({"operator"}))
    questions = [("items/5", "read", True), ("items/5", "create", True),
                 ("streams/1/topics/7", "send", True), ("streams/2/topics/7", "send", False),
                 ("users/3", "delete", False)]
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
    for name, samples in (("pycasbin enforce", casbin_us),
                          ("authgate PermissionSet.allows (per identity, memoised)", warm),
                          ("authgate, first decision (set built per call)", cold)):
        per_sec = 1e6 / statistics.median(samples)
        ratio = statistics.median(casbin_us) / statistics.median(samples)
        print(f"{name:<58} {per_sec:12,.0f} {ratio:9.1f}x")


def main() -> None:
    print(f"{'per request (µs), in process':<58} {'min':>8} {'median':>8} {'max':>8} {'vs bare':>7}")
    with tempfile.TemporaryDirectory() as tmp, redis_server() as redis_url:
        urls = {
            "memory": "memory://",
            "sqlite": f"sqlite:///{Path(tmp) / 'bench.db'}",
            "redis": f"{redis_url}?prefix=bench",
        }
        bench_asgi(urls)
        bench_wsgi(urls)
    bench_permissions()
    print(f"\nPyJWT {jwt.__version__}, Starlette {starlette.__version__}, "
          f"casbin {getattr(casbin, '__version__', '1.43')}")


if __name__ == "__main__":
    main()
