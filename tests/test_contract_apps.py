"""One end-to-end contract, every example app: Flask, Django, Starlette, FastAPI, plain
WSGI and plain ASGI; in process (WebTest, httpx's ASGITransport) on memory, SQLite and Redis, and
over real HTTP (gunicorn, uvicorn started here on free loopback ports) with real clients
(httpx, websockets) on SQLite and Redis, with one and with several worker processes, with
the cheap test hashing and with the default argon2 parameters.  Test ids name the app, the
store and the transport, then ``w<N>`` for N worker processes and ``argon2`` for the
default hashing: ``flask-redis-http-w2``, ``fastapi-sqlite-http-w4-argon2``.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import multiprocessing
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import httpx
import pytest
import webtest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect as ws_connect

from _workers import conditional_increments
from authgate.stores import open_store
from authgate.testing import free_port
from conftest import SQL_SCHEMES

ROOT = Path(__file__).resolve().parent.parent
ADMIN, ADMIN_PW = "admin", "admin password 1"
PW = "user password 1"
ASGI_APPS = {"starlette", "fastapi", "plain_asgi"}
APPS = {
    "flask": "examples.flask_app",
    "django": "examples.django_app.wsgi",
    "plain_wsgi": "examples.plain_wsgi",
    "starlette": "examples.starlette_app",
    "fastapi": "examples.fastapi_app",
    "plain_asgi": "examples.plain_asgi",
}


class Case(NamedTuple):
    """One way to run an example app."""

    app: str
    store: str  # memory, sqlite, redis, redis-cluster, redis-sentinel, postgres, mariadb
    transport: str  # inprocess, http (gunicorn for WSGI apps, uvicorn for ASGI ones)
    workers: int = 1  # server worker processes (http only)
    hashing: str = "cheap"  # cheap: the test profile; default: authgate's argon2 defaults
    hide: bool = False  # AUTHGATE_HIDE_OBJECTS: another's item answers 404, not 403
    throttle: int = 0  # AUTHGATE_MAX_FAILURES_PER_ADDRESS, when not the default

    @property
    def id(self) -> str:
        parts = [self.app, self.store, self.transport]
        if self.workers > 1:
            parts.append(f"w{self.workers}")
        if self.hashing == "default":
            parts.append("argon2")
        if self.hide:
            parts.append("hide")
        if self.throttle:
            parts.append(f"throttle{self.throttle}")
        return "-".join(parts)


#: Over HTTP: every app on SQLite with one worker, on Redis and on PostgreSQL with two;
#: one app per server kind (Flask on gunicorn, FastAPI on uvicorn) with four workers and
#: the default argon2 parameters, on SQLite (four processes sharing one database file),
#: and with four workers on MariaDB.
CASES = [
    *[Case(app, store, "inprocess") for app in APPS for store in ("memory", "sqlite", "redis")],
    *[Case(app, "postgres", "inprocess") for app in APPS],
    *[Case(app, "sqlite", "http") for app in APPS],
    *[Case(app, "redis", "http", workers=2) for app in APPS],
    *[Case(app, "postgres", "http", workers=2) for app in APPS],
    *[Case(app, "sqlite", "http", workers=4, hashing="default") for app in ("flask", "fastapi")],
    *[Case(app, "mariadb", "http", workers=4) for app in ("flask", "fastapi")],
    # Redis Cluster and Sentinel: every app in process, one per server kind over HTTP.
    *[Case(app, s, "inprocess") for app in APPS for s in ("redis-cluster", "redis-sentinel")],
    *[
        Case(app, s, "http", workers=2)
        for app in ("flask", "fastapi")
        for s in ("redis-cluster", "redis-sentinel")
    ],
]
#: Stores whose workers learn of a revocation from a feed (NOTIFY, pub/sub, a polled
#: log): a request racing it may pass within `REVOCATION_DELAY`.
FED_STORES = {"redis", "redis-cluster", "redis-sentinel", "postgres", "mariadb"}
#: With ``AUTHGATE_HIDE_OBJECTS=true``: every app in process on SQLite, and over HTTP
#: with two workers on PostgreSQL and on Redis (the list filtered by a query, and by
#: `filter_objects` after loading).
HIDING_CASES = [
    *[Case(app, "sqlite", "inprocess", hide=True) for app in APPS],
    Case("flask", "postgres", "http", workers=2, hide=True),
    Case("fastapi", "redis", "http", workers=2, hide=True),
]
ASGI_CASES = [case for case in CASES if case.app in ASGI_APPS]
HTTP_CASES = [case for case in CASES if case.transport == "http"]
MULTI_WORKER_CASES = [case for case in CASES if case.workers > 1]


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    text: str

    @property
    def json(self) -> Any:
        return json.loads(self.text) if self.text else None


class Deployment:
    """An example app, started one way, with a uniform client."""

    def __init__(
        self,
        case: Case,
        store_url: str,
        send: Callable[..., Reply],
        websocket: Callable[..., Any] | None,
        log: Path | None = None,
        stop: Callable[[], None] | None = None,
        base_url: str | None = None,
    ) -> None:
        self.case = case
        self.app = case.app
        self.store_url = store_url
        self.send = send
        self.websocket = websocket
        #: The server's output (http only): where a worker's traceback would land.
        self.log = log
        #: Signal the server to stop (http only); its context still waits for it.
        self.stop = stop or (lambda: None)
        #: Where the server listens (http only), for clients in other processes.
        self.base_url = base_url
        self._maker_token = ""

    def call(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        body: Any = None,
        raw: bytes | None = None,
        headers: dict[str, str | bytes] | None = None,
    ) -> Reply:
        """One request; a ``bytes`` header value goes on the wire as those very bytes."""
        all_headers: dict[str, str | bytes] = dict(headers or {})
        if token:
            all_headers["Authorization"] = f"Bearer {token}"
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else b"")
        if data and "content-type" not in {k.lower() for k in all_headers}:
            all_headers["Content-Type"] = "application/json"
        return self.send(method, path, all_headers, data)

    def login(self, username: str, password: str) -> dict[str, Any]:
        reply = self.call("POST", "/auth/login", body={"username": username, "password": password})
        assert reply.status == 200, reply.text
        return dict(reply.json)

    def token(self, username: str, password: str = PW) -> str:
        return str(self.login(username, password)["access_token"])

    def admin(self) -> str:
        return self.token(ADMIN, ADMIN_PW)

    def make_user(self, role: str, name: str | None = None) -> str:
        """A new user made through the API by the admin (whose token this helper keeps:
        a login per user made costs a default argon2 hash in the "argon2" cases)."""
        username = name or f"{role[:3]}{uuid.uuid4().hex[:8]}"
        body = {"username": username, "password": PW, "role": role}
        reply = self.call("POST", "/api/users/", token=self._maker_token, body=body)
        if reply.status == 401:
            self._maker_token = self.admin()
            reply = self.call("POST", "/api/users/", token=self._maker_token, body=body)
        assert reply.status == 201, reply.text
        return username


def _env(
    store_url: str, hashing: str = "cheap", hide: bool = False, throttle: int = 0
) -> dict[str, str]:
    env = {
        "AUTHGATE_STORE": store_url,
        "AUTHGATE_SECRET_KEY": "contract-suite-secret-key-that-is-long-enough",
        "AUTHGATE_SUPERUSER_USERNAME": ADMIN,
        "AUTHGATE_SUPERUSER_PASSWORD": ADMIN_PW,
        "AUTHGATE_MAX_LOGIN_ATTEMPTS": "5",
        "AUTHGATE_HIDE_OBJECTS": "true" if hide else "false",
    }
    if throttle:
        env["AUTHGATE_MAX_FAILURES_PER_ADDRESS"] = str(throttle)
    if hashing == "cheap":
        env.update(
            AUTHGATE_ARGON2_TIME_COST="1",
            AUTHGATE_ARGON2_MEMORY_COST="8",
            AUTHGATE_ARGON2_PARALLELISM="1",
        )
    return env


#: What each hashing profile leaves in a stored hash.
ARGON2_PARAMS = {"cheap": "m=8,t=1,p=1", "default": "m=65536,t=3,p=4"}


def _latin1(headers: dict[str, str | bytes]) -> dict[str, str]:
    """WSGI's view of raw header bytes (PEP 3333: latin-1 decoded)."""
    return {k: v.decode("latin-1") if isinstance(v, bytes) else v for k, v in headers.items()}


def _wire(headers: dict[str, str | bytes]) -> list[tuple[bytes, bytes]]:
    """Headers as the bytes httpx puts on the wire (a str value must be ASCII)."""
    return [
        (k.encode("ascii"), v if isinstance(v, bytes) else v.encode("ascii"))
        for k, v in headers.items()
    ]


def _inprocess(case: Case, env: dict[str, str], log: Path) -> Iterator[Deployment]:
    app_name = case.app
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        if app_name == "django":
            module = _fresh_django_project()
        else:
            sys.modules.pop(APPS[app_name], None)
            module = importlib.import_module(APPS[app_name])
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    app = module.app
    if app_name not in ASGI_APPS:
        client = webtest.TestApp(app)

        def send_wsgi(
            method: str, path: str, headers: dict[str, str | bytes], data: bytes
        ) -> Reply:
            r = client.request(
                path, method=method, headers=_latin1(headers), body=data, expect_errors=True
            )
            return Reply(r.status_code, {k.lower(): v for k, v in r.headers.items()}, r.text)

        yield Deployment(case, env["AUTHGATE_STORE"], send_wsgi, None)
        return

    loop = asyncio.new_event_loop()
    aclient = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")

    def send_asgi(method: str, path: str, headers: dict[str, str | bytes], data: bytes) -> Reply:
        r = loop.run_until_complete(
            aclient.request(method, path, headers=_wire(headers), content=data)
        )
        return Reply(r.status_code, dict(r.headers), r.text)

    def websocket(path: str, headers: dict[str, str] | None = None) -> Any:
        return _AsgiWebSocket(app, loop, path, headers or {})

    yield Deployment(case, env["AUTHGATE_STORE"], send_asgi, websocket)
    loop.run_until_complete(aclient.aclose())
    loop.close()


def _fresh_django_project() -> Any:
    """The Django project anew, under the current environment: Django configures itself
    once per process, so its settings stay, while the WSGI handler (so the middleware
    and its gate), the URLs and the views (so the items) are made again, here, while
    this case's ``AUTHGATE_*`` variables are set."""
    import django.urls

    for name in list(sys.modules):
        if name.startswith("examples.django_app.") and name != "examples.django_app.settings":
            del sys.modules[name]
    django.urls.clear_url_caches()
    module = importlib.import_module(APPS["django"])
    django.urls.get_resolver().url_patterns  # noqa: B018 - imports the views now
    return module


class WebSocketRefused(Exception):
    """The app refused the handshake (close before accept, or an HTTP response)."""


class _AsgiWebSocket:
    """A minimal in-process WebSocket client speaking ASGI to the app on the same event
    loop as the HTTP client (so loop-bound clients such as redis.asyncio keep working)."""

    def __init__(
        self, app: Any, loop: asyncio.AbstractEventLoop, path: str, headers: dict[str, str]
    ) -> None:
        self.loop = loop
        self.inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        raw_path, _, query = path.partition("?")
        scope = {
            "type": "websocket",
            "asgi": {"version": "3.0"},
            "scheme": "ws",
            "path": raw_path,
            "raw_path": raw_path.encode(),
            "root_path": "",
            "query_string": query.encode(),
            "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
            "client": ("127.0.0.1", 5000),
            "server": ("t", 80),
            "subprotocols": [],
            "extensions": {"websocket.http.response": {}},
        }
        self.task = loop.create_task(app(scope, self.inbox.get, self.outbox.put))
        self.inbox.put_nowait({"type": "websocket.connect"})
        first = self._next()
        if first["type"] != "websocket.accept":
            loop.run_until_complete(self._finish())
            raise WebSocketRefused(first.get("status", first.get("code")))

    def _next(self) -> dict[str, Any]:
        return self.loop.run_until_complete(asyncio.wait_for(self.outbox.get(), 10))

    async def _finish(self) -> None:
        await asyncio.wait_for(asyncio.gather(self.task, return_exceptions=True), 10)

    def send_text(self, text: str) -> None:
        self.inbox.put_nowait({"type": "websocket.receive", "text": text})

    def receive_text(self) -> str:
        message = self._next()
        if message["type"] != "websocket.send":
            raise WebSocketRefused(message.get("code"))
        return str(message["text"])

    def __enter__(self) -> _AsgiWebSocket:
        return self

    def __exit__(self, *exc: object) -> None:
        self.inbox.put_nowait({"type": "websocket.disconnect", "code": 1000})
        self.loop.run_until_complete(self._finish())


#: What each worker of a multi-worker server logs once it has imported the app (so ran
#: the app's own bootstrap): uvicorn says so at "info"; gunicorn is told to by a hook.
#: The server is ready when every worker is: requests must be able to reach them all.
BOOTED = {"uvicorn": "Started server process [", "gunicorn": "contract: worker booted"}
GUNICORN_BOOT_HOOK = f"""
def post_worker_init(worker):
    worker.log.warning("{BOOTED["gunicorn"]} %s", worker.pid)
"""


def _over_http(
    case: Case, env: dict[str, str], log: Path, *, seed: bool = True
) -> Iterator[Deployment]:
    app_name = case.app
    server = "uvicorn" if app_name in ASGI_APPS else "gunicorn"
    several = case.workers > 1
    port = free_port()
    target = f"{APPS[app_name]}:app"
    if app_name in ASGI_APPS:
        command = [
            sys.executable,
            "-m",
            "uvicorn",
            target,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--http",
            "h11",
            "--workers",
            str(case.workers),
            "--log-level",
            "warning",
        ]
        if several:
            command[-1:] = ["info", "--no-access-log"]
    else:
        command = [
            sys.executable,
            "-m",
            "gunicorn",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(case.workers),
            "--log-level",
            "warning",
            target,
        ]
        if several:
            hook = log.with_name("gunicorn_boot_hook.py")
            hook.write_text(GUNICORN_BOOT_HOOK)
            command[-1:-1] = ["--config", str(hook)]  # the target stays last
    # Only this case's settings: an AUTHGATE_* variable of the caller's (say a cheap
    # argon2 profile) must not leak into the default-hashing cases.
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("AUTHGATE_")}
    if several and seed:
        # Seed the admin first, as `authgate bootstrap` before the workers: each worker
        # seeds at import, and concurrent seeding on a fresh store races (a worker dies
        # with UserExists; test_workers_boot_together_on_a_fresh_store shows it).
        subprocess.run(
            [sys.executable, "-m", "authgate", "bootstrap"],
            cwd=ROOT,
            env={**inherited, **env},
            check=True,
            capture_output=True,
            timeout=60,
        )
    with open(log, "wb") as sink:  # a file, not a pipe: a chatty server never blocks
        proc = subprocess.Popen(
            command, cwd=ROOT, env={**inherited, **env}, stdout=sink, stderr=subprocess.STDOUT
        )
    base = f"http://127.0.0.1:{port}"
    # Several workers share the listening socket; a kept-alive connection would pin every
    # request to one of them, so there each request opens its own connection.
    limits = httpx.Limits(max_keepalive_connections=0 if several else 20)
    client = httpx.Client(base_url=base, timeout=30, limits=limits)
    deadline = time.monotonic() + 60
    booting = ""
    while True:
        try:
            if client.get("/public").status_code == 200 and (
                not several or booting.count(BOOTED[server]) >= case.workers
            ):
                break
        except httpx.TransportError:
            pass
        booting = log.read_text(errors="replace")
        if proc.poll() is not None or "Traceback" in booting or time.monotonic() > deadline:
            client.close()
            _stop(proc)
            raise RuntimeError(f"{case.id} did not start: {_died(log)}")
        time.sleep(0.05)

    def send_http(method: str, path: str, headers: dict[str, str | bytes], data: bytes) -> Reply:
        r = client.request(method, path, headers=_wire(headers), content=data)
        return Reply(r.status_code, dict(r.headers), r.text)

    def websocket(path: str, headers: dict[str, str] | None = None) -> Any:
        return ws_connect(
            f"ws://127.0.0.1:{port}{path}", additional_headers=headers or {}, open_timeout=10
        )

    try:
        ws = websocket if app_name in ASGI_APPS else None
        yield Deployment(
            case, env["AUTHGATE_STORE"], send_http, ws, log, proc.terminate, base_url=base
        )
    finally:
        client.close()
        _stop(proc)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop a server the way its workers are stopped too (SIGTERM), then wait for it."""
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="module")
def pool(
    redis_base_url: str, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[Callable[[Case], Deployment]]:
    """Deployments by case, started on first use, stopped at the end.  Each gets a store
    of its own: a fresh SQLite file, a unique Redis key prefix (a Redis the tests did
    not start is shared, never flushed), or a unique table prefix in the session's
    private SQL database."""
    started: dict[Case, Deployment] = {}
    with ExitStack() as stack:

        def get(case: Case) -> Deployment:
            if case not in started:
                where = tmp_path_factory.mktemp(case.id)
                if case.store == "memory":
                    url = "memory://"
                elif case.store == "sqlite":
                    url = f"sqlite:///{where / 'authgate.db'}"
                elif case.store in SQL_SCHEMES:
                    database = f"{'mariadb' if case.store == 'mariadb' else 'postgres'}_database"
                    rest = request.getfixturevalue(database).split("://", 1)[1]
                    url = f"{SQL_SCHEMES[case.store]}://{rest}?prefix=c{uuid.uuid4().hex[:10]}_"
                elif case.store == "redis":
                    sep = "&" if "?" in redis_base_url else "?"
                    url = f"{redis_base_url}{sep}prefix=contract-{uuid.uuid4().hex}"
                else:
                    topology = request.getfixturevalue(f"{case.store.replace('-', '_')}_set")
                    url = topology.url(f"prefix=contract-{uuid.uuid4().hex}")
                maker = _inprocess if case.transport == "inprocess" else _over_http
                started[case] = stack.enter_context(
                    contextmanager(maker)(
                        case,
                        _env(url, case.hashing, case.hide, case.throttle),
                        where / "server.log",
                    )
                )
            return started[case]

        yield get
        for deployed in started.values():  # signal every server at once, then wait
            deployed.stop()


@pytest.fixture(params=CASES, ids=[c.id for c in CASES])
def deployed(request: pytest.FixtureRequest, pool: Callable[[Case], Deployment]) -> Deployment:
    return pool(request.param)


@pytest.fixture(params=HIDING_CASES, ids=[c.id for c in HIDING_CASES])
def hiding_deployed(
    request: pytest.FixtureRequest, pool: Callable[[Case], Deployment]
) -> Deployment:
    return pool(request.param)


@pytest.fixture(params=ASGI_CASES, ids=[c.id for c in ASGI_CASES])
def asgi_deployed(request: pytest.FixtureRequest, pool: Callable[[Case], Deployment]) -> Deployment:
    return pool(request.param)


@pytest.fixture(params=HTTP_CASES, ids=[c.id for c in HTTP_CASES])
def http_deployed(request: pytest.FixtureRequest, pool: Callable[[Case], Deployment]) -> Deployment:
    return pool(request.param)


@pytest.fixture(params=MULTI_WORKER_CASES, ids=[c.id for c in MULTI_WORKER_CASES])
def multi_deployed(
    request: pytest.FixtureRequest, pool: Callable[[Case], Deployment]
) -> Deployment:
    return pool(request.param)


# -- scenarios ------------------------------------------------------------------------------


def test_user_resources_carry_an_etag_and_honour_if_match(deployed: Deployment) -> None:
    """GET gives an ETag; a change sent with a stale one is a 412 and writes nothing; a
    change with the current one (or ``*``) lands and answers with the next ETag."""
    admin = deployed.admin()
    name = deployed.make_user("viewer")
    path = f"/api/users/{name}"
    first = deployed.call("GET", path, token=admin)
    tag = first.headers["etag"]
    assert tag.startswith('"') and tag.endswith('"')
    moved = deployed.call(
        "PATCH", path, token=admin, body={"first_name": "Ann"}, headers={"If-Match": tag}
    )
    assert moved.status == 200, moved.text
    assert moved.headers["etag"] not in (tag, "")
    for method, where, body in [
        ("PATCH", path, {"first_name": "Bob"}),
        ("PUT", f"{path}/permissions", {"permissions": ["items:read"]}),
        ("PUT", f"{path}/password", {"password": "another password 1"}),
        ("DELETE", path, None),
    ]:
        stale = deployed.call(method, where, token=admin, body=body, headers={"If-Match": tag})
        assert (stale.status, stale.json["error"]) == (412, "precondition_failed"), where
    now = deployed.call("GET", path, token=admin)
    assert (now.json["first_name"], now.json["permissions"]) == ("Ann", [])
    assert now.headers["etag"] == moved.headers["etag"]
    assert deployed.login(name, PW)["access_token"]  # the password did not change
    several = f'"nope", {now.headers["etag"]}'
    listed = deployed.call(
        "PATCH", path, token=admin, body={"last_name": "Lee"}, headers={"If-Match": several}
    )
    assert listed.status == 200
    anything = deployed.call(
        "PATCH", path, token=admin, body={"last_name": "Li"}, headers={"If-Match": "*"}
    )
    assert anything.status == 200
    gone = deployed.call(
        "DELETE", path, token=admin, headers={"If-Match": anything.headers["etag"]}
    )
    assert gone.status == 204
    missing = deployed.call("PATCH", path, token=admin, body={}, headers={"If-Match": "*"})
    assert missing.status == 404


def test_login_me_refresh_logout(deployed: Deployment) -> None:
    name = deployed.make_user("operator")
    pair = deployed.login(name, PW)
    assert set(pair) == {"access_token", "token_type", "expires_in", "refresh_token"}
    assert pair["token_type"] == "bearer"
    me = deployed.call("GET", "/auth/me", token=pair["access_token"])
    assert me.status == 200
    assert (me.json["username"], me.json["role"], me.json["roles"]) == (
        name,
        "operator",
        ["operator"],
    )
    assert "password" not in me.text and "argon2" not in me.text
    fresh = deployed.call("POST", "/auth/refresh", body={"refresh_token": pair["refresh_token"]})
    assert fresh.status == 200
    since = time.monotonic()
    spent = deployed.call("POST", "/auth/refresh", body={"refresh_token": pair["refresh_token"]})
    assert spent.status == 401
    # Reusing a spent refresh token ends the session: its fresh access token with it.
    _refused(deployed, fresh.json["access_token"], since, "reusing a spent refresh token")
    second = deployed.login(name, PW)
    out = deployed.call("POST", "/auth/logout", token=second["access_token"])
    assert out.status == 204
    gone = deployed.call("GET", "/auth/me", token=second["access_token"])
    assert gone.status == 401
    assert 'error="invalid_token"' in gone.headers["www-authenticate"]


def test_wrong_password_and_unknown_user_look_the_same(deployed: Deployment) -> None:
    name = deployed.make_user("viewer")
    wrong = deployed.call("POST", "/auth/login", body={"username": name, "password": "nope nope"})
    unknown = deployed.call(
        "POST", "/auth/login", body={"username": f"ghost{uuid.uuid4().hex[:6]}", "password": PW}
    )
    assert wrong.status == unknown.status == 401
    assert (
        wrong.json
        == unknown.json
        == {"error": "invalid_credentials", "detail": "invalid username or password"}
    )


def test_lockout_is_429_with_retry_after(deployed: Deployment) -> None:
    name = deployed.make_user("viewer")
    for _ in range(5):
        deployed.call("POST", "/auth/login", body={"username": name, "password": "bad bad bad"})
    locked = deployed.call("POST", "/auth/login", body={"username": name, "password": PW})
    assert locked.status == 429
    assert int(locked.headers["retry-after"]) > 0


def test_password_change_and_sessions(deployed: Deployment) -> None:
    name = deployed.make_user("viewer")
    here, there = deployed.token(name), deployed.token(name)
    listed = deployed.call("GET", "/auth/sessions", token=here)
    assert listed.status == 200 and len(listed.json["items"]) == 2
    assert sum(item["current"] for item in listed.json["items"]) == 1
    bad = deployed.call(
        "PUT",
        "/auth/me/password",
        token=here,
        body={"current_password": "wrong one!", "new_password": "new password 1"},
    )
    assert bad.status == 401
    ok = deployed.call(
        "PUT",
        "/auth/me/password",
        token=here,
        body={"current_password": PW, "new_password": "new password 1"},
    )
    assert ok.status == 204
    assert deployed.call("GET", "/auth/me", token=there).status == 401
    assert deployed.call("GET", "/auth/me", token=here).status == 200
    third = deployed.token(name, "new password 1")
    items = deployed.call("GET", "/auth/sessions", token=third).json["items"]
    sid = next(i for i in items if i["current"])["id"]
    since = time.monotonic()
    assert deployed.call("DELETE", f"/auth/sessions/{sid}", token=here).status == 204
    # `third` was just read (and cached) by whichever worker listed the sessions.
    _refused(deployed, third, since, "the session's deletion")
    assert deployed.call("DELETE", "/auth/sessions/nope", token=here).status == 404


def test_users_api_and_its_refusals(deployed: Deployment) -> None:
    admin = deployed.admin()
    name = f"u{uuid.uuid4().hex[:8]}"
    made = deployed.call(
        "POST",
        "/api/users/",
        token=admin,
        body={
            "username": name.upper(),
            "password": PW,
            "roles": ["viewer"],
            "email": "u@example.com",
            "first_name": "Una",
        },
    )
    assert made.status == 201
    assert made.json["username"] == name
    assert "password" not in made.text and "hash" not in made.text
    dup = deployed.call(
        "POST", "/api/users/", token=admin, body={"username": name, "passwordless": True}
    )
    assert dup.status == 409
    assert deployed.call("GET", f"/api/users/{name}", token=admin).json["email"] == "u@example.com"
    listed = deployed.call("GET", "/api/users/?limit=1000", token=admin)
    assert name in [u["username"] for u in listed.json["items"]]
    patched = deployed.call(
        "PATCH",
        f"/api/users/{name}",
        token=admin,
        body={"role": "operator", "password": "another pass 1"},
    )
    assert patched.status == 200 and patched.json["roles"] == ["operator"]
    assert deployed.token(name, "another pass 1")
    for body, field in (
        ({"username": "x1y2z3", "is_admin": True}, "is_admin"),
        ({"username": "x1y2z3", "password_hash": "x"}, "password_hash"),
        ({"username": 42}, "username"),
        ({"username": "x1y2z3", "roles": "admin"}, "roles"),
        ({"username": "x1y2z3", "email": "e" * 400}, "email"),
        ({"username": "x1y2z3"}, "password"),
        ({"username": "x1y2z3", "password": PW, "passwordless": True}, "passwordless"),
        ({"username": "x1y2z3", "password": PW, "role": "superadmin"}, "unknown role"),
        ({"username": "x1y2z3", "password": PW, "roles": ["viewer", "root"]}, "unknown role"),
    ):
        refused = deployed.call("POST", "/api/users/", token=admin, body=body)
        assert refused.status == 400, body
        assert field in refused.json["detail"]
    assert deployed.call("GET", "/api/users/x1y2z3", token=admin).status == 404
    viewer = deployed.token(deployed.make_user("viewer"))
    assert deployed.call("GET", "/api/users/", token=viewer).status == 403
    assert deployed.call("GET", "/api/users/").status == 401
    assert deployed.call("DELETE", f"/api/users/{ADMIN}", token=admin).status == 409
    demote = deployed.call("PATCH", f"/api/users/{ADMIN}", token=admin, body={"role": "viewer"})
    assert demote.status == 409
    typo = deployed.call("PATCH", f"/api/users/{name}", token=admin, body={"role": "opertor"})
    assert typo.status == 400 and "the roles are" in typo.json["detail"]
    assert deployed.call("DELETE", f"/api/users/{name}", token=admin).status == 204
    assert deployed.call("GET", f"/api/users/{name}", token=admin).status == 404


ROUTES = [
    ("/public", {None: 200, "viewer": 200, "operator": 200, "admin": 200}),
    ("/protected", {None: 401, "viewer": 200, "operator": 200, "admin": 200}),
    ("/operator", {None: 401, "viewer": 403, "operator": 200, "admin": 200}),
    ("/admin", {None: 401, "viewer": 403, "operator": 403, "admin": 200}),
]


def test_every_demo_route_with_every_role(deployed: Deployment) -> None:
    tokens: dict[str | None, str | None] = {None: None, "admin": deployed.admin()}
    for made in ("viewer", "operator"):
        tokens[made] = deployed.token(deployed.make_user(made))
    for path, expected in ROUTES:
        for role, status in expected.items():
            reply = deployed.call("GET", path, token=tokens[role])
            assert reply.status == status, (path, role, reply.text)
            if status == 403:
                assert "requires" in reply.json["detail"]


def test_items_and_the_object_level_check(deployed: Deployment) -> None:
    """The steps that need no item held by the process answering (see the next test)."""
    olga = deployed.make_user("operator")
    viewer = deployed.token(deployed.make_user("viewer"))
    t_olga, admin = deployed.token(olga), deployed.admin()
    made = deployed.call("POST", "/items", token=t_olga, body={"title": "olga's"})
    assert made.status == 201
    assert made.json["owner"] == olga and made.json["title"] == "olga's"
    assert deployed.call("GET", f"/items/{made.json['id']}").status == 401
    assert deployed.call("GET", "/items/99999").status == 401
    assert deployed.call("POST", "/items", token=viewer, body={"title": "no"}).status == 403
    assert (
        deployed.call("POST", "/items", token=t_olga, body={"title": "x", "owner": "y"}).status
        == 400
    )
    assert deployed.call("GET", "/items/99999", token=admin).status == 404


#: The demo items live in the deployment's store (`examples.demo.Items`): a SQLite file
#: or a Redis hash that every worker shares; `memory://` keeps them in the one process.
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_item_read_back_by_owner_admin_and_others(
    case: Case, pool: Callable[[Case], Deployment]
) -> None:
    deployed = pool(case)
    olga, otto = deployed.make_user("operator"), deployed.make_user("operator")
    t_olga, t_otto, admin = deployed.token(olga), deployed.token(otto), deployed.admin()
    made = [
        deployed.call("POST", "/items", token=t_olga, body={"title": f"olga's {n}"})
        for n in range(8)
    ]
    assert [m.status for m in made] == [201] * 8
    assert len({m.json["id"] for m in made}) == 8  # workers never reuse an id
    for m in made:  # each read may reach another worker than the one that created it
        item = f"/items/{m.json['id']}"
        mine = deployed.call("GET", item, token=t_olga)
        assert mine.status == 200
        assert {**mine.json, "served_by": 0} == {**m.json, "served_by": 0}
        assert deployed.call("GET", item, token=admin).status == 200
        assert deployed.call("GET", item, token=t_otto).status == 403


def _listed(deployed: Deployment, token: str | None) -> list[int]:
    reply = deployed.call("GET", "/items", token=token)
    assert reply.status == 200, reply.text
    return [item["id"] for item in reply.json["items"]]


def test_the_item_list_holds_what_each_caller_may_read(deployed: Deployment) -> None:
    olga, otto = deployed.make_user("operator"), deployed.make_user("operator")
    t_olga, t_otto, admin = deployed.token(olga), deployed.token(otto), deployed.admin()
    viewer = deployed.token(deployed.make_user("viewer"))
    mine = [
        deployed.call("POST", "/items", token=t_olga, body={"title": f"olga {n}"}).json["id"]
        for n in range(3)
    ]
    his = [
        deployed.call("POST", "/items", token=t_otto, body={"title": f"otto {n}"}).json["id"]
        for n in range(2)
    ]
    assert _listed(deployed, t_olga) == sorted(mine)
    assert _listed(deployed, t_otto) == sorted(his)
    assert _listed(deployed, viewer) == []
    everything = _listed(deployed, admin)  # the store may hold other tests' items too
    assert set(mine + his) <= set(everything) and everything == sorted(everything)
    listed = deployed.call("GET", "/items", token=t_olga).json["items"]
    assert [item["owner"] for item in listed] == [olga] * 3
    assert deployed.call("GET", "/items").status == 401


def test_hidden_items_read_as_missing(hiding_deployed: Deployment) -> None:
    """With hiding on, another's item is answered exactly as an id that does not exist:
    same status, same body, same headers that matter; the owner and admin still see it."""
    deployed = hiding_deployed
    olga, otto = deployed.make_user("operator"), deployed.make_user("operator")
    t_olga, t_otto, admin = deployed.token(olga), deployed.token(otto), deployed.admin()
    made = deployed.call("POST", "/items", token=t_olga, body={"title": "olga's"}).json
    hidden = deployed.call("GET", f"/items/{made['id']}", token=t_otto)
    missing = deployed.call("GET", "/items/987654321", token=t_otto)
    assert hidden.status == missing.status == 404
    assert hidden.text == missing.text
    assert hidden.json == {"error": "not_found", "detail": "no such item"}
    assert hidden.headers.get("content-type") == missing.headers.get("content-type")
    assert "www-authenticate" not in hidden.headers
    assert deployed.call("GET", f"/items/{made['id']}", token=t_olga).status == 200
    assert deployed.call("GET", f"/items/{made['id']}", token=admin).status == 200
    assert deployed.call("GET", f"/items/{made['id']}").status == 401  # never a 404
    assert made["id"] not in _listed(deployed, t_otto)
    assert _listed(deployed, t_olga) == [made["id"]]


#: A password spray over real HTTP, workers sharing the store: a WSGI and an ASGI server.
THROTTLE_CASES = [
    Case("flask", "postgres", "http", workers=2, throttle=20),
    Case("fastapi", "redis", "http", workers=2, throttle=20),
]


@pytest.mark.parametrize("case", THROTTLE_CASES, ids=[c.id for c in THROTTLE_CASES])
def test_a_password_spray_is_throttled_per_address_over_http(
    case: Case, pool: Callable[[Case], Deployment]
) -> None:
    """200 failed logins over 50 accounts from 127.0.0.1, 20 at a time across the
    workers: exactly the address's 20 are checked, the rest answered 429 with
    Retry-After; from 127.0.0.2 the owner of a sprayed account logs in."""
    deployed = pool(case)
    assert deployed.base_url is not None
    names = [deployed.make_user("viewer") for _ in range(50)]

    def spray(n: int) -> httpx.Response:
        body = {"username": names[n % 50], "password": "not the password"}
        return sprayer.post("/auth/login", json=body)

    with httpx.Client(base_url=deployed.base_url, timeout=30) as sprayer:
        with ThreadPoolExecutor(20) as threads:
            replies = list(threads.map(spray, range(200)))
        statuses = sorted(r.status_code for r in replies)
        assert statuses == [401] * 20 + [429] * 180, statuses
        throttled = [r for r in replies if r.status_code == 429]
        assert all(1 <= int(r.headers["retry-after"]) <= 300 for r in throttled)
        assert {r.json()["error"] for r in throttled} == {"too_many_attempts"}
        assert names[0] not in throttled[0].text  # says nothing about the account
        own = sprayer.post("/auth/login", json={"username": names[0], "password": PW})
        assert own.status_code == 429  # the address is throttled, whoever it names
    elsewhere = httpx.HTTPTransport(local_address="127.0.0.2")
    with httpx.Client(base_url=deployed.base_url, timeout=30, transport=elsewhere) as other:
        reply = other.post("/auth/login", json={"username": names[0], "password": PW})
        assert reply.status_code == 200, reply.text
        for name in names[1:4]:  # no account was locked by the spray
            assert (
                other.post("/auth/login", json={"username": name, "password": PW}).status_code
                == 200
            )


def test_websocket(asgi_deployed: Deployment) -> None:
    deployed = asgi_deployed
    assert deployed.websocket is not None
    token = deployed.token(deployed.make_user("viewer"))
    with deployed.websocket("/ws", {"Authorization": f"Bearer {token}"}) as ws:
        _send(ws, "ping")
        assert _receive(ws) == "ping"
    with deployed.websocket(f"/ws?token={token}") as ws:
        _send(ws, "query")
        assert _receive(ws) == "query"
    for path in ("/ws", "/ws?token=bad.token.here"):
        with pytest.raises((WebSocketRefused, InvalidStatus)):
            deployed.websocket(path)  # refused at the handshake


def _send(ws: Any, text: str) -> None:
    if hasattr(ws, "send_text"):
        ws.send_text(text)
    else:
        ws.send(text)


def _receive(ws: Any) -> str:
    return str(ws.receive_text() if hasattr(ws, "receive_text") else ws.recv(timeout=10))


MALFORMED: list[tuple[str, str, bytes, dict[str, str | bytes]]] = [
    ("POST", "/auth/login", b"{not json", {}),
    ("POST", "/auth/login", b"[]", {}),
    ("POST", "/auth/login", b'{"username": ["a"], "password": "x"}', {}),
    ("POST", "/auth/login", b'{"username": "a"}', {}),
    ("POST", "/auth/login", b"\xff\xfe\x00", {}),
    ("POST", "/auth/login", b'{"username": "' + b"a" * 70000 + b'"}', {}),
    ("POST", "/auth/refresh", b'{"refresh_token": 7}', {}),
    ("POST", "/auth/refresh", b'{"refresh_token": "abc"}', {}),
    ("GET", "/auth/me", b"", {"Authorization": "Bearer"}),
    ("GET", "/auth/me", b"", {"Authorization": "Bearer a.b.c"}),
    ("GET", "/auth/me", b"", {"Authorization": "BEARER authToken="}),
    ("GET", "/auth/me", b"", {"Authorization": "Basic Zm9vOmJhcg=="}),
    # Non-ASCII header bytes, sent as bytes: every client puts them on the wire as they
    # are (httpx refuses a non-ASCII *str* value, which once skipped this case for every
    # app but the in-process WSGI ones).
    ("GET", "/auth/me", b"", {"Authorization": "Bearer \u00e9\u00e9".encode()}),
    ("GET", "/auth/me", b"", {"Authorization": "Bearer \u00e9\u00e9".encode("latin-1")}),
    ("GET", "/protected", b"", {"Authorization": b"Bearer \xff\xfe.\x80.\xc3"}),
    ("GET", "/protected", b"", {"Authorization": "Bearer " + "x" * 9000}),
    ("DELETE", "/auth/login", b"", {}),
    ("GET", "/api/users/%00", b"", {}),
    ("GET", "/items/abc", b"", {}),
    ("PUT", "/auth/me/password", b"{}", {}),
]


def _not_the_apps_answer(case: Case, path: str, headers: dict[str, str | bytes]) -> str:
    """Why a malformed request's 4xx does not come from authgate (so has no JSON error
    body), or "" when it must.  Each reason names the layer that answers instead."""
    if (
        case.transport == "http"
        and case.app not in ASGI_APPS
        and len(headers.get("Authorization", "")) > 8190
    ):
        return "gunicorn answers a header line over limit_request_field_size with its own 431"
    if case.app == "flask" and path == "/items/abc":
        return "Flask's <int:item_id> route does not match; Flask's own HTML 404"
    return ""


def test_malformed_input_never_500(deployed: Deployment) -> None:
    admin = deployed.admin()
    requests: list[tuple[str, str, bytes, dict[str, str | bytes]]] = [
        *MALFORMED,
        ("GET", "/api/users/?limit=abc", b"", {"Authorization": f"Bearer {admin}"}),
        ("GET", "/api/users/?limit=0", b"", {"Authorization": f"Bearer {admin}"}),
        ("PATCH", "/api/users/admin", b"[1]", {"Authorization": f"Bearer {admin}"}),
        ("POST", "/api/users/", b'{"username": "bad name!"}', {"Authorization": f"Bearer {admin}"}),
        (
            "POST",
            "/api/users/",
            b'{"username": "okname1", "password": "short"}',
            {"Authorization": f"Bearer {admin}"},
        ),
        ("POST", "/items", b"{", {"Authorization": f"Bearer {admin}"}),
    ]
    for method, path, raw, headers in requests:
        reply = deployed.call(
            method, path, raw=raw, headers={"Content-Type": "application/json", **headers}
        )
        where = (method, path, str(headers)[:60], reply.status, reply.text[:200])
        assert 400 <= reply.status < 500, where
        json_body = reply.headers.get("content-type", "").startswith("application/json")
        if _not_the_apps_answer(deployed.case, path, headers):
            assert not json_body, ("the exclusion no longer applies: drop it", *where)
            continue
        assert json_body, where
        assert "detail" in reply.json or "error" in reply.json, where
        if path in ("/auth/me", "/protected") and "Authorization" in headers:
            assert reply.status == 401, where
    assert deployed.call("GET", "/api/users/okname1", token=admin).status == 404


# -- several workers ------------------------------------------------------------------------


def test_requests_reach_several_workers(multi_deployed: Deployment) -> None:
    """The multi-worker cases are worth their cost only if requests really spread over
    the workers: the demo's items say which worker process answered (``served_by``)."""
    deployed = multi_deployed
    token = deployed.token(deployed.make_user("operator"))

    def create(_: int) -> int:
        made = deployed.call("POST", "/items", token=token, body={"title": "which worker?"})
        assert made.status == 201, made.text
        return int(made.json["served_by"])

    workers: set[int] = set()
    # Several at once: a worker busy with one request leaves the next connection to
    # another (one at a time, the kernel may hand every connection to the same one).
    with ThreadPoolExecutor(8) as pool:
        for _ in range(25):
            workers.update(pool.map(create, range(8)))
            if len(workers) > 1:
                break
    assert len(workers) > 1, f"one process answered all: {workers}"


#: How long after a revocation a worker on a fed store (`FED_STORES`) may still honour a
#: token it had cached.  A worker learns of a change asynchronously: from the
#: ``{prefix}:changes`` channel on Redis (the README measured a median 0.72 ms, max 12
#: ms), from NOTIFY on PostgreSQL, from the change log polled every 20 ms on MariaDB.
#: The bound here is generous for a loaded machine, yet far below the cache's 60 s
#: expiry, so only the invalidation (not the expiry) can meet it.  On SQLite: the very
#: next request.
REVOCATION_DELAY = 0.35


def _refused(deployed: Deployment, token: str, since: float | None, what: str) -> None:
    """Requests spread over the workers (fresh connections) all refuse `token`; with
    `since` (the revocation's start) a request on Redis within the delay above may pass."""
    delay = REVOCATION_DELAY if since is not None and deployed.case.store in FED_STORES else 0
    for i in range(8 * deployed.case.workers):
        sent = time.monotonic() - (since or 0.0)
        reply = deployed.call("GET", "/auth/me", token=token)
        if reply.status == 200 and sent < delay:
            continue  # raced the invalidation message: allowed within the delay
        assert reply.status == 401, f"request {i} after {what} let through ({sent:.4f} s)"
        assert 'error="invalid_token"' in reply.headers["www-authenticate"]


def _accepted(deployed: Deployment, *tokens: str) -> None:
    for _ in range(8 * deployed.case.workers):
        for token in tokens:
            assert deployed.call("GET", "/auth/me", token=token).status == 200


def _past_the_delay(deployed: Deployment, since: float) -> None:
    if deployed.case.store in FED_STORES:
        time.sleep(max(0.0, since + REVOCATION_DELAY - time.monotonic()))


def test_revocation_reaches_every_worker(multi_deployed: Deployment) -> None:
    """Every worker first reads (and caches) the live sessions; after a logout, and after
    an admin disables the user, no worker honours the token any more."""
    deployed = multi_deployed
    name = deployed.make_user("viewer")
    gone, kept = deployed.login(name, PW), deployed.login(name, PW)
    _accepted(deployed, gone["access_token"], kept["access_token"])
    since = time.monotonic()
    assert deployed.call("POST", "/auth/logout", token=gone["access_token"]).status == 204
    _refused(deployed, gone["access_token"], since, "the logout")
    _accepted(deployed, kept["access_token"])
    spent = deployed.call("POST", "/auth/refresh", body={"refresh_token": gone["refresh_token"]})
    assert spent.status == 401
    _past_the_delay(deployed, since)
    _refused(deployed, gone["access_token"], None, "the logout, past the delay")
    admin = deployed.admin()
    since = time.monotonic()
    off = deployed.call("PATCH", f"/api/users/{name}", token=admin, body={"enabled": False})
    assert off.status == 200, off.text
    _refused(deployed, kept["access_token"], since, "disabling the user")
    _past_the_delay(deployed, since)
    _refused(deployed, kept["access_token"], None, "disabling the user, past the delay")


#: One app per server kind, as the multi-worker cases with the default hashing run them.
BOOT_CASES = [case for case in MULTI_WORKER_CASES if case.hashing == "default"]


#: Boots per backend: the SQL ones race on their migration lock as well.
BOOTS = [(b, n) for b in ("sqlite", "redis") for n in range(10)] + [
    (b, n) for b in ("postgres", "mariadb", "redis-cluster", "redis-sentinel") for n in range(4)
]


@pytest.mark.parametrize(("backend", "boot"), BOOTS)
@pytest.mark.parametrize("case", BOOT_CASES, ids=[c.id for c in BOOT_CASES])
def test_workers_boot_together_on_a_fresh_store(
    case: Case,
    backend: str,
    boot: int,
    tmp_path: Path,
    make_store_url: Callable[[str], str],
) -> None:
    """`gunicorn -w 4` / `uvicorn --workers 4` on a fresh SQLite file, a fresh Redis
    prefix or fresh SQL tables (each worker migrates them, one at a time), nothing
    seeded, ten boots each: every worker imports the app, which seeds the
    admin from AUTHGATE_SUPERUSER_*, all at once.  All must boot (gunicorn stops
    altogether when a worker fails to), no worker logs a traceback (uvicorn restarts a
    dead worker), and exactly one admin exists."""
    log = tmp_path / "server.log"
    url = make_store_url(backend)
    with contextmanager(_over_http)(case, _env(url, case.hashing), log, seed=False) as deployed:
        assert "Traceback" not in log.read_text(errors="replace"), _died(log)
        assert deployed.call("GET", "/public").status == 200
        assert deployed.token(ADMIN, ADMIN_PW)
    store = open_store(url)
    try:
        users = [u for page in _pages(store) for u in page]
        assert [u.username for u in users if "admin" in u.roles] == [ADMIN]
    finally:
        store.close()


@pytest.mark.parametrize("case", BOOT_CASES, ids=[c.id for c in BOOT_CASES])
def test_conditional_patches_from_four_processes_lose_no_edit(
    case: Case, pool: Callable[[Case], Deployment]
) -> None:
    """4 client processes x 250 read-modify-write increments of one user through
    `If-Match`, against four workers: every edit lands (the count is exactly 1000), the
    losers of each race get a 412 and retry."""
    deployed = pool(case)
    name = deployed.make_user("viewer")
    assert deployed.base_url is not None
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(4, mp_context=ctx) as workers:
        refused = list(
            workers.map(
                conditional_increments,
                [deployed.base_url] * 4,
                [deployed.admin()] * 4,
                [name] * 4,
                [250] * 4,
            )
        )
    final = deployed.call("GET", f"/api/users/{name}", token=deployed.admin())
    assert final.json["display_name"] == "1000", (final.json, refused)
    assert sum(refused) > 0  # the processes did race


def _pages(store: Any) -> Iterator[list[Any]]:
    after = None
    while True:
        page = store.list_users(limit=100, after=after)
        yield list(page.items)
        if page.next_after is None:
            return
        after = page.next_after


def _died(log: Path) -> str:
    """The first traceback in a server's log, its exception lines first (or the log's
    tail when there is none)."""
    text = log.read_text(errors="replace")
    if "Traceback" not in text:
        return text[-2000:]
    chunk = text[text.index("Traceback") :].splitlines()[:80]
    summary = [line for line in chunk if line[:1] not in ("", " ", "[", "\t")]
    return "a worker died while booting: " + " | ".join(summary[:6]) + "\n" + "\n".join(chunk)


# -- every case -----------------------------------------------------------------------------

#: A memory store lives inside the app: nothing outside it can read the stored hashes.
PERSISTENT_CASES = [case for case in CASES if case.store != "memory"]


@pytest.mark.parametrize("case", PERSISTENT_CASES, ids=[c.id for c in PERSISTENT_CASES])
def test_the_hashing_profile_is_the_one_meant(
    case: Case, pool: Callable[[Case], Deployment]
) -> None:
    """The stored hashes carry the case's argon2 parameters: the "argon2" cases really
    run authgate's defaults, the others the cheap test profile."""
    deployed = pool(case)
    name = deployed.make_user("viewer")
    store = open_store(deployed.store_url)
    try:
        for username in (ADMIN, name):
            user = store.get_user(username)
            assert user is not None
            assert f"${ARGON2_PARAMS[case.hashing]}$" in user.password_hash, username
    finally:
        store.close()


AUDIT_LINE = r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} %s authgate\.audit: %s user=%s by=%s "


def test_audit_lines_reach_the_server_log_with_time_and_level(http_deployed: Deployment) -> None:
    """Under gunicorn and uvicorn alike (one worker or several): who created whom, and
    who was refused what, each a line with its time and level."""
    import re

    deployed = http_deployed
    assert deployed.log is not None
    name = deployed.make_user("viewer")
    token = deployed.token(name, PW)
    assert deployed.call("GET", "/api/users/", token=token).status == 403
    deadline = time.monotonic() + 5
    wanted = [
        re.compile(AUDIT_LINE % ("INFO", "user_created", name, ADMIN), re.M),
        re.compile(AUDIT_LINE % ("WARNING", "permission_denied", name, "-"), re.M),
    ]
    while True:
        text = deployed.log.read_text(errors="replace")
        missing = [w.pattern for w in wanted if not w.search(text)]
        if not missing or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert not missing, f"{missing} not in the log:\n{text[-3000:]}"


#: Error lines a server logs for a correct exchange, each with the reason.
BENIGN_LOG_LINES = {
    # uvicorn's websockets-sansio protocol never marks the handshake complete after a
    # denial response (the `websocket.http.response` extension authgate uses for a real
    # 401), so it logs this on every refused handshake though the client got the 401:
    # https://github.com/Kludex/uvicorn/pull/3138
    "ERROR:    ASGI callable returned without completing handshake.",
}


def test_server_log_shows_no_error(http_deployed: Deployment) -> None:
    """Last: whatever the scenarios above did, no worker logged an error or traceback (a
    500 the client saw as a 4xx, a worker that died and was restarted)."""
    assert http_deployed.log is not None
    lines = http_deployed.log.read_text(errors="replace").splitlines()
    bad = [
        line
        for line in lines
        if ("Traceback" in line or "ERROR" in line) and line.strip() not in BENIGN_LOG_LINES
    ]
    assert not bad, "\n".join(lines[-60:])
