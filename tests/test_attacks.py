"""Attacks that once worked, each replayed through the public API or over HTTP.

Every test here reproduces a hole found by reading authgate as an attacker would, and
failed on the code before its fix: API keys turned into sessions or into wider keys,
cross-site WebSocket hijacking with a session cookie, ``..`` in resources, anonymous
requests that fill the store, mutable cached claims, stale verifier caches, two admins
demoting each other, and non-canonical token encodings.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import queue
import sqlite3
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient, WebSocketDenialResponse
from starlette.websockets import WebSocketDisconnect

from authgate import flows
from authgate.api import ApiRequest, HttpApi
from authgate.caches import LRU
from authgate.errors import (
    AuthGateError,
    InvalidSignature,
    LastAdminError,
    MalformedToken,
    PermissionDenied,
    SessionRevoked,
    UnknownKey,
    ValidationError,
    VersionConflict,
)
from authgate.flows import Call, Emit, Flow, scram
from authgate.flows.sessions import secret_digest
from authgate.gate import AsyncGate, Gate
from authgate.http import CredentialRules, read_credential
from authgate.identity import Identity
from authgate.middleware.asgi import WS_SESSION_REVOKED, AuthGateApi, AuthGateMiddleware
from authgate.permissions import PermissionSet, RolePolicy, parse_grant
from authgate.stores import open_store
from authgate.stores.base import Session
from authgate.testing import cheap_hasher
from authgate.tokens import Key, KeyRing, TokenVerifier
from authgate.types import Receive, Scope, Send
from authgate.users import User, utcnow
from conftest import SECRET, SQL_SCHEMES

PW = "correct horse battery"
POLICY = RolePolicy(
    {"viewer": ["items:read"], "operator": ["items:create"], "admin": ["*:*"]},
)


# -- an in-process HTTP deployment ---------------------------------------------------------


pushed_to_the_end = threading.Event()


async def echo_app(scope: Scope, receive: Receive, send: Send) -> None:
    """A WebSocket echo and a 200 for any HTTP request."""
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    if scope["type"] == "websocket" and scope["path"] == "/push":  # sends, never listens
        await receive()
        await send({"type": "websocket.accept"})
        for i in range(2000):
            await send({"type": "websocket.send", "text": f"tick {i}"})
            await asyncio.sleep(0.01)
        pushed_to_the_end.set()
        return
    if scope["type"] == "websocket":
        await receive()
        await send({"type": "websocket.accept"})
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return
            await send({"type": "websocket.send", "text": "echo:" + message.get("text", "")})
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


def deployment(gate: AsyncGate, **options: Any) -> AuthGateMiddleware:
    """The HTTP API in front of the echo app, behind the middleware."""
    return AuthGateMiddleware(AuthGateApi(echo_app, gate), gate, **options)


@pytest.fixture
def agate() -> AsyncGate:
    gate = AsyncGate(store="memory://", secret_key=SECRET, hasher=cheap_hasher(), policy=POLICY)
    asyncio.run(gate.create_user("root", PW, roles=["admin"]))
    asyncio.run(gate.create_user("olga", PW, roles=["operator"]))
    return gate


@pytest.fixture
def http(agate: AsyncGate) -> Iterator[httpx.Client]:
    with TestClient(deployment(agate)) as client:
        yield client


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def login(http: httpx.Client, username: str = "root") -> dict[str, Any]:
    reply = http.post("/auth/login", json={"username": username, "password": PW})
    assert reply.status_code == 200, reply.text
    body: dict[str, Any] = reply.json()
    return body


def new_key(http: httpx.Client, token: str, permissions: list[str] | None) -> dict[str, Any]:
    body: dict[str, Any] = {"name": "a key"}
    if permissions is not None:
        body["permissions"] = permissions
    reply = http.post("/auth/keys", json=body, headers=bearer(token))
    assert reply.status_code == 201, reply.text
    created: dict[str, Any] = reply.json()
    return created


# -- 1. an API key is never a refresh token ------------------------------------------------


def test_an_api_key_rewritten_as_a_refresh_token_is_refused(http: httpx.Client) -> None:
    admin = login(http)
    key = new_key(http, admin["access_token"], ["items:read"])
    key_id, secret = key["key"][len("agk_") :].split("_", 1)

    reply = http.post("/auth/refresh", json={"refresh_token": f"{key_id}.{secret}"})

    assert reply.status_code == 401, reply.text
    assert "access_token" not in reply.text
    # The key still works, narrowed, with the expiry it was given.
    listed = http.get("/auth/keys", headers=bearer(admin["access_token"])).json()["items"]
    assert [(k["id"], k["expires_at"]) for k in listed] == [(key_id, key["expires_at"])]
    assert (
        http.get("/api/users/", headers={"authorization": f"ApiKey {key['key']}"}).status_code
        == 403
    )


def test_refresh_refuses_a_session_of_another_kind_even_with_a_matching_hash() -> None:
    """Kind check alone (the hash domains aside): a record that is not a login session
    never refreshes, whatever its stored hash."""
    gate = Gate(store="memory://", secret_key=SECRET, hasher=cheap_hasher())
    gate.create_user("olga", PW)
    now = utcnow()
    for kind in ("apikey", "scram"):
        session_id = (kind * 32)[:32].encode().hex()[:32]
        secret = "s" * 43
        gate.store.create_session(
            Session(
                id=session_id,
                username="olga",
                expires_at=now + timedelta(hours=1),
                created_at=now,
                last_seen=now,
                refresh_hash=secret_digest("login", secret),
                kind=kind,
            )
        )
        with pytest.raises(SessionRevoked):
            gate.refresh(f"{session_id}.{secret}")
        assert gate.store.get_session(session_id) is not None  # refused, not revoked


def test_each_kind_of_session_secret_hashes_in_its_own_domain() -> None:
    secret = "x" * 43
    digests = {secret_digest(kind, secret) for kind in ("login", "apikey", "scram")}
    assert len(digests) == 3


def test_a_scram_handshake_token_is_not_a_refresh_token(agate: AsyncGate) -> None:
    hello = ApiRequest(
        "GET",
        "/auth/scram",
        Identity(),
        authorization="HELLO username=" + base64.urlsafe_b64encode(b"olga").decode(),
    )
    reply = asyncio.run(agate.run(HttpApi.for_gate(agate).answer(hello)))
    assert reply is not None
    handshake = dict(reply.headers)["www-authenticate"].split("handshakeToken=")[1]
    with pytest.raises(SessionRevoked):
        asyncio.run(agate.refresh(f"{handshake}.{'a' * 43}"))
    # The handshake was not touched: the client can go on with it.
    assert asyncio.run(agate.store.get_session(handshake)) is not None


def test_an_access_token_naming_an_api_key_as_its_session_is_refused() -> None:
    gate = Gate(store="memory://", secret_key=SECRET, hasher=cheap_hasher())
    gate.create_user("olga", PW)
    owner = gate.authenticate(gate.login("olga", PW).access_token)
    _, key = gate.create_api_key(owner, "k")
    user = gate.store.get_user("olga")
    assert user is not None
    forged = gate.verifier.issue(
        {"sub": "olga", "uid": user.id, "sid": key.id, "ver": user.version}, 60
    )
    with pytest.raises(SessionRevoked):
        gate.authenticate(forged)


# -- 2. an API key cannot widen itself or manage its account -------------------------------


@pytest.mark.parametrize("permissions", [None, ["items:read"], ["*:*"]])
def test_a_key_cannot_manage_its_account(http: httpx.Client, permissions: list[str] | None) -> None:
    admin = login(http)
    key = new_key(http, admin["access_token"], permissions)
    as_key = {"authorization": f"ApiKey {key['key']}"}
    session_id = http.get("/auth/me", headers=bearer(admin["access_token"])).json()["session_id"]

    refused = [
        http.post("/auth/keys", json={"name": "wider"}, headers=as_key),
        http.post(
            "/auth/keys", json={"name": "same", "permissions": ["items:read"]}, headers=as_key
        ),
        http.get("/auth/keys", headers=as_key),
        http.delete(f"/auth/keys/{key['id']}", headers=as_key),
        http.get("/auth/sessions", headers=as_key),
        http.delete(f"/auth/sessions/{session_id}", headers=as_key),
        http.put(
            "/auth/me/password",
            json={"current_password": PW, "new_password": "another long password"},
            headers=as_key,
        ),
    ]

    assert [r.status_code for r in refused] == [403] * len(refused), [r.text for r in refused]
    assert all("API key" in r.json()["detail"] for r in refused)
    listed = http.get("/auth/keys", headers=bearer(admin["access_token"])).json()["items"]
    assert [k["id"] for k in listed] == [key["id"]]
    assert http.get("/auth/me", headers=bearer(admin["access_token"])).status_code == 200
    assert http.post("/auth/login", json={"username": "root", "password": PW}).status_code == 200


def test_a_key_granted_account_keys_makes_only_narrower_keys(http: httpx.Client) -> None:
    olga = login(http, "olga")
    maker = new_key(http, olga["access_token"], ["items:read", "account:keys"])
    as_maker = {"authorization": f"ApiKey {maker['key']}"}

    def make(permissions: list[str] | None) -> httpx.Response:
        body: dict[str, Any] = {"name": "child"}
        if permissions is not None:
            body["permissions"] = permissions
        return http.post("/auth/keys", json=body, headers=as_maker)

    assert make(None).status_code == 403  # would act as olga: wider than the maker
    assert make(["items:create"]).status_code == 403  # olga holds it, the maker does not
    assert make(["account:password"]).status_code == 403  # not the maker's to pass on
    child = make(["items:read"])
    assert child.status_code == 201, child.text
    grandchild = make(["items:read", "account:keys"])
    assert grandchild.status_code == 201
    assert http.get("/auth/keys", headers=as_maker).status_code == 200

    child_key = {"authorization": f"ApiKey {child.json()['key']}"}
    assert (
        http.post(
            "/auth/keys", json={"name": "x", "permissions": ["items:read"]}, headers=child_key
        ).status_code
        == 403
    )


def test_a_key_granted_account_password_may_change_it(http: httpx.Client) -> None:
    olga = login(http, "olga")
    key = new_key(http, olga["access_token"], ["account:password"])
    reply = http.put(
        "/auth/me/password",
        json={"current_password": PW, "new_password": "another long password"},
        headers={"authorization": f"ApiKey {key['key']}"},
    )
    assert reply.status_code == 204, reply.text


def test_the_python_api_applies_the_same_account_rights() -> None:
    gate = Gate(store="memory://", secret_key=SECRET, hasher=cheap_hasher(), policy=POLICY)
    gate.create_user("olga", PW, roles=["operator"])
    owner = gate.authenticate(gate.login("olga", PW).access_token)
    raw, _ = gate.create_api_key(owner, "reader", ["items:read"])
    as_key = gate.authenticate(raw)
    with pytest.raises(PermissionDenied):
        gate.change_password(as_key, PW, "another long password")
    with pytest.raises(PermissionDenied):
        gate.create_api_key(as_key, "wider")
    with pytest.raises(PermissionDenied):
        gate.create_api_key(as_key, "same", ["items:read"])
    assert gate.login("olga", PW).access_token  # the password did not change


# -- 3. cross-site WebSocket hijacking -----------------------------------------------------


def cookie_gate() -> tuple[AsyncGate, str]:
    gate = AsyncGate(store="memory://", secret_key=SECRET, hasher=cheap_hasher())
    asyncio.run(gate.create_user("olga", PW))
    return gate, asyncio.run(gate.login("olga", PW)).access_token


@pytest.mark.parametrize(
    "origin",
    [
        "https://evil.example",
        "http://testserver.evil.example",
        "https://evil.example/testserver",
        "ftp://testserver",
        "null",
        "",
        None,
    ],
)
def test_a_cross_site_websocket_with_the_session_cookie_is_refused(origin: str | None) -> None:
    gate, token = cookie_gate()
    rules = CredentialRules(
        cookie_name="session", websocket_origins=frozenset({"https://app.example"})
    )
    headers = {"cookie": f"session={token}"}
    if origin is not None:
        headers["origin"] = origin
    with TestClient(deployment(gate, rules=rules)) as client:
        with (
            pytest.raises(WebSocketDenialResponse) as denied,
            client.websocket_connect("/ws", headers=headers),
        ):
            pass  # accepted: the test fails with "DID NOT RAISE"
        assert denied.value.status_code == 403
        assert "origin" in denied.value.json()["detail"]


@pytest.mark.parametrize(
    "origin",
    ["http://testserver", "https://testserver", "https://app.example", "HTTPS://APP.EXAMPLE/"],
)
def test_a_websocket_from_an_allowed_origin_uses_the_cookie(origin: str) -> None:
    gate, token = cookie_gate()
    rules = CredentialRules(
        cookie_name="session", websocket_origins=frozenset({"https://app.example"})
    )
    with (
        TestClient(deployment(gate, rules=rules)) as client,
        client.websocket_connect(
            "/ws", headers={"cookie": f"session={token}", "origin": origin}
        ) as ws,
    ):
        ws.send_text("hi")
        assert ws.receive_text() == "echo:hi"


def test_a_websocket_with_a_header_token_needs_no_origin_check() -> None:
    gate, token = cookie_gate()
    rules = CredentialRules(cookie_name="session")
    headers = {"authorization": f"Bearer {token}", "origin": "https://elsewhere.example"}
    with (
        TestClient(deployment(gate, rules=rules)) as client,
        client.websocket_connect("/ws", headers=headers) as ws,
    ):
        ws.send_text("hi")
        assert ws.receive_text() == "echo:hi"


# -- 4. dot segments in resources ----------------------------------------------------------


@pytest.mark.parametrize(
    "permission",
    [
        "streams/1/../2:send",
        "docs/alice/../bob:read",
        "docs/./alice:read",
        "..:read",
        "docs/%2e%2e/bob:read",
        "docs/%2E/x:read",
        "docs//bob:read",
        "/docs:read",
        "docs/:read",
        "docs\\..\\bob:read",
    ],
)
def test_dot_and_empty_segments_are_refused_in_grants_and_checks(permission: str) -> None:
    with pytest.raises(ValidationError):
        parse_grant(permission)
    with pytest.raises(ValidationError):
        PermissionSet([permission])
    held = PermissionSet(["streams/1:send", "docs/alice:read"])
    with pytest.raises(ValidationError):
        held.allows(permission)


def test_a_path_grant_never_covers_a_sibling_through_dot_dot() -> None:
    held = PermissionSet(["streams/1:send", "docs/alice:read"])
    for sneaky in ("streams/1/../2:send", "docs/alice/../bob:read"):
        try:
            allowed = held.allows(sneaky)
        except ValidationError:
            allowed = False
        assert not allowed


# -- 5. anonymous requests do not fill the store -------------------------------------------


def _records(make_gate: Any, gate: Any, url: str) -> int:
    """Sessions and counters the store keeps, read behind its back."""
    backend = make_gate.backend
    store = getattr(gate, "gate", gate).store
    store = getattr(store, "sync", store)
    if backend == "memory":
        return len(store._sessions) + len(store._counters) + len(store._user_sessions)
    if backend == "sqlite":
        with sqlite3.connect(url[len("sqlite:///") :]) as db:
            sessions = db.execute("SELECT count(*) FROM sessions").fetchone()[0]
            counters = db.execute("SELECT count(*) FROM counters").fetchone()[0]
            return int(sessions + counters)
    if backend == "json":
        folder = Path(url[len("json:///") :])
        total = 0
        for name in ("sessions", "counters"):
            file = folder / f"{name}.json"
            total += len(json.loads(file.read_text())) if file.exists() else 0
        return total
    if backend in SQL_SCHEMES:
        import sqlalchemy as sa

        from authgate.stores.sql.faces import migration_engine

        engine = migration_engine(store.settings)
        try:
            with engine.connect() as conn:
                return sum(
                    conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
                    for table in (store.tables.sessions, store.tables.counters)
                )
        finally:
            engine.dispose()
    from authgate.stores.redis import RedisStore

    raw = RedisStore(url, check=False)  # its client: one server, the cluster, the primary
    prefix = url.split("prefix=")[1]
    try:  # what is filed under users' shards ({prefix:1a2b}:...), not the store's own
        return sum(1 for _ in raw._client.scan_iter(match=f"{{{prefix}:*"))
    finally:
        raw.close()


def test_anonymous_handshakes_and_failed_logins_leave_nothing_once_expired(
    make_gate: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(scram, "HANDSHAKE_SECONDS", 1)
    monkeypatch.setattr(scram, "HELLO_WINDOW", 1, raising=False)
    gate = make_gate(lockout_window=1, lockout_seconds=1)
    store = getattr(gate, "gate", gate).store
    sweeper = getattr(getattr(store, "sync", store), "sweeper", None)
    if sweeper is not None:
        sweeper.interval = 0.5
    url = store.url

    def hello(name: str) -> None:
        encoded = base64.urlsafe_b64encode(name.encode()).decode()
        request = ApiRequest(
            "GET", "/auth/scram", Identity(), authorization=f"HELLO username={encoded}"
        )
        reply = gate.run(HttpApi.for_gate(gate).answer(request))
        assert reply.status == 401 and "handshakeToken=" in dict(reply.headers)["www-authenticate"]

    for i in range(40):
        hello(f"made-up-{i}")
        with pytest.raises(AuthGateError):
            gate.login(f"nobody-{i}", "wrong password 1")
    assert _records(make_gate, gate, url) >= 80
    time.sleep(1.2)
    hello("one-more")  # a write: it sweeps what expired

    assert _records(make_gate, gate, url) <= 3  # that HELLO's own records


@pytest.mark.parametrize("backend", ["memory", "sqlite", "json", "postgres", "mariadb"])
def test_purge_expired_deletes_what_expired(
    backend: str, make_store_url: Callable[[str], str]
) -> None:
    store = open_store(make_store_url(backend))
    now = utcnow()
    for i in range(5):
        store.create_session(
            Session(
                id=f"{i:032x}",
                username=f"ghost{i}",
                expires_at=now - timedelta(seconds=1),
                created_at=now - timedelta(seconds=2),
                last_seen=now - timedelta(seconds=2),
            )
        )
    store.incr("made-up", 0.001)
    time.sleep(0.01)
    # The JSON store already sweeps its file at every session write: one is left.
    assert store.purge_expired() == (2 if backend == "json" else 6)  # type: ignore[attr-defined]
    assert store.purge_expired() == 0  # type: ignore[attr-defined]
    store.close()


# -- 6. read-only claims, verifier caches, canonical encodings -----------------------------


def verifier(secret: str = SECRET, **options: Any) -> TokenVerifier:
    return TokenVerifier(
        KeyRing([Key.hmac(secret)]), issuer=options.get("issuer", "authgate"), audience="authgate"
    )


def test_claims_handed_out_are_read_only() -> None:
    v = verifier()
    token = v.issue({"sub": "olga", "sid": "s1", "ver": 1, "roles": ["viewer"]}, 60)
    claims = v.verify(token)
    with pytest.raises(TypeError):
        claims["exp"] = claims["exp"] + 10_000  # type: ignore[index]
    with pytest.raises(AttributeError):
        claims["roles"].append("admin")
    again = v.verify(token)
    assert list(again["roles"]) == ["viewer"]


def test_identity_claims_are_read_only() -> None:
    gate = Gate(store="memory://", secret_key=SECRET, hasher=cheap_hasher(), stateless=True)
    gate.create_user("olga", PW, roles=["viewer"])
    token = gate.login("olga", PW).access_token
    identity = gate.authenticate(token)
    with pytest.raises(TypeError):
        identity.claims["roles"] = ["admin"]  # type: ignore[index]
    assert gate.authenticate(token).roles == {"viewer"}


def test_a_removed_key_verifies_nothing_even_for_a_cached_header() -> None:
    old, new = Key.hmac(SECRET), Key.hmac("a-new-secret-that-is-long-enough-9876543210")
    v = TokenVerifier(KeyRing([old]), issuer="authgate", audience="authgate")
    seen = v.issue({"sub": "olga", "sid": "s1", "ver": 1}, 60)
    never_seen = v.issue({"sub": "eve", "sid": "s2", "ver": 1}, 60)
    v.verify(seen)  # caches the header -> key decision and the claims

    v.ring = KeyRing([new])

    with pytest.raises(UnknownKey):
        v.verify(never_seen)
    with pytest.raises(UnknownKey):
        v.verify(seen)


def test_a_changed_issuer_or_audience_forgets_verified_tokens() -> None:
    v = verifier()
    token = v.issue({"sub": "olga", "sid": "s1", "ver": 1}, 60)
    v.verify(token)
    v.issuer = "someone-else"
    with pytest.raises(AuthGateError):
        v.verify(token)
    v.issuer = "authgate"
    v.verify(token)
    v.audience = "another-api"
    with pytest.raises(AuthGateError):
        v.verify(token)


def test_a_key_ring_cannot_change_in_place() -> None:
    ring = KeyRing([Key.hmac(SECRET)])
    with pytest.raises(AttributeError):
        ring.keys = (Key.hmac("a-new-secret-that-is-long-enough-9876543210"),)  # type: ignore[misc]
    with pytest.raises(TypeError):
        ring.by_kid["x"] = ring.current  # type: ignore[index]


def _respell_last_char(segment: str) -> str:
    """The same bytes, spelt with non-zero padding bits in the last character."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    index = alphabet.index(segment[-1])
    bits = {2: 0b1111, 3: 0b11}[len(segment) % 4]
    changed = segment[:-1] + alphabet[index | bits]
    assert changed != segment
    assert base64.urlsafe_b64decode(
        changed + "=" * (-len(changed) % 4)
    ) == base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    return changed


@pytest.mark.parametrize("part", [0, 1, 2])
def test_only_canonical_base64url_verifies(part: int) -> None:
    v = verifier()
    token = v.issue({"sub": "olga", "sid": "s1", "ver": 1}, 60)
    segments = token.split(".")
    while len(segments[part]) % 4 not in (2, 3):  # need a segment with spare bits
        token = v.issue({"sub": "olga" + "x" * len(token), "sid": "s1", "ver": 1}, 60)
        segments = token.split(".")
    segments[part] = _respell_last_char(segments[part])
    with pytest.raises((MalformedToken, InvalidSignature)):
        v.verify(".".join(segments))
    v.verify(token)


def _module_globals_holding(secret: str) -> list[str]:
    """The authgate module globals (containers, one level deep) that hold `secret`."""
    found = []
    for name, module in list(sys.modules.items()):
        if not name.startswith("authgate"):
            continue
        for attr, value in list(vars(module).items()):
            kind = type(value)  # never isinstance: a proxy (Flask's) would resolve
            entries = value._entries if kind is LRU else value
            if type(entries) in (dict, OrderedDict, list, set, tuple, frozenset):
                flat = [*entries, *(entries.values() if isinstance(entries, dict) else ())]
                if any(secret == item or (isinstance(item, str) and secret in item)
                       for item in flat):  # fmt: skip
                    found.append(f"{name}.{attr}")
    return found


def test_credentials_read_are_kept_in_no_module_global() -> None:
    """A bearer token lives in the objects serving it, never in a process-wide global
    (a heap dump, a debug page listing module state)."""
    gate = Gate(store="memory://", secret_key=SECRET, hasher=cheap_hasher())
    gate.create_user("olga", "olga password 1")
    token = gate.login("olga", "olga password 1").access_token
    assert read_credential(
        authorization=f"Bearer {token}", cookie=None, csrf=None, method="GET", query="",
        websocket=False, rules=CredentialRules(),
    ) == token  # fmt: skip
    assert gate.authenticate(token).username == "olga"
    padded = "Bearer abc.def.ghi" + " " * 100_000
    assert read_credential(
        authorization=padded, cookie=None, csrf=None, method="GET", query="",
        websocket=False, rules=CredentialRules(),
    ) == "abc.def.ghi"  # fmt: skip
    assert _module_globals_holding(token) == []
    assert _module_globals_holding(token.split(".")[2]) == []


# -- 6. two admins demoting each other -----------------------------------------------------


def step_until(flow: Flow[Any], store: Any, stop: Callable[[Any], bool]) -> Any:
    """Drive `flow` against `store` until it yields an op `stop` accepts; return that op
    (not yet run).  Errors the store raises are thrown into the flow, as the drivers do."""
    op = next(flow)
    while not stop(op):
        if isinstance(op, Emit):  # audit events: nothing to run
            op = flow.send(None)
            continue
        assert isinstance(op, Call), op
        try:
            result = getattr(store, op.method)(*op.args)
        except AuthGateError as err:
            op = flow.throw(err)
            continue
        op = flow.send(result)
    return op


def finish(flow: Flow[Any], store: Any, op: Any) -> Any:
    try:
        while True:
            if isinstance(op, Emit):
                op = flow.send(None)
                continue
            assert isinstance(op, Call), op
            op = flow.send(getattr(store, op.method)(*op.args))
    except StopIteration as done:
        return done.value


def test_two_admins_demoting_each_other_at_once_leave_an_admin(store: Any) -> None:
    from authgate.users import RoleHierarchy

    roles = RoleHierarchy()
    for name in ("alice", "bob"):
        store.create_user(User.new(name, roles=["admin"]))
    writes = lambda op: isinstance(op, Call) and op.method == "update_user"  # noqa: E731
    demote_alice = flows.users.update_user("alice", roles, roles=["viewer"])
    demote_bob = flows.users.update_user("bob", roles, roles=["viewer"])

    first = step_until(demote_alice, store, writes)  # checked: bob is still admin
    with pytest.raises(VersionConflict):  # bob's check runs while alice's write waits
        step_until(demote_bob, store, writes)
    finish(demote_alice, store, first)

    admins = [
        u for u in (store.get_user("alice"), store.get_user("bob")) if u and "admin" in u.roles
    ]
    assert [u.username for u in admins] == ["bob"]
    # The lock is released: the next change to the admins is judged normally.
    with pytest.raises(LastAdminError):
        finish(*_started(flows.users.update_user("bob", roles, roles=["viewer"]), store))
    store.create_user(User.new("carol", roles=["admin"]))
    finish(*_started(flows.users.update_user("bob", roles, roles=["viewer"]), store))


def _started(flow: Flow[Any], store: Any) -> tuple[Flow[Any], Any, Any]:
    return flow, store, next(flow)


def test_two_admins_disabling_and_deleting_each_other_leave_an_admin(store: Any) -> None:
    from authgate.users import RoleHierarchy

    roles = RoleHierarchy()
    for name in ("alice", "bob"):
        store.create_user(User.new(name, roles=["admin"]))
    disable_alice = flows.users.update_user("alice", roles, enabled=False)
    delete_bob = flows.users.delete_user("bob", roles, acting="alice")

    first = step_until(disable_alice, store, lambda op: op.method == "update_user")
    with pytest.raises(VersionConflict):
        step_until(delete_bob, store, lambda op: op.method == "delete_user")
    finish(disable_alice, store, first)
    bob = store.get_user("bob")
    assert bob is not None and bob.enabled and "admin" in bob.roles


# -- 6. API-key identities on long-lived connections ---------------------------------------


def test_an_api_key_identity_can_be_rechecked_and_dies_with_its_key() -> None:
    gate = Gate(store="memory://", secret_key=SECRET, hasher=cheap_hasher(), policy=POLICY)
    gate.create_user("olga", PW, roles=["operator"])
    owner = gate.authenticate(gate.login("olga", PW).access_token)
    raw, key = gate.create_api_key(owner, "socket", ["items:read"])
    identity = gate.authenticate(raw)
    assert identity.session_id == key.id
    again = gate.recheck(identity)
    assert again.username == "olga" and again.can("items:read") and not again.can("items:create")
    gate.revoke_api_key("olga", key.id)
    with pytest.raises(SessionRevoked):
        gate.recheck(identity)


def test_a_websocket_opened_with_an_api_key_stays_open_and_closes_when_revoked() -> None:
    gate = AsyncGate(store="memory://", secret_key=SECRET, hasher=cheap_hasher(), policy=POLICY)
    asyncio.run(gate.create_user("olga", PW, roles=["operator"]))
    with TestClient(deployment(gate, websocket_recheck_seconds=0.05)) as client:
        owner = client.post("/auth/login", json={"username": "olga", "password": PW}).json()
        key = new_key(client, owner["access_token"], ["items:read"])
        with client.websocket_connect(
            "/ws", headers={"authorization": f"ApiKey {key['key']}"}
        ) as ws:
            ws.send_text("one")
            assert ws.receive_text() == "echo:one"
            time.sleep(0.2)  # several idle rechecks pass
            ws.send_text("two")
            assert ws.receive_text() == "echo:two"
            gone = client.delete(f"/auth/keys/{key['id']}", headers=bearer(owner["access_token"]))
            assert gone.status_code == 204
            with pytest.raises(WebSocketDisconnect) as closed:
                ws.receive_text()
            assert closed.value.code == WS_SESSION_REVOKED


@pytest.mark.parametrize("backend", ["memory", "sqlite", "json", "redis"])
@pytest.mark.parametrize("credential", ["session", "api key"])
def test_an_idle_websocket_is_closed_soon_after_its_session_ends(
    backend: str, credential: str, make_store_url: Callable[[str], str]
) -> None:
    url = make_store_url(backend)
    gate = AsyncGate(store=url, secret_key=SECRET, hasher=cheap_hasher(), policy=POLICY)
    if backend == "memory":
        asyncio.run(gate.create_user("olga", PW, roles=["operator"]))
    else:  # seeded as another process would (the async Redis client is bound to its loop)
        seeder = Gate(store=url, secret_key=SECRET, hasher=cheap_hasher(), policy=POLICY)
        seeder.create_user("olga", PW, roles=["operator"])
        seeder.close()
    with TestClient(deployment(gate, websocket_recheck_seconds=0.1)) as client:
        pair = login(client, "olga")
        if credential == "session":
            headers = bearer(pair["access_token"])
        else:
            key = new_key(client, pair["access_token"], ["items:read"])
            headers = {"authorization": f"ApiKey {key['key']}"}
        with client.websocket_connect("/ws", headers=headers) as ws:
            ws.send_text("hi")
            assert ws.receive_text() == "echo:hi"
            if credential == "session":
                ended = client.post("/auth/logout", headers=headers)
            else:
                ended = client.delete(
                    f"/auth/keys/{key['id']}", headers=bearer(pair["access_token"])
                )
            assert ended.status_code == 204
            # The client sends nothing: only the watch can close the socket.
            arrived: queue.Queue[Any] = queue.Queue()
            threading.Thread(target=lambda: arrived.put(ws.receive()), daemon=True).start()
            try:
                message = arrived.get(timeout=5)  # 0.1 s interval; generous for a busy machine
            except queue.Empty:
                ws.send_text("wake")  # unblock the reader, then fail
                arrived.get(timeout=5)
                pytest.fail("the idle socket was still open 5 s after its session ended")
        assert message["type"] == "websocket.close"
        assert message["code"] == WS_SESSION_REVOKED


def test_an_app_that_only_pushes_is_stopped_when_the_session_ends() -> None:
    gate, token = cookie_gate()
    pushed_to_the_end.clear()
    with (
        TestClient(deployment(gate, websocket_recheck_seconds=0.05)) as client,
        client.websocket_connect("/push", headers=bearer(token)) as ws,
    ):
        assert ws.receive_text() == "tick 0"
        assert client.post("/auth/logout", headers=bearer(token)).status_code == 204
        arrived: queue.Queue[Any] = queue.Queue()

        def read() -> None:  # until the close: the app sends ticks meanwhile
            while (message := ws.receive())["type"] != "websocket.close":
                pass
            arrived.put(message)

        threading.Thread(target=read, daemon=True).start()
        try:
            closed = arrived.get(timeout=10)  # 0.05 s interval; a bound, not a hang
        except queue.Empty:
            pytest.fail("the pushing socket was still open 10 s after its session ended")
    assert closed["code"] == WS_SESSION_REVOKED
    assert not pushed_to_the_end.is_set()  # the app was stopped, not left pushing


@pytest.mark.parametrize("path", ["/push", "/echo"], ids=["app-only-sends", "app-only-listens"])
async def test_the_close_goes_out_even_when_the_app_stops_while_it_is_sent(path: str) -> None:
    """The watch's 4401 must reach the client although sending it yields (a slow
    network) and the app stops meanwhile: the middleware then lets go of the socket
    only after the close is out (it was cancelled half-sent, and the client saw none)."""
    gate = AsyncGate(store="memory://", secret_key=SECRET, hasher=cheap_hasher())
    await gate.create_user("olga", PW)
    pair = await gate.login("olga", PW)
    inbox: asyncio.Queue[Any] = asyncio.Queue()
    await inbox.put({"type": "websocket.connect"})
    sent: list[Any] = []

    async def server_send(message: Any) -> None:
        if message["type"] == "websocket.close":
            await asyncio.sleep(0.05)  # the frame takes a while to go out
        sent.append(message)

    scope = {
        "type": "websocket",
        "path": path,
        "headers": [(b"authorization", f"Bearer {pair.access_token}".encode())],
        "query_string": b"",
        "client": ("203.0.113.9", 4000),
        "server": ("testserver", 80),
    }
    app = deployment(gate, websocket_recheck_seconds=0.02)
    served = asyncio.ensure_future(app(scope, inbox.get, server_send))
    while not sent:
        await asyncio.sleep(0.005)
    await gate.logout(await gate.authenticate(pair.access_token))
    await asyncio.wait_for(served, 10)
    kinds = [m["type"] for m in sent]
    assert kinds[0] == "websocket.accept" and kinds[-1] == "websocket.close", kinds
    assert kinds.count("websocket.close") == 1
    assert sent[-1]["code"] == WS_SESSION_REVOKED


# -- 6. a symlinked SQLite database ---------------------------------------------------------


def test_a_symlinked_sqlite_path_sees_changes_made_through_the_real_path(tmp_path: Path) -> None:
    real = tmp_path / "real.db"
    link = tmp_path / "link.db"
    open_store(f"sqlite:///{real}").close()
    os.symlink(real, link)
    (tmp_path / "link.db-shm").write_bytes(b"\0" * 32768)  # a stale file next to the link
    gate = Gate(store=f"sqlite:///{link}", secret_key=SECRET, hasher=cheap_hasher())
    gate.create_user("olga", PW)
    token = gate.login("olga", PW).access_token
    assert gate.authenticate(token).username == "olga"  # the session check is now cached

    other = Gate(store=f"sqlite:///{real}", secret_key=SECRET, hasher=cheap_hasher())
    other.update_user("olga", enabled=False)

    with pytest.raises(SessionRevoked):
        gate.authenticate(token)
