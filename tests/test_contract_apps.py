"""One end-to-end contract, every example app: Flask, Starlette, FastAPI, plain WSGI and
plain ASGI; in process (WebTest, httpx's ASGITransport) on memory, SQLite and Redis, and
over real HTTP (gunicorn, uvicorn started here on free loopback ports) with real clients
(httpx, websockets).  Test ids name the app, the store and the transport.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import webtest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect as ws_connect

from authgate.testing import free_port

ROOT = Path(__file__).resolve().parent.parent
ADMIN, ADMIN_PW = "admin", "admin password 1"
PW = "user password 1"
ASGI_APPS = {"starlette", "fastapi", "plain_asgi"}
APPS = {
    "flask": "examples.flask_app",
    "plain_wsgi": "examples.plain_wsgi",
    "starlette": "examples.starlette_app",
    "fastapi": "examples.fastapi_app",
    "plain_asgi": "examples.plain_asgi",
}
CASES = [
    *[(app, store, "inprocess") for app in APPS for store in ("memory", "sqlite", "redis")],
    *[(app, "sqlite", "http") for app in APPS],
]
ASGI_CASES = [case for case in CASES if case[0] in ASGI_APPS]


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
        self, app: str, send: Callable[..., Reply], websocket: Callable[..., Any] | None
    ) -> None:
        self.app = app
        self.send = send
        self.websocket = websocket

    def call(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        body: Any = None,
        raw: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        all_headers = dict(headers or {})
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
        username = name or f"{role[:3]}{uuid.uuid4().hex[:8]}"
        reply = self.call(
            "POST",
            "/api/users/",
            token=self.admin(),
            body={"username": username, "password": PW, "role": role},
        )
        assert reply.status == 201, reply.text
        return username


def _env(store_url: str) -> dict[str, str]:
    return {
        "AUTHGATE_STORE": store_url,
        "AUTHGATE_SECRET_KEY": "contract-suite-secret-key-that-is-long-enough",
        "AUTHGATE_SUPERUSER_USERNAME": ADMIN,
        "AUTHGATE_SUPERUSER_PASSWORD": ADMIN_PW,
        "AUTHGATE_ARGON2_TIME_COST": "1",
        "AUTHGATE_ARGON2_MEMORY_COST": "8",
        "AUTHGATE_ARGON2_PARALLELISM": "1",
        "AUTHGATE_MAX_LOGIN_ATTEMPTS": "5",
    }


def _inprocess(app_name: str, env: dict[str, str]) -> Iterator[Deployment]:
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
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

        def send_wsgi(method: str, path: str, headers: dict[str, str], data: bytes) -> Reply:
            r = client.request(path, method=method, headers=headers, body=data, expect_errors=True)
            return Reply(r.status_code, {k.lower(): v for k, v in r.headers.items()}, r.text)

        yield Deployment(app_name, send_wsgi, None)
        return

    loop = asyncio.new_event_loop()
    aclient = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")

    def send_asgi(method: str, path: str, headers: dict[str, str], data: bytes) -> Reply:
        r = loop.run_until_complete(aclient.request(method, path, headers=headers, content=data))
        return Reply(r.status_code, dict(r.headers), r.text)

    def websocket(path: str, headers: dict[str, str] | None = None) -> Any:
        return _AsgiWebSocket(app, loop, path, headers or {})

    yield Deployment(app_name, send_asgi, websocket)
    loop.run_until_complete(aclient.aclose())
    loop.close()


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


def _over_http(app_name: str, env: dict[str, str]) -> Iterator[Deployment]:
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
            "--log-level",
            "warning",
        ]
    else:
        command = [
            sys.executable,
            "-m",
            "gunicorn",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "1",
            "--log-level",
            "warning",
            target,
        ]
    proc = subprocess.Popen(
        command,
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    client = httpx.Client(base_url=base, timeout=10)
    deadline = time.monotonic() + 30
    while True:
        try:
            if client.get("/public").status_code == 200:
                break
        except httpx.TransportError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(
                f"{app_name} did not start: {proc.stderr.read().decode()[-2000:]}"
                if proc.stderr
                else f"{app_name} did not start"
            )
        time.sleep(0.05)

    def send_http(method: str, path: str, headers: dict[str, str], data: bytes) -> Reply:
        r = client.request(method, path, headers=headers, content=data)
        return Reply(r.status_code, dict(r.headers), r.text)

    def websocket(path: str, headers: dict[str, str] | None = None) -> Any:
        return ws_connect(
            f"ws://127.0.0.1:{port}{path}", additional_headers=headers or {}, open_timeout=10
        )

    try:
        yield Deployment(app_name, send_http, websocket if app_name in ASGI_APPS else None)
    finally:
        client.close()
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="module")
def pool(
    redis_base_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[[tuple[str, str, str]], Deployment]]:
    """Deployments by (app, store, transport), started on first use, stopped at the end."""
    started: dict[tuple[str, str, str], Deployment] = {}
    with ExitStack() as stack:

        def get(case: tuple[str, str, str]) -> Deployment:
            if case not in started:
                app_name, store, transport = case
                if store == "memory":
                    url = "memory://"
                elif store == "sqlite":
                    url = f"sqlite:///{tmp_path_factory.mktemp('contract') / 'authgate.db'}"
                else:
                    sep = "&" if "?" in redis_base_url else "?"
                    url = f"{redis_base_url}{sep}prefix=contract-{uuid.uuid4().hex}"
                maker = _inprocess if transport == "inprocess" else _over_http
                started[case] = stack.enter_context(contextmanager(maker)(app_name, _env(url)))
            return started[case]

        yield get


@pytest.fixture(params=CASES, ids=["-".join(c) for c in CASES])
def deployed(
    request: pytest.FixtureRequest, pool: Callable[[tuple[str, str, str]], Deployment]
) -> Deployment:
    return pool(request.param)


@pytest.fixture(params=ASGI_CASES, ids=["-".join(c) for c in ASGI_CASES])
def asgi_deployed(
    request: pytest.FixtureRequest, pool: Callable[[tuple[str, str, str]], Deployment]
) -> Deployment:
    return pool(request.param)


# -- scenarios ------------------------------------------------------------------------------


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
    spent = deployed.call("POST", "/auth/refresh", body={"refresh_token": pair["refresh_token"]})
    assert spent.status == 401
    assert deployed.call("GET", "/auth/me", token=fresh.json["access_token"]).status == 401
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
    assert deployed.call("DELETE", f"/auth/sessions/{sid}", token=here).status == 204
    assert deployed.call("GET", "/auth/me", token=third).status == 401
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
    dup = deployed.call("POST", "/api/users/", token=admin, body={"username": name})
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
    olga = deployed.make_user("operator")
    otto = deployed.make_user("operator")
    viewer = deployed.token(deployed.make_user("viewer"))
    t_olga, t_otto, admin = deployed.token(olga), deployed.token(otto), deployed.admin()
    made = deployed.call("POST", "/items", token=t_olga, body={"title": "olga's"})
    assert made.status == 201
    assert made.json["owner"] == olga and made.json["title"] == "olga's"
    item = f"/items/{made.json['id']}"
    assert deployed.call("GET", item, token=t_olga).status == 200
    assert deployed.call("GET", item, token=admin).status == 200
    assert deployed.call("GET", item, token=t_otto).status == 403
    assert deployed.call("GET", item).status == 401
    assert deployed.call("POST", "/items", token=viewer, body={"title": "no"}).status == 403
    assert (
        deployed.call("POST", "/items", token=t_olga, body={"title": "x", "owner": "y"}).status
        == 400
    )
    assert deployed.call("GET", "/items/99999", token=admin).status == 404


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


MALFORMED = [
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
    ("GET", "/auth/me", b"", {"Authorization": "Bearer \u00e9\u00e9"}),
    ("GET", "/protected", b"", {"Authorization": "Bearer " + "x" * 9000}),
    ("DELETE", "/auth/login", b"", {}),
    ("GET", "/api/users/%00", b"", {}),
    ("GET", "/items/abc", b"", {}),
    ("PUT", "/auth/me/password", b"{}", {}),
]


def test_malformed_input_never_500(deployed: Deployment) -> None:
    admin = deployed.admin()
    requests = [
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
        try:
            reply = deployed.call(
                method, path, raw=raw, headers={"Content-Type": "application/json", **headers}
            )
        except (UnicodeEncodeError, httpx.LocalProtocolError):
            continue  # the client itself refuses to send a non-latin-1 header
        assert 400 <= reply.status < 500, (method, path, reply.status, reply.text[:200])
        if reply.headers.get("content-type", "").startswith("application/json"):
            assert "detail" in reply.json or "error" in reply.json
    assert deployed.call("GET", "/api/users/okname1", token=admin).status == 404
