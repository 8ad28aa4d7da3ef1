"""The store contract: one behaviour, every backend (memory, SQLite, Redis), both faces."""

from __future__ import annotations

import multiprocessing
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import pytest

from _workers import increment, write_user
from authgate.errors import (
    ConfigError,
    NotFound,
    StoreUnavailable,
    UserExists,
    UserNotFound,
    VersionConflict,
)
from authgate.stores import Session, open_store
from authgate.users import Group, User, utcnow


def _session(username: str, seconds: float = 600, **kw: Any) -> Session:
    return Session(
        id=uuid.uuid4().hex,
        username=username,
        expires_at=utcnow() + timedelta(seconds=seconds),
        **kw,
    )


# -- users ------------------------------------------------------------------------------


def test_created_user_reads_back_by_name_and_id(store: Any) -> None:
    user = User.new(
        "Alice",
        roles=["operator"],
        groups=["lab"],
        email="a@example.com",
        password_hash="$argon2id$fake",
    )
    store.create_user(user)
    got = store.get_user("alice")
    assert got == user
    assert got.password_hash == "$argon2id$fake"
    assert store.get_user_by_id(user.id) == user
    assert store.get_user("bob") is None
    assert store.get_user_by_id("nope") is None


@pytest.mark.parametrize("variant", ["alice", "ALICE", "Alice", "ａｌｉｃｅ", "ＡＬＩＣＥ"])
def test_duplicate_username_in_any_case_or_width_is_refused(store: Any, variant: str) -> None:
    store.create_user(User.new("alice", roles=["viewer"]))
    with pytest.raises(UserExists):
        store.create_user(User.new(variant, roles=["admin"]))
    assert store.get_user("alice").roles == {"viewer"}
    assert [u.username for u in store.list_users().items] == ["alice"]


def test_update_with_stale_version_conflicts_and_writes_nothing(store: Any) -> None:
    original = store.create_user(User.new("carol", roles=["viewer"]))
    first = original.changed(email="one@example.com")
    store.update_user(first, original.version)
    stale = original.changed(roles=["admin"], email="two@example.com")
    with pytest.raises(VersionConflict):
        store.update_user(stale, original.version)
    now = store.get_user("carol")
    assert now == first
    assert now.roles == {"viewer"}
    assert now.version == original.version + 1


def test_email_verified_round_trips_and_a_new_email_resets_it(store: Any) -> None:
    made = store.create_user(User.new("vera", email="v@example.com", email_verified=True))
    assert store.get_user("vera").email_verified is True
    assert store.get_user_by_id(made.id).email_verified is True
    unverified = store.update_user(made.changed(email_verified=False), made.version)
    assert store.get_user("vera").email_verified is False
    verified = store.update_user(unverified.changed(email_verified=True), unverified.version)
    assert store.get_user("vera").email_verified is True
    store.update_user(verified.changed(email="new@example.com"), verified.version)
    now = store.get_user("vera")
    assert (now.email, now.email_verified) == ("new@example.com", False)
    assert [u.email_verified for u in store.list_users().items] == [False]


def test_second_factors_round_trip_and_a_new_user_has_none(store: Any) -> None:
    made = store.create_user(User.new("fay"))
    assert store.get_user("fay").factors == ""
    document = '{"recovery": ["ab12"], "totp": {"sealed": "v1.x", "confirmed": true}}'
    enrolled = store.update_user(made.changed(factors=document), made.version)
    assert store.get_user("fay").factors == document
    assert store.get_user_by_id(made.id).factors == document
    assert "v1.x" not in repr(store.get_user("fay"))
    store.update_user(enrolled.changed(factors=""), enrolled.version)
    assert store.get_user("fay").factors == ""


def test_update_of_missing_user_is_not_found(store: Any) -> None:
    ghost = User.new("ghost")
    with pytest.raises(UserNotFound):
        store.update_user(ghost.changed(email="x@example.com"), ghost.version)
    assert store.get_user("ghost") is None


def test_delete_leaves_no_trace_in_any_index(store: Any) -> None:
    user = store.create_user(User.new("dave", roles=["operator"]))
    store.create_user(User.new("erin"))
    session = store.create_session(_session("dave"))
    store.delete_user("dave")
    assert store.get_user("dave") is None
    assert store.get_user_by_id(user.id) is None
    assert [u.username for u in store.list_users().items] == ["erin"]
    assert store.get_session(session.id) is None
    assert store.list_sessions("dave") == []
    with pytest.raises(UserNotFound):
        store.delete_user("dave")
    again = store.create_user(User.new("DAVE"))
    assert store.get_user("dave") == again


def test_pagination_is_stable_under_inserts(store: Any) -> None:
    originals = {f"user{i:02d}" for i in range(0, 50, 2)}
    for name in sorted(originals, reverse=True):
        store.create_user(User.new(name))
    seen: list[str] = []
    after = None
    extra = iter(range(1, 50, 2))
    while True:
        page = store.list_users(after=after, limit=7)
        seen.extend(u.username for u in page.items)
        for _ in range(2):  # insert before and after the cursor between pages
            n = next(extra, None)
            if n is not None:
                store.create_user(User.new(f"user{n:02d}"))
        if page.next_after is None:
            break
        after = page.next_after
    assert len(seen) == len(set(seen)), "a page repeated a user"
    assert originals <= set(seen), "a page skipped a user"
    assert seen == sorted(seen)


def test_list_users_limit_and_end(store: Any) -> None:
    for name in ("aaa", "bbb", "ccc"):
        store.create_user(User.new(name))
    page = store.list_users(limit=3)
    assert [u.username for u in page.items] == ["aaa", "bbb", "ccc"]
    assert page.next_after is None
    page = store.list_users(limit=2)
    assert page.next_after == "bbb"
    assert [u.username for u in store.list_users(after="bbb").items] == ["ccc"]


# -- groups -----------------------------------------------------------------------------


def test_a_delete_for_a_version_applies_to_that_version_only(store: Any) -> None:
    """The delete an admin decided on one version of a user (If-Match, the last-admin
    check) is refused, deleting nothing, once another write changed the user."""
    user = store.create_user(User.new("fay", roles=["viewer"]))
    session = store.create_session(_session("fay"))
    changed = store.update_user(user.changed(roles=["admin"]), user.version)
    with pytest.raises(VersionConflict):
        store.delete_user("fay", user.version)
    assert store.get_user("fay") == changed
    assert store.get_session(session.id) is not None
    with pytest.raises(UserNotFound):
        store.delete_user("nobody", 1)
    store.delete_user("fay", changed.version)
    assert store.get_user("fay") is None and store.get_session(session.id) is None


def test_groups_create_replace_list_delete(store: Any) -> None:
    store.put_group(Group.new("Lab", ["plants:read"], "the lab"))
    store.put_group(Group.new("admins", ["*:*"]))
    store.put_group(Group.new("lab", ["plants:read", "plants:write"]))
    assert [g.name for g in store.list_groups()] == ["admins", "lab"]
    assert store.get_group("lab").permissions == {"plants:read", "plants:write"}
    store.delete_group("lab")
    assert store.get_group("lab") is None
    with pytest.raises(NotFound):
        store.delete_group("lab")


# -- sessions ---------------------------------------------------------------------------


def test_session_lifecycle(store: Any) -> None:
    first = store.create_session(_session("frank", client_ip="10.0.0.1", refresh_hash="h1"))
    second = store.create_session(_session("frank"))
    other = store.create_session(_session("gina"))
    assert store.get_session(first.id) == first
    assert [s.id for s in store.list_sessions("frank")] == [first.id, second.id]

    later = utcnow() + timedelta(seconds=5)
    assert store.touch_session(first.id, later)
    # to the microsecond (SQLite once kept 15 significant digits: a tenth of a millisecond)
    assert abs((store.get_session(first.id).last_seen - later).total_seconds()) < 2e-6

    assert store.revoke_session(second.id)
    assert not store.revoke_session(second.id)
    assert store.get_session(second.id) is None
    assert not store.touch_session(second.id, later)
    assert store.revoke_user_sessions("frank") == 1
    assert store.list_sessions("frank") == []
    assert store.get_session(other.id) == other


def test_rotate_refresh_is_compare_and_set(store: Any) -> None:
    session = store.create_session(_session("hank", refresh_hash="old"))
    new_expiry = utcnow() + timedelta(hours=2)
    assert store.rotate_refresh(session.id, "old", "new", new_expiry)
    assert not store.rotate_refresh(session.id, "old", "newer", new_expiry)
    got = store.get_session(session.id)
    assert got.refresh_hash == "new"
    assert abs((got.expires_at - new_expiry).total_seconds()) < 0.01
    assert not store.rotate_refresh("missing", "new", "x", new_expiry)


def test_revoke_user_sessions_keeps_the_named_one(store: Any) -> None:
    keep = store.create_session(_session("ivy"))
    for _ in range(3):
        store.create_session(_session("ivy"))
    assert store.revoke_user_sessions("ivy", keep.id) == 3
    assert [s.id for s in store.list_sessions("ivy")] == [keep.id]


def test_sessions_expire(store: Any) -> None:
    short = store.create_session(_session("jack", seconds=0.3))
    long = store.create_session(_session("jack", seconds=600))
    assert store.get_session(short.id) is not None
    time.sleep(0.45)
    assert store.get_session(short.id) is None
    assert [s.id for s in store.list_sessions("jack")] == [long.id]
    assert not store.touch_session(short.id, utcnow())


# -- counters ---------------------------------------------------------------------------


def test_counter_counts_and_resets(store: Any) -> None:
    assert store.get_counter("k") == 0
    assert [store.incr("k", 60) for _ in range(3)] == [1, 2, 3]
    assert store.get_counter("k") == 3
    assert 55 < store.counter_ttl("k") <= 60
    store.reset_counter("k")
    assert store.get_counter("k") == 0
    assert store.counter_ttl("k") == 0


def test_counter_expires_and_starts_a_new_window(store: Any) -> None:
    store.incr("w", 0.3)
    store.incr("w", 0.3)
    time.sleep(0.45)
    assert store.get_counter("w") == 0
    assert store.incr("w", 60) == 1


def test_counter_exact_under_50_concurrent_increments(store: Any) -> None:
    if hasattr(store, "gather"):
        results = store.gather(50, "incr", "hits", 60)
    else:
        barrier = threading.Barrier(10)

        def five() -> list[int]:
            barrier.wait()
            return [store.incr("hits", 60) for _ in range(5)]

        with ThreadPoolExecutor(10) as pool:
            results = [v for chunk in pool.map(lambda _: five(), range(10)) for v in chunk]
    assert sorted(results) == list(range(1, 51))
    assert store.get_counter("hits") == 50


def test_counter_gives_back_and_never_goes_below_zero(store: Any) -> None:
    assert [store.incr("r", 60) for _ in range(3)] == [1, 2, 3]
    assert store.incr("r", 60, -1) == 2
    assert store.get_counter("r") == 2 and 55 < store.counter_ttl("r") <= 60  # same window
    assert store.incr("r", 60) == 3
    for _ in range(4):
        store.incr("r", 60, -1)
    assert store.get_counter("r") == 0
    assert store.incr("r", 60) == 1  # counts up from zero again
    assert store.incr("absent", 60, -1) == 0  # giving back to no counter makes none
    assert store.get_counter("absent") == 0
    assert store.incr("absent", 60) == 1


def test_counter_exact_under_concurrent_takes_and_returns(store: Any) -> None:
    for _ in range(50):
        store.incr("mixed", 60)
    if hasattr(store, "gather"):
        store.gather(25, "incr", "mixed", 60, -1)
        store.gather(25, "incr", "mixed", 60)
        assert store.get_counter("mixed") == 50
        return
    barrier = threading.Barrier(10)

    def five(by: int) -> None:
        barrier.wait()
        for _ in range(5):
            store.incr("mixed", 60, by)

    with ThreadPoolExecutor(10) as pool:
        list(pool.map(five, [1, -1] * 5))
    assert store.get_counter("mixed") == 50


def test_counter_exact_under_increments_from_4_processes(persistent_url: str) -> None:
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(4, mp_context=ctx) as pool:
        chunks = list(pool.map(increment, [persistent_url] * 4, ["procs"] * 4, [25] * 4))
    values = sorted(v for chunk in chunks for v in chunk)
    assert values == list(range(1, 101))
    store = open_store(persistent_url)
    assert store.get_counter("procs") == 100
    store.close()


def test_user_written_by_one_process_is_read_by_another(persistent_url: str) -> None:
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(1, mp_context=ctx) as pool:
        user_id = pool.submit(write_user, persistent_url, "Kim").result()
    store = open_store(persistent_url)
    user = store.get_user("kim")
    assert user is not None and user.id == user_id and user.email == "w@example.com"
    store.close()


# -- opening ----------------------------------------------------------------------------


@pytest.mark.parametrize("url", ["", "ftp://x", "sqlite://", "sqlite://host/x.db", "nothing"])
def test_bad_store_url_is_a_config_error(url: str) -> None:
    with pytest.raises(ConfigError):
        open_store(url)


@pytest.mark.parametrize("ttl", ["nan", "inf", "-1", "soon", ""])
def test_a_cache_lifetime_that_is_not_a_finite_number_is_a_config_error(ttl: str) -> None:
    with pytest.raises(ConfigError, match=f"cache_ttl must be a number of seconds.*'{ttl}'"):
        open_store(f"redis://127.0.0.1:1/0?cache_ttl={ttl}")


@pytest.mark.parametrize(("ttl", "lifetime"), [("0", 0.0), ("2.5", 2.5), (None, 60.0)])
def test_a_cache_lifetime_in_the_url_is_the_session_caches(
    make_store_url: Callable[[str], str], ttl: str | None, lifetime: float
) -> None:
    store: Any = open_store(make_store_url("redis") + (f"&cache_ttl={ttl}" if ttl else ""))
    cache = store._session_cache()
    assert (cache.ttl if cache is not None else 0.0) == lifetime
    store.close()


def test_unreachable_redis_is_store_unavailable() -> None:
    from authgate.testing import free_port

    with pytest.raises(StoreUnavailable, match="cannot reach Redis at 127.0.0.1"):
        open_store(f"redis://127.0.0.1:{free_port()}/0")


def test_sqlite_in_missing_directory_is_store_unavailable(tmp_path: Any) -> None:
    with pytest.raises(StoreUnavailable, match="cannot open SQLite database"):
        open_store(f"sqlite:///{tmp_path}/missing/dir/x.db")


def test_session_and_user_read_together(store: Any) -> None:
    user = store.create_user(User.new("lena"))
    session = store.create_session(_session("lena"))
    assert store.get_session_user(session.id, "lena") == (session, user)
    assert store.get_session_user("missing", "lena") == (None, user)
    assert store.get_session_user(session.id, "nobody") == (session, None)
    short = store.create_session(_session("lena", seconds=0.2))
    time.sleep(0.3)
    assert store.get_session_user(short.id, "lena") == (None, user)


def test_expire_counter_moves_the_expiry(store: Any) -> None:
    assert not store.expire_counter("absent", 60)
    store.incr("x", 0.3)
    assert store.expire_counter("x", 60)
    time.sleep(0.4)
    assert store.get_counter("x") == 1
    assert store.counter_ttl("x") > 50
