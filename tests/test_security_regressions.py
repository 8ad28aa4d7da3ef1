"""Security properties that a one-line change could break, each pinned by a test that
fails under that change (issue 9): refresh-token reuse under concurrency, API keys that
outlive their owner's permissions, SCRAM replays, cross-process revocation of a single
session, the lock-out's length and an admin disabling themself."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from authgate.api import ApiRequest, ApiResponse, HttpApi
from authgate.errors import AccountLocked, BadCredentials, SessionRevoked
from authgate.flows import Call, Emit
from authgate.flows.sessions import refresh
from authgate.gate import AsyncGate, Gate
from authgate.identity import ANONYMOUS, Client, Identity
from authgate.permissions import RolePolicy
from authgate.stores import open_async_store, open_store
from authgate.testing import cheap_hasher
from authgate.tokens import TokenPair
from conftest import SECRET
from test_scram import b64url, params, unb64url

PW = "correct horse battery"
POLICY = RolePolicy({"operator": ["items:create", "items:read"], "admin": ["*:*"]})


def _sync_gate(url: str, **settings: Any) -> Gate:
    return Gate(store=open_store(url), hasher=cheap_hasher(), secret_key=SECRET, **settings)


@pytest.fixture(params=["memory", "sqlite", "json", "redis"])
def store_url(request: pytest.FixtureRequest, make_store_url: Callable[[str], str]) -> str:
    return make_store_url(request.param)


@pytest.fixture
def gate(store_url: str) -> Iterator[Gate]:
    g = _sync_gate(store_url, policy=POLICY)
    g.create_user("alice", PW, roles=["operator"])
    yield g
    g.close()


class ReadTogether:
    """Wraps a store's ``get_session`` so that `parties` concurrent callers all hold the
    record they read before any of them goes on: the interleaving a compare-and-set must
    survive, made certain instead of left to luck."""

    def __init__(
        self, store: Any, session_id: str, monkeypatch: pytest.MonkeyPatch, parties: int = 2
    ) -> None:
        barrier = threading.Barrier(parties, timeout=10)
        lock = threading.Lock()
        waiting = [parties]  # the first `parties` reads of that session wait; no others
        real = store.get_session

        def get_session(wanted: str) -> Any:
            found = real(wanted)
            with lock:
                wait = wanted == session_id and waiting[0] > 0
                waiting[0] -= wait
            if wait:
                barrier.wait()
            return found

        monkeypatch.setattr(store, "get_session", get_session)


def _in_threads(count: int, work: Callable[[], Any]) -> list[Any]:
    """Run `work` in `count` threads at once; each result, or the exception raised."""

    def attempt() -> Any:
        try:
            return work()
        except Exception as err:
            return err

    with ThreadPoolExecutor(count) as pool:
        return [f.result() for f in [pool.submit(attempt) for _ in range(count)]]


# -- 1. a refresh token is spent once, even by two requests at the same moment -----------


def _one_refresh_won(gate: Gate, first: TokenPair, outcomes: list[Any]) -> None:
    won = [o for o in outcomes if isinstance(o, TokenPair)]
    lost = [o for o in outcomes if not isinstance(o, TokenPair)]
    assert len(won) == 1 and len(lost) == 1, outcomes
    assert isinstance(lost[0], SessionRevoked), lost
    assert "reuse" in lost[0].detail
    # Reuse detection: the session is gone, with every token of it.
    assert gate.list_sessions("alice") == []
    for token in (first.access_token, won[0].access_token):
        with pytest.raises(SessionRevoked):
            gate.authenticate(token)
    with pytest.raises(SessionRevoked):
        gate.refresh(won[0].refresh_token)


def test_two_concurrent_refreshes_of_one_token_one_wins_and_the_session_ends(
    gate: Gate, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = gate.login("alice", PW)
    ReadTogether(gate.store, first.session_id, monkeypatch)
    outcomes = _in_threads(2, lambda: gate.refresh(first.refresh_token))
    _one_refresh_won(gate, first, outcomes)


@pytest.mark.parametrize("backend", ["memory", "sqlite", "redis"])
def test_two_concurrent_refreshes_on_the_async_face(
    backend: str, make_store_url: Callable[[str], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    agate = AsyncGate(
        store=open_async_store(make_store_url(backend)), hasher=cheap_hasher(), secret_key=SECRET
    )

    async def scenario() -> None:
        await agate.create_user("alice", PW, roles=["operator"])
        first = await agate.login("alice", PW)
        real = agate.store.get_session
        arrived: list[str] = []
        both = asyncio.Event()

        async def get_session(session_id: str) -> Any:
            found = await real(session_id)
            arrived.append(session_id)
            if len(arrived) == 2:
                both.set()
            await asyncio.wait_for(both.wait(), 10)
            return found

        monkeypatch.setattr(agate.store, "get_session", get_session)
        outcomes = await asyncio.gather(
            agate.refresh(first.refresh_token),
            agate.refresh(first.refresh_token),
            return_exceptions=True,
        )
        monkeypatch.setattr(agate.store, "get_session", real)
        won = [o for o in outcomes if isinstance(o, TokenPair)]
        lost = [o for o in outcomes if not isinstance(o, TokenPair)]
        assert len(won) == 1 and len(lost) == 1, outcomes
        assert isinstance(lost[0], SessionRevoked) and "reuse" in lost[0].detail, lost
        assert await agate.list_sessions("alice") == []
        for token in (first.access_token, won[0].access_token):
            with pytest.raises(SessionRevoked):
                await agate.authenticate(token)
        with pytest.raises(SessionRevoked):
            await agate.refresh(won[0].refresh_token)
        await agate.close()

    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(scenario())
    finally:
        loop.close()


def test_refresh_whose_swap_fails_revokes_the_session() -> None:
    """The flow, stepped: when the store's compare-and-set says another request spent
    the token first, the refresh is refused and the session revoked."""
    gate = _sync_gate("memory://")
    gate.create_user("alice", PW)
    pair = gate.login("alice", PW)
    flow = refresh(gate.rules, pair.refresh_token, Client("192.0.2.1"))
    calls: list[Call] = []
    events: list[str] = []

    def lose_the_race() -> None:
        op = next(flow)
        while True:
            if isinstance(op, Call):
                calls.append(op)
                if op.method == "rotate_refresh":
                    result: Any = False  # another request swapped first
                else:
                    result = getattr(gate.store, op.method)(*op.args)
            elif isinstance(op, Emit):
                events.append(op.event.event)
                result = None
            else:  # pragma: no cover - refresh hashes nothing
                raise AssertionError(op)
            op = flow.send(result)

    with pytest.raises(SessionRevoked, match="reuse"):
        lose_the_race()
    methods = [c.method for c in calls]
    assert methods[-2:] == ["rotate_refresh", "revoke_session"]
    assert calls[-1].args == (pair.session_id,)
    assert events == ["refresh_token_reuse"]
    with pytest.raises(SessionRevoked):
        gate.authenticate(pair.access_token)


# -- 2. a narrowed API key holds only what its owner still holds -------------------------


def test_narrowed_key_loses_a_permission_its_owner_lost(gate: Gate) -> None:
    owner = gate.authenticate(gate.login("alice", PW).access_token)
    key, described = gate.create_api_key(owner, "creator", ["items:create"])
    assert described.permissions == ("items:create",)
    assert gate.authenticate(key).can("items:create")
    gate.update_user("alice", roles=["viewer"])
    who = gate.authenticate(key)
    assert who.username == "alice"  # the key still works...
    assert not who.can("items:create")  # ...but only with what its owner holds now
    assert "items:create" not in who.permissions
    assert not gate.recheck(who).can("items:create")
    gate.update_user("alice", roles=["operator"])
    assert gate.authenticate(key).can("items:create")
    assert not gate.authenticate(key).can("items:read")  # never more than it lists


# -- 3. a SCRAM client-final message logs in once ---------------------------------------


class ScramClient:
    """Project Haystack's SCRAM handshake against `Gate.handle_api`, up to the final
    message (which the tests send themselves)."""

    def __init__(self, gate: Gate) -> None:
        self.gate = gate

    def send(self, authorization: str) -> ApiResponse:
        request = ApiRequest("GET", "/auth/scram", ANONYMOUS, authorization=authorization)
        response = self.gate.run(HttpApi.for_gate(self.gate).answer(request))
        assert response is not None
        return response

    @staticmethod
    def header(response: ApiResponse, name: str) -> str:
        return next(value for key, value in response.headers if key.lower() == name)

    def final_message(self, username: str, password: str) -> tuple[str, str]:
        """(the handshake token, the client-final Authorization value)."""
        import base64
        import hashlib
        import hmac
        import secrets

        hello = self.send(f"HELLO username={b64url(username.encode())}")
        assert hello.status == 401
        token = params(self.header(hello, "www-authenticate"))["handshakeToken"]
        bare = f"n={username},r={b64url(secrets.token_bytes(18))}"
        first = self.send(f"SCRAM handshakeToken={token}, data={b64url(('n,,' + bare).encode())}")
        assert first.status == 401
        server_first = unb64url(params(self.header(first, "www-authenticate"))["data"]).decode()
        attrs = dict(part.split("=", 1) for part in server_first.split(","))
        salted = hashlib.pbkdf2_hmac(
            "sha256", password.encode(), base64.b64decode(attrs["s"]), int(attrs["i"])
        )
        client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
        without_proof = f"c=biws,r={attrs['r']}"
        auth_message = f"{bare},{server_first},{without_proof}".encode()
        signature = hmac.new(hashlib.sha256(client_key).digest(), auth_message, hashlib.sha256)
        proof = bytes(a ^ b for a, b in zip(client_key, signature.digest(), strict=True))
        final = f"{without_proof},p={base64.b64encode(proof).decode()}"
        return token, f"SCRAM handshakeToken={token}, data={b64url(final.encode())}"


def _logged_in(response: ApiResponse) -> bool:
    return response.status == 200 and any(
        key.lower() == "authentication-info" and "authToken=" in value
        for key, value in response.headers
    )


def _refused_as_used(response: ApiResponse) -> None:
    assert response.status == 401, response
    assert response.data()["error"] == "invalid_scram"
    assert all(key.lower() != "authentication-info" for key, _ in response.headers)


@pytest.mark.parametrize("store_url", ["memory", "sqlite", "redis"], indirect=True)
def test_replayed_scram_final_message_is_refused(gate: Gate) -> None:
    scram = ScramClient(gate)
    _, final = scram.final_message("alice", PW)
    first = scram.send(final)
    assert _logged_in(first), first
    assert len(gate.list_sessions("alice")) == 1
    _refused_as_used(scram.send(final))  # the identical message, replayed
    assert len(gate.list_sessions("alice")) == 1


@pytest.mark.parametrize("store_url", ["memory", "sqlite", "redis"], indirect=True)
def test_two_concurrent_scram_final_messages_log_in_once(
    gate: Gate, monkeypatch: pytest.MonkeyPatch
) -> None:
    scram = ScramClient(gate)
    token, final = scram.final_message("alice", PW)
    ReadTogether(gate.store, token, monkeypatch)  # both read the handshake before either ends it
    outcomes = _in_threads(2, lambda: scram.send(final))
    assert [_logged_in(o) for o in outcomes].count(True) == 1, outcomes
    _refused_as_used(next(o for o in outcomes if not _logged_in(o)))
    assert len(gate.list_sessions("alice")) == 1


# -- 4. revoking one session reaches the session-check cache of other processes ---------


@pytest.mark.parametrize("how", ["revoke_session", "logout"])
def test_single_session_revocation_reaches_another_gates_cache(
    make_store_url: Callable[[str], str], how: str
) -> None:
    # A long cache lifetime: only the invalidation can end the cached answer in time.
    url = make_store_url("redis") + "&cache_ttl=60"
    here = Gate(store=url, hasher=cheap_hasher(), secret_key=SECRET)
    there = Gate(store=url, hasher=cheap_hasher(), secret_key=SECRET)  # its own store
    try:
        here.create_user("alice", PW)
        pair, other = here.login("alice", PW), here.login("alice", PW)
        deadline = time.monotonic() + 10
        while there.store.peek_session_user(pair.session_id, "alice") is None:  # type: ignore[attr-defined]
            assert there.authenticate(pair.access_token).session_id == pair.session_id
            assert time.monotonic() < deadline, "the second gate's cache never warmed"
            time.sleep(0.005)
        assert there.authenticate(pair.access_token).username == "alice"  # from the cache
        assert there.authenticate(other.access_token).username == "alice"

        if how == "logout":
            assert here.logout(here.authenticate(pair.access_token)) is True
        else:
            assert here.revoke_session("alice", pair.session_id) is True

        deadline = time.monotonic() + 10  # the cache entry would live 60 s
        while True:
            try:
                there.authenticate(pair.access_token)
            except SessionRevoked:
                break
            assert time.monotonic() < deadline, "another gate kept a revoked session alive"
            time.sleep(0.001)
        assert there.store.peek_session_user(pair.session_id, "alice") is None  # type: ignore[attr-defined]
        assert there.authenticate(other.access_token).session_id == other.session_id
    finally:
        here.close()
        there.close()


# -- 5. the lock-out lasts lockout_seconds, not the counting window ----------------------


def _counter_ttl(gate: Any, key: str) -> float:
    if hasattr(gate, "gate"):  # the async face
        ttl: float = gate.loop.run_until_complete(gate.gate.store.counter_ttl(key))
        return ttl
    found: float = gate.store.counter_ttl(key)
    return found


def test_lockout_lasts_lockout_seconds_not_the_window(make_gate: Any) -> None:
    g = make_gate(max_login_attempts=3, lockout_window=30, lockout_seconds=600)
    g.create_user("alice", PW)
    key = g.rules.lockout.key("alice")
    for _ in range(2):
        with pytest.raises(BadCredentials):
            g.login("alice", "wrong password")
    assert 0 < _counter_ttl(g, key) <= 30  # counting: the window
    with pytest.raises(BadCredentials):
        g.login("alice", "wrong password")  # the third: locks
    assert 590 <= _counter_ttl(g, key) <= 600
    with pytest.raises(AccountLocked) as info:
        g.login("alice", PW)
    assert 590 <= info.value.retry_after <= 600
    assert info.value.status == 429


# -- 6. an admin cannot disable themself, even when another admin remains ---------------


def _api(gate: Any, method: str, path: str, who: Identity, body: Any) -> ApiResponse:
    raw = json.dumps(body).encode() if body is not None else b""
    response = gate.run(HttpApi.for_gate(gate).answer(ApiRequest(method, path, who, raw)))
    assert response is not None
    return response  # type: ignore[no-any-return]


def test_admin_cannot_disable_themself_with_another_admin_present(make_gate: Any) -> None:
    g = make_gate()
    g.create_user("root", "root password 1", roles=["admin"])
    g.create_user("second", PW, roles=["admin"])  # so the last-admin rule does not apply
    pair = g.login("second", PW)
    me = g.authenticate(pair.access_token)
    for method in ("PATCH", "PUT"):
        for body in ({"enabled": False}, {"status": "inactive"}):
            r = _api(g, method, "/api/users/second", me, body)
            assert (r.status, r.data()["error"]) == (409, "last_admin"), (method, body)
            assert "your own account" in r.data()["detail"]
            got = _api(g, "GET", "/api/users/second", me, None)
            assert (got.data()["enabled"], got.data()["status"]) == (True, "active")
            assert g.authenticate(pair.access_token).username == "second"  # still signed in
    r = _api(g, "PATCH", "/api/users/root", me, {"enabled": False})  # another admin: fine
    assert (r.status, r.data()["status"]) == (200, "inactive")
