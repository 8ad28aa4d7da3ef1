"""Store details the contract suite leaves open, found by mutation testing
(docs/mutation.md): which SQLite writes end cached session checks, and the small print of
counters and sessions."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from authgate.stores import open_store
from authgate.stores.base import Session
from authgate.stores.sqlite import SQLiteStore
from authgate.users import User, utcnow


def _session(username: str) -> Session:
    now = utcnow()
    return Session(
        id=f"s-{username}",
        username=username,
        expires_at=now + timedelta(hours=1),
        created_at=now,
        last_seen=now,
        refresh_hash="h0",
    )


@pytest.fixture
def fallback_store(tmp_path: Path) -> SQLiteStore:
    """A SQLite store on its fallback change check (the ``epoch`` row), where only the
    writes that can end a session check move it."""
    opened = open_store(f"sqlite:///{tmp_path / 'cache.db'}")
    assert isinstance(opened, SQLiteStore)
    opened._shm_failed = True  # the fallback path under test
    opened._shm = None
    opened.create_user(User.new("alice"))
    opened.create_session(_session("alice"))
    return opened


def _cached(store: SQLiteStore) -> Session | None:
    hit = store.peek_session_user("s-alice", "alice")
    return hit[0] if hit is not None else None


def test_counter_writes_and_touches_keep_cached_session_checks(
    fallback_store: SQLiteStore,
) -> None:
    """A login attack writes counters at every attempt: were those writes to end every
    process's cached session checks, each guess would cost every worker a table read."""
    store = fallback_store
    store.get_session_user("s-alice", "alice")  # read and cache
    assert _cached(store) is not None
    store.incr("login-failures:alice", 60)
    store.expire_counter("login-failures:alice", 120)
    store.reset_counter("login-failures:alice")
    later = utcnow() + timedelta(seconds=30)
    assert store.touch_session("s-alice", later)
    cached = _cached(store)
    assert cached is not None, "a counter write or a touch ended the cached check"
    assert cached.last_seen == later  # the touch updated the cached copy
    store.revoke_session("s-alice")
    assert _cached(store) is None  # while a revocation does end it


def test_a_counter_about_to_expire_says_so_below_a_second(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'ttl.db'}")
    store.incr("k", 0.4)
    assert 0.0 < store.counter_ttl("k") < 0.4
    time.sleep(0.45)
    assert store.counter_ttl("k") == 0.0 and store.get_counter("k") == 0


# -- every store -----------------------------------------------------------------------------


def test_a_deleted_user_is_gone_by_id_too_and_needs_no_sessions(store: Any) -> None:
    kept = store.create_user(User.new("keeper"))
    gone = store.create_user(User.new("leaver"))
    store.delete_user("leaver")  # never logged in: no sessions to end
    assert store.get_user_by_id(gone.id) is None
    assert store.get_user("leaver") is None
    assert store.get_user_by_id(kept.id) == kept


def test_resetting_a_counter_that_was_never_set_is_no_error(store: Any) -> None:
    store.reset_counter("never-set")
    assert store.get_counter("never-set") == 0
    assert store.counter_ttl("never-set") == 0.0


def test_a_long_counter_ttl_is_reported_in_seconds(store: Any) -> None:
    store.incr("long", 100_000)
    assert 99_990 < store.counter_ttl("long") <= 100_000


def test_a_refresh_rotation_moves_last_seen_on_every_store(store: Any) -> None:
    store.create_user(User.new("rotor"))
    first = _session("rotor").replace(last_seen=utcnow() - timedelta(hours=1))
    store.create_session(first)
    assert store.rotate_refresh(first.id, "h0", "h1", utcnow() + timedelta(hours=2))
    rotated = store.get_session(first.id)
    assert rotated is not None and rotated.refresh_hash == "h1"
    assert rotated.last_seen > first.last_seen + timedelta(minutes=59)


def test_the_memory_store_forgets_a_deleted_users_id() -> None:
    """Its id index holds no entry for a deleted user (a leak: ids of every user ever
    deleted, in a long-lived process)."""
    from authgate.stores import MemoryStore

    store = MemoryStore()
    gone = store.create_user(User.new("leaver"))
    store.delete_user("leaver")
    assert gone.id not in store._by_id


def test_many_processes_opening_one_fresh_sqlite_file_at_once_all_succeed(tmp_path: Path) -> None:
    """Every worker of a new deployment opens the fresh file and switches it to WAL at
    the same moment; SQLite refuses such a switch at once ("database is locked"), which
    killed a worker in one boot of forty."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from _workers import open_at

    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(8, mp_context=ctx) as pool:
        list(pool.map(abs, range(8)))  # the workers are up before the race starts
        for round_ in range(10):
            url = f"sqlite:///{tmp_path / f'fresh-{round_}.db'}"
            start = time.time() + 0.3
            outcomes = list(pool.map(open_at, [url] * 8, [start] * 8))
            assert outcomes == ["ok"] * 8, outcomes
