"""The session-check cache never outlives a revocation made by another process."""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import hashlib
import multiprocessing
import os
import socket
import threading
import time
import tracemalloc
import uuid
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

from _workers import disable_user, revoke_user_sessions
from authgate.errors import SessionRevoked
from authgate.gate import Gate
from authgate.testing import cheap_hasher
from conftest import SECRET

PW = "correct horse battery"


@pytest.mark.parametrize("change", [revoke_user_sessions, disable_user], ids=["revoke", "disable"])
def test_change_in_another_process_ends_cached_sessions(
    persistent_url: str, change: Callable[[str, str], Any]
) -> None:
    gate = Gate(store=persistent_url, hasher=cheap_hasher(), secret_key=SECRET)
    gate.create_user("alice", PW)
    token = gate.login("alice", PW).access_token
    for _ in range(3):  # warm the cache
        assert gate.authenticate(token).username == "alice"
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(1, mp_context=ctx) as pool:
        pool.submit(change, persistent_url, "alice").result()
    changed_at = time.monotonic()
    # The cache entry would live 60 s; the invalidation must end it well before.
    deadline = changed_at + 2.0
    while True:
        try:
            gate.authenticate(token)
        except SessionRevoked:
            break
        assert time.monotonic() < deadline, "a cached session outlived its revocation"
        time.sleep(0.001)
    gate.close()


def test_change_in_the_same_process_is_seen_at_once(persistent_url: str) -> None:
    gate = Gate(store=persistent_url, hasher=cheap_hasher(), secret_key=SECRET)
    gate.create_user("alice", PW)
    pairs = [gate.login("alice", PW) for _ in range(2)]
    for pair in pairs:
        gate.authenticate(pair.access_token)
    gate.logout(gate.authenticate(pairs[0].access_token))
    with pytest.raises(SessionRevoked):
        gate.authenticate(pairs[0].access_token)
    assert gate.authenticate(pairs[1].access_token).username == "alice"
    gate.update_user("alice", roles=["operator"])
    assert gate.authenticate(pairs[1].access_token).roles == {"operator"}
    gate.close()


@pytest.fixture(params=["sync", "async"])
def deaf_redis(request: pytest.FixtureRequest, make_store_url: Callable[[str], str]) -> Any:
    """A Redis store whose session cache is on but whose change feed is stopped, so
    only this process's own evictions can end a cached answer."""
    from authgate.stores.redis import AsyncRedisStore, RedisStore

    url = make_store_url("redis")
    store: Any = RedisStore(url) if request.param == "sync" else AsyncRedisStore(url)
    cache = store._session_cache()
    deadline = time.monotonic() + 5
    while not cache.enabled:  # the subscription is confirmed
        assert time.monotonic() < deadline
        time.sleep(0.005)
    store._stop_invalidator()
    assert cache.enabled
    cache.deaf_after = None  # trust it unheard: only this process's evictions end answers
    return store


async def _call(store: Any, name: str, *args: Any) -> Any:
    result = getattr(store, name)(*args)
    return await result if hasattr(result, "__await__") else result


@pytest.mark.parametrize(
    ("change", "args"),
    [
        ("update_user", None),
        ("delete_user", ("alice",)),
        ("revoke_session", None),
        ("revoke_user_sessions", ("alice",)),
    ],
)
async def test_a_change_this_process_makes_ends_its_cached_answer_at_once(
    deaf_redis: Any, change: str, args: tuple[str, ...] | None
) -> None:
    from datetime import timedelta

    from authgate.users import Session, User, utcnow

    store = deaf_redis
    user = await _call(store, "create_user", User.new("alice"))
    session = Session(id="5e55" * 8, username="alice", expires_at=utcnow() + timedelta(hours=1))
    await _call(store, "create_session", session)
    await _call(store, "get_session_user", session.id, "alice")  # now cached
    assert store.peek_session_user(session.id, "alice") is not None
    if change == "update_user":
        args = (user.changed(first_name="Al"), user.version)
    elif change == "revoke_session":
        args = (session.id,)
    await _call(store, change, *(args or ()))
    assert store.peek_session_user(session.id, "alice") is None
    await _call(store, "close")


async def test_a_touch_this_process_makes_shows_in_its_cached_answer(deaf_redis: Any) -> None:
    from datetime import timedelta

    from authgate.users import Session, User, utcnow

    store = deaf_redis
    await _call(store, "create_user", User.new("alice"))
    session = Session(id="5e55" * 8, username="alice", expires_at=utcnow() + timedelta(hours=1))
    await _call(store, "create_session", session)
    await _call(store, "get_session_user", session.id, "alice")
    later = session.last_seen + timedelta(seconds=90)
    assert await _call(store, "touch_session", session.id, later) is True
    cached = store.peek_session_user(session.id, "alice")
    assert cached is not None and cached[0].last_seen == later
    await _call(store, "close")


# -- a feed that goes silent turns the cache off ------------------------------------------


def test_a_feed_unheard_for_deaf_after_stops_the_cache_answering() -> None:
    from datetime import timedelta

    from authgate.stores.cache import SessionCache
    from authgate.users import Session, User, utcnow

    cache = SessionCache(ttl=60, deaf_after=2.0)
    user = User.new("alice")
    session = Session(id="5e55" * 8, username="alice", expires_at=utcnow() + timedelta(hours=1))
    cache.put(session, user, cache.generation)
    assert cache.get(session.id, "alice") is None  # never heard: off
    now = time.monotonic()
    cache.heard(now)
    assert cache.get(session.id, "alice") is not None
    cache.heard(now - 60)  # an older heartbeat never moves the mark back
    assert cache.get(session.id, "alice") is not None
    fresh = SessionCache(ttl=60, deaf_after=2.0)
    fresh.put(session, user, fresh.generation)
    fresh.heard(time.monotonic() - 2.1)  # heard, but longer ago than deaf_after
    assert fresh.get(session.id, "alice") is None
    fresh.heard(time.monotonic() - 1.5)
    assert fresh.get(session.id, "alice") is not None
    fresh.disable()  # a lost connection forgets what was heard
    fresh.enable()
    fresh.put(session, user, fresh.generation)
    assert fresh.get(session.id, "alice") is None
    fresh.enable(heard_since=time.monotonic())
    fresh.put(session, user, fresh.generation)
    assert fresh.get(session.id, "alice") is not None
    without_feed = SessionCache(ttl=60)  # SQLite: no feed to hear
    without_feed.put(session, user, without_feed.generation)
    assert without_feed.get(session.id, "alice") is not None


def test_a_feed_thread_gone_leaves_the_cache_answering_no_longer_than_deaf_after(
    make_store_url: Callable[[str], str],
) -> None:
    """Should the listening thread ever die without turning the cache off, the cache
    stops answering by itself once nothing has been heard for `DEAF_AFTER` seconds."""
    from authgate.stores.redis.invalidator import DEAF_AFTER

    gate = Gate(store=make_store_url("redis"), hasher=cheap_hasher(), secret_key=SECRET)
    store: Any = gate.store
    gate.create_user("alice", PW)
    token = gate.login("alice", PW).access_token
    sid = gate.authenticate(token).session_id
    deadline = time.monotonic() + 5
    while store.peek_session_user(sid, "alice") is None:
        gate.authenticate(token)
        assert time.monotonic() < deadline, "the cache never warmed"
        time.sleep(0.005)
    store._stop_invalidator()  # gone, and the cache not told
    stopped = time.monotonic()
    assert store._cache.enabled
    while store.peek_session_user(sid, "alice") is not None:
        assert time.monotonic() - stopped < DEAF_AFTER + 1.0, "answered while deaf"
        time.sleep(0.01)
    assert time.monotonic() - stopped > DEAF_AFTER - 0.6  # heard up to a heartbeat before
    assert gate.authenticate(token).session_id == sid  # read from Redis instead
    gate.close()


class SilencingProxy:
    """A TCP proxy in front of a server (Redis, PostgreSQL) that can silence its
    subscriber connections (those that sent `marker`: ``SUBSCRIBE``, ``LISTEN``) without
    a word: bytes either way are dropped, no socket is closed (a partition, not a
    crash); or `cut` every connection, refusing new ones until `restore` (an outage)."""

    def __init__(self, target: tuple[str, int], marker: bytes = b"SUBSCRIBE") -> None:
        self.target = target
        self.marker = marker
        self.down = False
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.silenced: set[socket.socket] = set()
        self.subscribers: set[socket.socket] = set()
        #: Silence every subscriber from its first word (its SUBSCRIBE is lost too).
        self.deafen_new_subscribers = False
        self.sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self.down:
                client.close()
                continue
            server = socket.create_connection(self.target)
            self.sockets += [client, server]
            threading.Thread(target=self._pump, args=(client, server, client), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, client), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, client: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                if src is client and self.marker in data.upper():
                    self.subscribers.add(client)
                    if self.deafen_new_subscribers:
                        self.silenced.add(client)
                if client not in self.silenced:
                    dst.sendall(data)
        except OSError:
            pass
        for sock in (src, dst):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        """End every connection and refuse new ones: the server is gone."""
        self.down = True
        for sock in self.sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        self.sockets.clear()

    def restore(self) -> None:
        """Let new connections through again: the server is back."""
        self.down = False

    def silence_subscribers(self) -> int:
        self.silenced |= self.subscribers
        return len(self.silenced)

    def close(self) -> None:
        self.listener.close()
        for sock in self.sockets:
            sock.close()


def test_a_revocation_lost_on_a_silent_feed_is_seen_within_deaf_after(
    make_store_url: Callable[[str], str],
) -> None:
    """The feed's connection goes quiet without an error, so the revocation published
    on it never arrives: the heartbeat notices, the cache turns off, and the revoked
    session is refused after seconds (the cache entry itself would live 60 s)."""
    from authgate.stores.redis.invalidator import DEAF_AFTER, HEARTBEAT

    direct, proxied, proxy = _proxied(make_store_url)
    here = Gate(store=proxied, hasher=cheap_hasher(), secret_key=SECRET)
    there = Gate(store=direct, hasher=cheap_hasher(), secret_key=SECRET)
    try:
        there.create_user("alice", PW)
        token = there.login("alice", PW).access_token
        sid = here.authenticate(token).session_id
        deadline = time.monotonic() + 5
        while here.store.peek_session_user(sid, "alice") is None:  # type: ignore[attr-defined]
            here.authenticate(token)  # until the subscription is confirmed and heard
            assert time.monotonic() < deadline, "the cache never warmed"
            time.sleep(0.005)

        assert proxy.silence_subscribers() == 1
        there.revoke_sessions("alice")  # published, but never delivered here
        revoked = time.monotonic()
        while True:
            try:
                here.authenticate(token)
            except SessionRevoked:
                break
            assert time.monotonic() - revoked < 10, "a silent feed kept a revoked session"
            time.sleep(0.01)
        waited = time.monotonic() - revoked
        assert waited < DEAF_AFTER + HEARTBEAT + 1.0, waited
        assert here.store.peek_session_user(sid, "alice") is None  # type: ignore[attr-defined]

        # The feed reconnects on a fresh connection, and the cache answers again.
        token = there.login("alice", PW).access_token
        sid = here.authenticate(token).session_id
        deadline = time.monotonic() + 10
        while here.store.peek_session_user(sid, "alice") is None:  # type: ignore[attr-defined]
            here.authenticate(token)
            assert time.monotonic() < deadline, "the feed never came back"
            time.sleep(0.01)
    finally:
        here.close()
        there.close()
        proxy.close()


def _proxied(make_store_url: Callable[[str], str]) -> tuple[str, str, SilencingProxy]:
    direct = make_store_url("redis")
    parts = urlsplit(direct)
    proxy = SilencingProxy((parts.hostname or "127.0.0.1", parts.port or 6379))
    return direct, urlunsplit(parts._replace(netloc=f"127.0.0.1:{proxy.port}")), proxy


def test_a_subscription_never_confirmed_is_tried_again(
    make_store_url: Callable[[str], str],
) -> None:
    """A SUBSCRIBE lost on the way leaves the cache off, and the listener does not wait
    for its answer forever: it reconnects, and the cache comes on once one is heard."""
    from authgate.stores.redis import RedisStore

    _, proxied, proxy = _proxied(make_store_url)
    proxy.deafen_new_subscribers = True
    store = RedisStore(proxied)
    try:
        cache = store._session_cache()
        assert cache is not None
        time.sleep(3.0)  # more than DEAF_AFTER: at least one lost subscription behind
        assert not cache.enabled
        assert len(proxy.subscribers) >= 2, "the listener never tried again"
        proxy.deafen_new_subscribers = False
        deadline = time.monotonic() + 10
        while not cache.enabled:
            assert time.monotonic() < deadline, "the cache never came on"
            time.sleep(0.01)
    finally:
        store.close()
        proxy.close()


def test_a_forked_worker_listens_for_itself(make_store_url: Callable[[str], str]) -> None:
    """A server that opens the store before forking its workers (gunicorn --preload):
    the parent's listening thread is not in the child, so the child's cache starts
    anew with a thread of its own, and hears a revocation made elsewhere."""
    from authgate.stores.redis import RedisStore
    from authgate.stores.redis.invalidator import DEAF_AFTER

    url = make_store_url("redis")
    assert_a_forked_child_hears_revocations(RedisStore(url), lambda: RedisStore(url), DEAF_AFTER)


def assert_a_forked_child_hears_revocations(
    store: Any, open_other: Callable[[], Any], deaf_after: float
) -> None:
    """`store` caches a session check in this process, then forks: the child's cache
    must come on by its own feed, and end the session another store revokes."""
    from datetime import timedelta

    from authgate.users import Session, User, utcnow

    store.create_user(User.new("alice"))
    session = Session(id="f0" * 16, username="alice", expires_at=utcnow() + timedelta(hours=1))
    store.create_session(session)
    deadline = time.monotonic() + 5
    while store.peek_session_user(session.id, "alice") is None:  # the parent listens
        store.get_session_user(session.id, "alice")
        assert time.monotonic() < deadline
        time.sleep(0.005)
    pid = os.fork()
    if pid == 0:  # the worker
        code = 3
        try:
            time.sleep(deaf_after + 0.5)  # whatever it inherited is deaf by now
            deadline = time.monotonic() + 5
            while store.peek_session_user(session.id, "alice") is None:
                store.get_session_user(session.id, "alice")
                if time.monotonic() > deadline:
                    os._exit(1)  # nobody listens in the worker: the cache never answers
                time.sleep(0.005)
            other = open_other()
            other.revoke_session(session.id)
            other.close()
            deadline = time.monotonic() + 2
            while store.peek_session_user(session.id, "alice") is not None:
                if time.monotonic() > deadline:
                    os._exit(2)  # the worker's cache kept a revoked session
                time.sleep(0.005)
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    store.close()


# -- SQLite: only a commit that can end a session check empties the cache ----------------


def test_sqlite_commits_that_end_nothing_leave_the_cache_standing(tmp_path: Any) -> None:
    """Another process's login, ``last_seen`` touch or counter commits without ending
    any session check: the cached answers stand.  A revocation, or a change to a user,
    ends them."""
    from datetime import timedelta

    from authgate.stores.sqlite import SQLiteStore
    from authgate.users import Group, Session, User, utcnow

    path = tmp_path / "auth.db"
    here, there = SQLiteStore(path), SQLiteStore(path)  # two processes' stores
    user = here.create_user(User.new("alice"))
    here.create_user(User.new("bob"))

    def session(name: str) -> Session:
        return here.create_session(
            Session(id=uuid.uuid4().hex, username=name, expires_at=utcnow() + timedelta(hours=1))
        )

    alices, bobs = session("alice"), session("bob")
    here.get_session_user(alices.id, "alice")
    assert here.peek_session_user(alices.id, "alice") is not None

    there.create_session(
        Session(id="1" * 32, username="bob", expires_at=utcnow() + timedelta(hours=1))
    )
    assert there.touch_session(bobs.id, utcnow()) is True
    assert there.rotate_refresh(bobs.id, bobs.refresh_hash, "new-hash", bobs.expires_at)
    there.incr("login-failures:bob", 60)
    there.create_user(User.new("carol"))
    there.put_group(Group.new("ops", ["items:read"]))
    there.delete_group("ops")
    assert here.peek_session_user(alices.id, "alice") is not None, "a commit ending nothing"

    assert there.revoke_session(bobs.id) is True  # ends a check: everything is read again
    assert here.peek_session_user(alices.id, "alice") is None
    here.get_session_user(alices.id, "alice")
    assert here.peek_session_user(alices.id, "alice") is not None
    there.update_user(user.changed(roles=frozenset({"admin"})), user.version)
    assert here.peek_session_user(alices.id, "alice") is None
    assert here.get_session_user(alices.id, "alice")[1].roles == {"admin"}  # type: ignore[union-attr]
    here.close()
    there.close()


# -- the cache's own bookkeeping ---------------------------------------------------------


def _answer(name: str, sid: str | None = None) -> tuple[Any, Any]:
    from datetime import timedelta

    from authgate.users import Session, User, utcnow

    session = Session(
        id=sid or uuid.uuid4().hex, username=name, expires_at=utcnow() + timedelta(hours=1)
    )
    return session, User.new(name)


def _evict(cache: Any, eviction: str, session_id: str) -> None:
    """One eviction of the kind named: of the session, of alice, or of everything."""
    if eviction == "evict_session":
        cache.evict_session(session_id)
    elif eviction == "evict_user":
        cache.evict_user("alice")
    else:
        cache.clear()


@pytest.mark.parametrize("eviction", ["evict_session", "evict_user", "clear"])
def test_an_answer_read_before_an_eviction_is_not_cached_after_it(eviction: str) -> None:
    """A read that began before an eviction may hold what the eviction ended: its
    answer is dropped, however many evictions came before."""
    from authgate.stores.cache import SessionCache

    cache = SessionCache()
    session, user = _answer("alice")
    for _ in range(3):
        began = cache.generation  # a read starts
        _evict(cache, eviction, session.id)
        cache.put(session, user, began)  # the read ends: too late
        assert cache.get(session.id, "alice") is None
    cache.put(session, user, cache.generation)  # a read with nothing evicted meanwhile
    assert cache.get(session.id, "alice") is not None


def test_the_cache_holds_at_most_max_entries_and_forgets_what_it_evicts() -> None:
    from authgate.stores.cache import SessionCache

    cache = SessionCache(max_entries=2)
    answers = [_answer(name) for name in ("ann", "bob", "cat")]
    for session, user in answers:
        cache.put(session, user, cache.generation)
    assert len(cache._entries) == 2
    assert cache.get(answers[0][0].id, "ann") is None  # the least recently used made room
    assert _held(cache) == {"bob": 1, "cat": 1}  # ann's record went with her session
    cache.evict_session(answers[1][0].id)
    assert _held(cache) == {"cat": 1}
    assert cache.get(answers[2][0].id, "cat") is not None
    assert cache.get(answers[2][0].id, "bob") is None  # someone else's session id


def _checked(session: Any) -> tuple[Any, ...]:
    """What the session check reads of a session (all a cached one keeps)."""
    return session.id, session.username, session.kind, session.expires_at, session.last_seen


def _held(cache: Any) -> dict[str, int]:
    """The user records a cache holds, with how many entries carry each."""
    return {name: held.sessions for name, held in cache._users.items()}


class _Counting:
    """Counts calls of a store's read while passing them on."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn, self.calls = fn, 0

    def __call__(self, *args: Any) -> Any:
        self.calls += 1
        return self.fn(*args)


def test_sqlite_warm_check_reads_nothing_but_the_wal_header(tmp_path: Any) -> None:
    """The hot path of a cached check: no session read, and the epoch row read again
    only after a commit."""
    from authgate.stores.sqlite import SQLiteStore

    store: Any = SQLiteStore(tmp_path / "auth.db")
    session, user = _answer("alice")
    store.create_user(user)
    store.create_session(session)
    reads = store._session_user = _Counting(store._session_user)
    epochs = store._read_epoch = _Counting(store._read_epoch)
    assert store.get_session_user(session.id, "alice")[0] == session
    assert (reads.calls, epochs.calls) == (1, 1)
    for _ in range(5):
        assert _checked(store.get_session_user(session.id, "alice")[0]) == _checked(session)
        assert store.peek_session_user(session.id, "alice") is not None
    assert (reads.calls, epochs.calls) == (1, 1)
    store.incr("counter", 60)  # a commit: the epoch is read once more, the answer stands
    for _ in range(3):
        store.get_session_user(session.id, "alice")
    assert (reads.calls, epochs.calls) == (1, 2)
    store.close()


@pytest.mark.parametrize("ttl", [0.0, 0.5])
def test_sqlite_cache_lifetime_below_a_second_still_answers_rightly(
    tmp_path: Any, ttl: float
) -> None:
    """``cache_ttl=0`` turns the cache off (every check reads the table); a short one
    still caches."""
    from authgate.stores.sqlite import SQLiteStore

    store = SQLiteStore(tmp_path / "auth.db", cache_ttl=ttl)
    session, user = _answer("alice")
    store.create_user(user)
    store.create_session(session)
    assert store.get_session_user(session.id, "alice") == (session, user)
    assert store.get_session_user("0" * 32, "alice") == (None, user)
    assert store.get_session_user(session.id, "bob") == (session, None)
    cached = store.peek_session_user(session.id, "alice")
    assert (cached is not None) is (ttl > 0)
    store.close()


def test_redis_warm_check_sends_no_command(make_store_url: Callable[[str], str]) -> None:
    from authgate.stores.redis import RedisStore

    store: Any = RedisStore(make_store_url("redis"))
    session, user = _answer("alice")
    store.create_user(user)
    store.create_session(session)
    deadline = time.monotonic() + 5
    while store.peek_session_user(session.id, "alice") is None:
        store.get_session_user(session.id, "alice")
        assert time.monotonic() < deadline
        time.sleep(0.005)
    commands = store._command = _Counting(store._command)
    for _ in range(5):
        assert _checked(store.get_session_user(session.id, "alice")[0]) == _checked(session)
    assert commands.calls == 0
    store.close()


def test_redis_without_a_cache_peeks_nothing(make_store_url: Callable[[str], str]) -> None:
    from authgate.stores.redis import RedisStore

    store = RedisStore(make_store_url("redis") + "&cache_ttl=0")
    session, user = _answer("alice")
    store.create_user(user)
    store.create_session(session)
    assert store.get_session_user(session.id, "alice") == (session, user)
    assert store.peek_session_user(session.id, "alice") is None
    store.close()


@pytest.mark.parametrize(
    "evictions",
    [("evict_user", "clear"), ("evict_session", "clear"), ("evict_user", "evict_session"),
     ("clear", "evict_user"), ("clear", "evict_session"), ("evict_session", "evict_user")],
)  # fmt: skip
def test_an_answer_read_before_two_evictions_of_any_kinds_is_not_cached(
    evictions: tuple[str, str],
) -> None:
    """Every eviction moves the generation the same way: two of different kinds never
    bring it back to where a read began."""
    from authgate.stores.cache import SessionCache

    cache = SessionCache()
    session, user = _answer("alice")
    began = cache.generation
    for eviction in evictions:
        _evict(cache, eviction, session.id)
    cache.put(session, user, began)
    assert cache.get(session.id, "alice") is None


# -- what a cached answer keeps, and shares ----------------------------------------------

_AGENT = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0"
_HASH = "$argon2id$v=19$m=65536,t=3,p=4$" + "s" * 22 + "$" + "h" * 43
_SCRAM = "SCRAM-SHA-256$4096:" + "s" * 24 + "$" + "k" * 44 + ":" + "v" * 44


def _login(name: str, sessions: int = 1) -> tuple[list[Any], Any]:
    """Sessions and their user as logins leave them: every field filled."""
    from datetime import timedelta

    from authgate.users import Session, User, utcnow

    made = []
    for _ in range(sessions):
        sid, now = uuid.uuid4().hex, utcnow()
        made.append(
            Session(
                id=sid, username=name, expires_at=now + timedelta(days=7), created_at=now,
                last_seen=now, client_ip="203.0.113.7", user_agent=_AGENT,
                refresh_hash=hashlib.sha256(sid.encode()).hexdigest(), data={"seen": "1"},
            )
        )  # fmt: skip
    user = User.new(
        name, roles=["operator"], email=name, first_name="Ann", last_name="Example",
        password_hash=_HASH, scram_credentials=_SCRAM,
    )  # fmt: skip
    return made, user


def _read(record: Any) -> Any:
    """A record as a backend read hands it out: equal, in objects of its own."""
    from authgate.stores import _codec
    from authgate.users import User

    if isinstance(record, User):
        return _codec.user_from_json(_codec.user_to_json(record))
    return _codec.session_from_json(_codec.session_to_json(record))


def test_a_cached_answer_keeps_only_what_the_check_reads(tmp_path: Any) -> None:
    """A hit answers with the session without its refresh hash, client, data and
    creation time, owned by the user's own name string, and the user without its
    secrets; the read that filled the cache answered with the whole records."""
    from authgate.stores.sqlite import SQLiteStore

    store = SQLiteStore(tmp_path / "auth.db")
    [session], user = _login("alice@example.com")
    store.create_user(user)
    store.create_session(session)
    assert store.get_session_user(session.id, user.username) == (session, user)
    hit = store.peek_session_user(session.id, user.username)
    assert hit is not None
    kept, person = hit
    assert kept is not None and person is not None
    assert _checked(kept) == _checked(session)
    assert (kept.refresh_hash, kept.client_ip, kept.user_agent, kept.data) == ("", "", "", {})
    assert kept.created_at.timestamp() == 0
    assert kept.username is person.username
    assert (person.password_hash, person.scram_credentials) == ("", "")
    assert dataclasses.replace(person, password_hash=_HASH, scram_credentials=_SCRAM) == user
    assert store.get_session_user(session.id, user.username) == hit
    store.close()


def test_the_sessions_of_one_user_share_its_record_until_it_changes() -> None:
    """Equal reads of a user give every session of the name one user object, and every
    hit the same objects (the gate's identity cache relies on it); an unequal read ends
    every answer for the name and starts over from it."""
    from authgate.stores.cache import SessionCache

    cache = SessionCache()
    sessions, user = _login("alice@example.com", 3)
    for session in sessions:
        cache.put(_read(session), _read(user), cache.generation)
    hits = [cache.get(s.id, user.username) for s in sessions]
    first = hits[0]
    assert first is not None
    assert all(hit is not None and hit[1] is first[1] for hit in hits)
    again = cache.get(sessions[0].id, user.username)
    assert again is not None and again[0] is first[0] and again[1] is first[1]
    assert _held(cache) == {user.username: 3}
    changed = user.changed(roles=["admin"])
    cache.put(_read(sessions[1]), _read(changed), cache.generation)
    assert cache.get(sessions[0].id, user.username) is None
    assert cache.get(sessions[2].id, user.username) is None
    hit = cache.get(sessions[1].id, user.username)
    assert hit is not None and hit[1].roles == {"admin"} and hit[1] is not first[1]
    assert _held(cache) == {user.username: 1}


def test_a_user_evicted_and_cached_again_brings_back_none_of_its_other_sessions() -> None:
    """Evicting a user leaves its sessions' entries behind, answering nothing: caching
    one of them again, even with the very same user object, revives none of the others,
    and neither does touching one."""
    from authgate.stores.cache import SessionCache

    cache = SessionCache()
    sessions, user = _login("alice@example.com", 3)
    for session in sessions:
        cache.put(session, user, cache.generation)
    cache.evict_user(user.username)
    cache.touch(sessions[2].id, sessions[2].last_seen)
    cache.put(sessions[0], user, cache.generation)
    assert cache.get(sessions[0].id, user.username) is not None
    assert cache.get(sessions[1].id, user.username) is None
    assert cache.get(sessions[2].id, user.username) is None
    assert _held(cache) == {user.username: 1}


def test_a_user_record_past_its_lifetime_ends_all_its_sessions_answers() -> None:
    """The lifetime counts from the user's read: past it no session of the user answers,
    and one read again starts a new record without the others."""
    from authgate.stores.cache import SessionCache

    cache = SessionCache(ttl=60)
    sessions, user = _login("alice@example.com", 2)
    for session in sessions:
        cache.put(session, user, cache.generation)
    cache._users[user.username].since -= 61  # read a minute ago
    assert [cache.get(s.id, user.username) for s in sessions] == [None, None]
    cache.put(sessions[0], user, cache.generation)
    assert cache.get(sessions[0].id, user.username) is not None
    assert cache.get(sessions[1].id, user.username) is None


def test_a_session_of_someone_else_or_a_cache_of_no_room_keeps_nothing() -> None:
    from authgate.stores.cache import SessionCache

    cache = SessionCache()
    [bobs], _ = _login("bob@example.com")
    _, alice = _login("alice@example.com")
    cache.put(bobs, alice, cache.generation)  # the check refuses it: nothing to keep
    assert cache.get(bobs.id, alice.username) is None and _held(cache) == {}
    none = SessionCache(max_entries=0)
    [session], user = _login("alice@example.com")
    none.put(session, user, none.generation)
    assert none.get(session.id, user.username) is None and _held(none) == {}


# -- what a cached session costs ---------------------------------------------------------


def _bytes_kept(check: Callable[[str, str], object], asked: list[tuple[str, str]]) -> int:
    """Bytes allocated, and still held, by running `check` on each (session id,
    username): tracemalloc counts allocations, not time, so this is the same from run
    to run on one Python."""
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for session_id, username in asked:
            check(session_id, username)
        gc.collect()
        return tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()


#: 300 users with 10 sessions each: 3,000 entries, just past a resize of the LRU's
#: table, where its share of each entry is near its largest.
USERS, SESSIONS_EACH = 300, 10


@pytest.mark.parametrize("where", ["sqlite", "session-cache"])
def test_a_cached_session_costs_at_most_500_bytes(tmp_path: Any, where: str) -> None:
    """Sessions and users as logins leave them, 10 sessions per user, each checked once
    (a miss, so cached): what stays allocated per session, its share of its user's
    record included, is at most 500 bytes.

    Measured: 454 bytes (CPython 3.11; the same through the store or the cache alone,
    the store's own allocations being a few bytes per session).  The margin, some 10%,
    covers what moves without a change of ours: the LRU's table costs 60 to 110 bytes
    an entry depending on how full it is between resizes (3,000 entries is near its
    worst), and object sizes change a little between CPython versions.  Measured in a
    fresh interpreter: in one that has run the rest of the suite, threads left by other
    tests allocate during the count (seen: 513 bytes)."""
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(1, mp_context=ctx) as pool:
        per_session = pool.submit(_cached_session_bytes, str(tmp_path), where).result()
    assert per_session <= 500, f"a cached session costs {per_session:.0f} bytes"


def _cached_session_bytes(folder: str, where: str) -> float:
    """Bytes kept per cached session (see the test above)."""
    from pathlib import Path

    from authgate.stores import _codec
    from authgate.stores.cache import SessionCache
    from authgate.stores.sqlite import SQLiteStore

    logins = [_login(f"user{i:04d}@example.com", SESSIONS_EACH) for i in range(USERS)]
    asked = [(s.id, user.username) for sessions, user in logins for s in sessions]
    if where == "sqlite":
        store = SQLiteStore(Path(folder) / "auth.db")
        for sessions, user in logins:
            store.create_user(user)
            for session in sessions:
                store.create_session(session)
        store.get_session_user("0" * 32, "nobody")  # the connection and its maps, opened
        spent = _bytes_kept(store.get_session_user, asked)
        hits = [store.peek_session_user(*pair) for pair in asked]
        store.close()
    else:
        cache = SessionCache()
        stored = {
            s.id: (_codec.session_to_json(s), _codec.user_to_json(user))
            for sessions, user in logins
            for s in sessions
        }

        def check(session_id: str, username: str) -> None:  # a read, as a store makes it
            session, user = stored[session_id]
            generation = cache.generation
            cache.put(_codec.session_from_json(session), _codec.user_from_json(user), generation)

        spent = _bytes_kept(check, asked)
        hits = [cache.get(*pair) for pair in asked]
    assert all(hit is not None for hit in hits)  # every answer is cached
    return spent / len(asked)


def test_a_session_of_an_evicted_user_counts_as_a_miss_not_a_hit() -> None:
    """Its entry is still in the LRU but answers nothing: the counters the benchmarks
    read say the store answered."""
    from authgate.caches import SESSION_CHECKS
    from authgate.stores.cache import SessionCache

    cache = SessionCache()
    [session], user = _login("alice@example.com")
    cache.put(session, user, cache.generation)
    SESSION_CHECKS.reset()
    assert cache.get(session.id, user.username) is not None
    cache.evict_user(user.username)
    assert cache.get(session.id, user.username) is None
    assert (SESSION_CHECKS.hits, SESSION_CHECKS.misses) == (1, 1)
