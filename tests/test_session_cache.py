"""The session-check cache never outlives a revocation made by another process."""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from typing import Any

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
    # The cache entry would live 5 s; the invalidation must end it well before.
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
