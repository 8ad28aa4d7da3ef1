"""A regression guard for the cost of an authenticated request, counting work instead
of timing it: once a token has been seen, the next request through the middleware
checks no signature, decodes no JSON, and calls no store (nor its database or Redis),
in stateless mode and with every store that caches its session check.  A change that
adds any of these to the warm path fails here, however fast the machine."""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import Callable
from typing import Any

import pytest

from authgate import documents, tokens
from authgate.gate import AsyncGate, Gate
from authgate.middleware.asgi import AuthGateMiddleware
from authgate.middleware.wsgi import AuthGateWSGIMiddleware
from authgate.testing import cheap_hasher
from authgate.tokens import Key, TokenVerifier
from conftest import SECRET

PW = "correct horse battery"


class Counts:
    """How often each kind of work was done."""

    def __init__(self) -> None:
        self.work: dict[str, int] = {}

    def counting(self, kind: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def counted(*args: Any, **kwargs: Any) -> Any:
            self.work[kind] = self.work.get(kind, 0) + 1
            return fn(*args, **kwargs)

        return counted


class CountingStore:
    """A store whose every call is counted (the cached peek aside: it is memory)."""

    def __init__(self, store: Any, counts: Counts) -> None:
        self._store, self._counts = store, counts

    def __getattr__(self, name: str) -> Any:
        found = getattr(self._store, name)
        if not callable(found) or name == "peek_session_user":
            return found
        return self._counts.counting(f"store.{name}", found)


@pytest.fixture
def counts(monkeypatch: pytest.MonkeyPatch) -> Counts:
    counts = Counts()
    monkeypatch.setattr(Key, "verify", counts.counting("signature", Key.verify))
    monkeypatch.setattr(Key, "hmac_signature", counts.counting("signature", Key.hmac_signature))
    monkeypatch.setattr(documents, "loads", counts.counting("json decode", documents.loads))
    monkeypatch.setattr(
        tokens,
        "_decode_signed_claims",
        counts.counting("json decode", tokens._decode_signed_claims),
    )
    return counts


def test_the_counters_see_a_cold_token(counts: Counts) -> None:
    """The guard below would be empty if the counters missed the work they count."""
    gate = Gate(store="memory://", secret_key=SECRET, hasher=cheap_hasher())
    gate.create_user("alice", PW)
    first, second = (gate.login("alice", PW).access_token for _ in range(2))
    for token in (first, second):  # the header unknown, then known
        counts.work.clear()
        gate.authenticate(token)
        assert counts.work["signature"] == 1, counts.work
        assert counts.work["json decode"] >= 1, counts.work
    gate.close()


def _io(store: Any, counts: Counts) -> None:
    """Count the backend's own I/O too: SQLite reads, Redis commands."""
    if hasattr(store, "_read"):
        store._read = counts.counting("sqlite read", store._read)
    if hasattr(store, "_command"):
        store._command = counts.counting("redis command", store._command)


CASES = [
    ("stateless", "memory"),
    ("session", "memory"),
    ("session", "sqlite"),
    ("session", "redis"),
]


def _environ(token: str) -> dict[str, Any]:
    return {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/",
        "HTTP_AUTHORIZATION": f"Bearer {token}",
        "wsgi.input": io.BytesIO(b""),
    }


@pytest.mark.parametrize(("mode", "backend"), CASES)
def test_a_warm_wsgi_request_does_no_avoidable_work(
    counts: Counts, make_store_url: Callable[[str], str], mode: str, backend: str
) -> None:
    gate = Gate(
        store=make_store_url(backend),
        secret_key=SECRET,
        hasher=cheap_hasher(),
        stateless=mode == "stateless",
    )
    gate.create_user("alice", PW)
    token = gate.login("alice", PW).access_token
    seen: list[str] = []

    def app(environ: Any, start_response: Any) -> list[bytes]:
        seen.append(environ["authgate.identity"].username)
        start_response("200 OK", [])
        return [b"hi"]

    served: Any = AuthGateWSGIMiddleware(app, gate)
    real: Any = gate.store
    for _ in range(50):  # warm: the token verified, the session check cached
        list(served(_environ(token), lambda *a: None))
        if mode == "stateless" or real.peek_session_user(*_sid(gate, token)) is not None:
            break
        time.sleep(0.05)  # the Redis feed confirms its subscription
    gate.store = CountingStore(real, counts)
    _io(real, counts)
    counts.work.clear()
    for _ in range(5):
        list(served(_environ(token), lambda *a: None))
    assert counts.work == {}, counts.work
    assert seen[-5:] == ["alice"] * 5
    gate.store = real
    gate.close()


def _sid(gate: Gate, token: str) -> tuple[str, str]:
    claims = gate.verifier.verify(token)
    return claims["sid"], claims["sub"]


@pytest.mark.parametrize(("mode", "backend"), CASES)
def test_a_warm_asgi_request_does_no_avoidable_work(
    counts: Counts, make_store_url: Callable[[str], str], mode: str, backend: str
) -> None:
    async def scenario() -> None:
        gate = AsyncGate(
            store=make_store_url(backend),
            secret_key=SECRET,
            hasher=cheap_hasher(),
            stateless=mode == "stateless",
        )
        await gate.create_user("alice", PW)
        token = (await gate.login("alice", PW)).access_token
        seen: list[str] = []

        async def app(scope: Any, receive: Any, send: Any) -> None:
            seen.append(scope["user"].username)
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"hi"})

        served = AuthGateMiddleware(app, gate)
        scope = {
            "type": "http",
            "method": "GET",
            "path": "/",
            "headers": [(b"authorization", f"Bearer {token}".encode())],
        }

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b""}

        async def send(message: Any) -> None:
            pass

        real: Any = gate.store
        for _ in range(50):
            await served(dict(scope), receive, send)
            if mode == "stateless" or gate.authenticate_nowait(token) is not None:
                break
            await asyncio.sleep(0.05)  # the Redis feed confirms its subscription
        gate.store = CountingStore(real, counts)
        _io(getattr(real, "sync", real), counts)
        counts.work.clear()
        for _ in range(5):
            await served(dict(scope), receive, send)
        assert counts.work == {}, counts.work
        assert seen[-5:] == ["alice"] * 5
        gate.store = real
        await gate.close()

    asyncio.run(scenario())


class PeekCountingStore(CountingStore):
    """A `CountingStore` that counts the cached peek too."""

    def __getattr__(self, name: str) -> Any:
        found = super().__getattr__(name)
        if name == "peek_session_user":
            return self._counts.counting("store.peek_session_user", found)
        return found


def test_an_asgi_request_the_caches_cannot_answer_looks_each_cache_up_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A touch due every request (interval 0) sends each one to the store; the
    middleware still verifies the token and peeks at the session cache once."""
    counts = Counts()
    monkeypatch.setattr(TokenVerifier, "verify", counts.counting("verify", TokenVerifier.verify))

    async def scenario() -> None:
        gate = AsyncGate(
            store="memory://", secret_key=SECRET, hasher=cheap_hasher(), session_touch_interval=0
        )
        await gate.create_user("alice", PW)
        token = (await gate.login("alice", PW)).access_token
        seen: list[str] = []

        async def app(scope: Any, receive: Any, send: Any) -> None:
            seen.append(scope["user"].username)
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"hi"})

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b""}

        async def send(message: Any) -> None:
            pass

        served = AuthGateMiddleware(app, gate)
        headers = [(b"authorization", f"Bearer {token}".encode())]
        real: Any = gate.store
        gate.store = PeekCountingStore(real, counts)
        counts.work.clear()
        for _ in range(3):
            await served({"type": "http", "method": "GET", "headers": headers}, receive, send)
        assert seen == ["alice"] * 3
        assert counts.work["verify"] == 3
        assert counts.work["store.peek_session_user"] == 3
        assert counts.work["store.touch_session"] == 3
        gate.store = real
        await gate.close()

    asyncio.run(scenario())
