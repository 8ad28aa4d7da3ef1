"""The Redis store's key layout: each user's keys under the user's shard (so a cluster
spreads them), and the upgrade from the layout before, where every key shared one
hash tag."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import redis

from authgate.errors import ConfigError, UserExists
from authgate.gate import Gate
from authgate.stores import _codec
from authgate.stores.base import Session
from authgate.stores.redis import RedisStore
from authgate.stores.redis.keys import Keys
from authgate.testing import cheap_hasher
from authgate.users import Group, User, new_session_id, session_tag, shard_of, utcnow
from conftest import SECRET

PW = "correct horse battery"


@pytest.fixture
def prefix_url(redis_base_url: str) -> Iterator[tuple[str, redis.Redis]]:
    """A store URL with a prefix of its own, and a raw client; the prefix's keys are
    deleted at the end (never anything else)."""
    prefix = f"layout-{uuid.uuid4().hex[:12]}"
    sep = "&" if "?" in redis_base_url else "?"
    raw = redis.Redis.from_url(redis_base_url, decode_responses=True)
    yield f"{redis_base_url}{sep}prefix={prefix}", raw
    for pattern in (f"{{{prefix}}}:*", f"{{{prefix}:*"):
        for key in raw.scan_iter(match=pattern, count=1000):
            raw.delete(key)
    raw.close()


def _keys(raw: redis.Redis, prefix: str) -> list[str]:
    return sorted(raw.scan_iter(match=f"{{{prefix}*", count=1000))


def test_each_users_keys_share_the_users_shard(prefix_url: tuple[str, redis.Redis]) -> None:
    url, raw = prefix_url
    gate = Gate(store=url, hasher=cheap_hasher(), secret_key=SECRET)
    gate.create_user("alice", PW)
    pair = gate.login("alice", PW)
    _, key = gate.create_api_key(gate.authenticate(pair.access_token), "ci")
    prefix = url.rpartition("prefix=")[2]
    tag = "{" + prefix + ":" + shard_of("alice") + "}:"
    for _ in range(6):  # a lock-out counter for alice
        gate.store.incr("login-failures:alice", 60)
    alice = [k for k in _keys(raw, prefix) if k.startswith(tag)]
    sessions = f"{tag}ss:{session_tag('alice')}"
    assert sorted(alice) == sorted([f"{tag}u:alice", sessions, f"{tag}c:login-failures:alice"])
    # The login and the API key are fields of her one sessions hash, found by their ids.
    assert set(raw.hkeys(sessions)) == {pair.session_id, key.id}
    assert pair.session_id.startswith(session_tag("alice"))
    assert key.id.startswith(session_tag("alice"))
    # Nothing of alice's lies elsewhere but the listing and the id lookup.
    alice_user = gate.store.get_user("alice")
    assert alice_user is not None
    id_key = Keys(prefix).user_id(alice_user.id)
    others = [k for k in _keys(raw, prefix) if not k.startswith(tag)]
    assert sorted(others) == sorted([id_key, f"{{{prefix}}}:layout", f"{{{prefix}}}:names"])
    assert raw.get(id_key) == "alice"
    gate.close()


def test_users_spread_over_shards(prefix_url: tuple[str, redis.Redis]) -> None:
    """Different users land on different hash tags (so on different cluster slots)."""
    shards = {shard_of(f"user{i}") for i in range(1000)}
    assert len(shards) > 950  # of 65,536 possible: collisions are rare
    url, raw = prefix_url
    store = RedisStore(url)
    for i in range(20):
        store.create_user(User.new(f"user{i:02d}"))
    prefix = url.rpartition("prefix=")[2]
    tags = {k.partition("}")[0] for k in _keys(raw, prefix) if ":u:" in k}
    assert len(tags) == 20
    store.close()


def test_a_session_whose_id_names_another_shard_is_forwarded(
    prefix_url: tuple[str, redis.Redis],
) -> None:
    """An id that does not begin with its owner's shard (made by a caller, or before
    this layout) still reaches the session, by a forwarding key that lives and dies
    with it."""
    url, raw = prefix_url
    store = RedisStore(url)
    store.create_user(User.new("bob"))
    now = utcnow()
    own = new_session_id("bob")
    other = "ffff" + uuid.uuid4().hex[4:] if shard_of("bob") != "ffff" else "eeee" + "0" * 28
    assert not other.startswith(session_tag("bob"))
    for sid in (own, other):
        store.create_session(
            Session(id=sid, username="bob", expires_at=now + timedelta(minutes=5), refresh_hash="h")
        )
    keys = Keys(url.rpartition("prefix=")[2])
    forward = keys.forward(other)
    assert forward.startswith("{" + keys.prefix + ":ffff}:") or "eeee" in forward
    assert raw.get(forward) == "bob"
    assert raw.exists(keys.forward(own)) == 0  # no forwarding needed
    assert set(raw.hkeys(keys.sessions_of("bob"))) == {own, other}  # both kept at bob's
    assert 0 < raw.pttl(forward) <= 5 * 60 * 1000
    assert store.get_session(other) is not None
    assert store.get_session_user(other, "bob")[0] is not None
    assert store.touch_session(other, utcnow())
    later = now + timedelta(hours=1)
    assert store.rotate_refresh(other, "h", "h2", later)
    assert raw.pttl(forward) > 50 * 60 * 1000  # the address lives as long as the session
    assert store.revoke_session(other)
    assert raw.exists(forward) == 0
    assert store.get_session(other) is None
    assert [s.id for s in store.list_sessions("bob")] == [own]
    store.close()


# The layout before: every key under {prefix}.  Written here as that version wrote it.


def _write_layout_1(raw: redis.Redis, prefix: str, users: int, sessions: int) -> dict[str, Any]:
    base = "{" + prefix + "}:"
    now = utcnow()
    made: dict[str, Any] = {"users": {}, "sessions": {}}
    pipe = raw.pipeline(transaction=False)
    for i in range(users):
        user = User.new(f"user{i:04d}", roles=["viewer"])
        made["users"][user.username] = user
        pipe.hset(base + "u:" + user.username, mapping={
            "id": user.id, "version": user.version, "record": _codec.user_to_json(user)
        })  # fmt: skip
        pipe.zadd(base + "users", {user.username: 0})
        pipe.set(base + "uid:" + user.id, user.username)
        for _ in range(sessions):
            sid = uuid.uuid4().hex  # ids were random then
            session = Session(
                id=sid, username=user.username, expires_at=now + timedelta(hours=2),
                refresh_hash=f"hash-{sid}",
            )  # fmt: skip
            made["sessions"][sid] = session
            pipe.hset(base + "s:" + sid, mapping={
                "record": _codec.session_to_json(session), "user": user.username,
                "refresh": session.refresh_hash, "exp": repr(_codec.timestamp(session.expires_at)),
                "seen": repr(_codec.timestamp(session.last_seen)),
            })  # fmt: skip
            pipe.pexpireat(base + "s:" + sid, int(_codec.timestamp(session.expires_at) * 1000) + 1)
            pipe.zadd(base + "us:" + user.username, {sid: _codec.timestamp(session.created_at)})
            pipe.pexpireat(
                base + "us:" + user.username, int(_codec.timestamp(session.expires_at) * 1000) + 1
            )
    pipe.set(base + "c:login-failures:user0001", 4, px=120_000)
    pipe.set(base + "c:login-locked:user0002", 1, px=90_000)
    group = Group.new("ops", ["items:read"])
    pipe.set(base + "g:ops", _codec.group_to_json(group))
    pipe.zadd(base + "groups", {"ops": 0})
    pipe.execute()
    return made


def test_a_populated_store_of_the_layout_before_is_upgraded_at_first_use(
    prefix_url: tuple[str, redis.Redis],
) -> None:
    url, raw = prefix_url
    prefix = url.rpartition("prefix=")[2]
    made = _write_layout_1(raw, prefix, users=250, sessions=2)
    store = RedisStore(url)  # its first command (the check) upgrades
    assert raw.get(f"{{{prefix}}}:layout") == "2"
    listed: list[User] = []
    after = None
    while True:
        page = store.list_users(after=after, limit=100)
        listed += page.items
        if page.next_after is None:
            break
        after = page.next_after
    assert [u.username for u in listed] == sorted(made["users"])
    for name, user in list(made["users"].items())[::25]:
        assert store.get_user(name) == user
        assert store.get_user_by_id(user.id) == user
        ids = {s.id for s in store.list_sessions(name)}
        assert ids == {sid for sid, s in made["sessions"].items() if s.username == name}
    # Sessions keep their ids (issued tokens name them) and their expiry.
    sid, session = next(iter(made["sessions"].items()))
    assert store.get_session(sid) == session
    assert store.get_session_user(sid, session.username) == (
        session, made["users"][session.username]
    )  # fmt: skip
    assert store.rotate_refresh(sid, session.refresh_hash, "new", utcnow() + timedelta(hours=3))
    assert store.revoke_session(sid) and store.get_session(sid) is None
    # Lock-out state survives, with its time left.
    assert store.get_counter("login-failures:user0001") == 4
    assert 100 < store.counter_ttl("login-failures:user0001") <= 120
    assert store.get_counter("login-locked:user0002") == 1
    assert store.get_group("ops") == Group.new("ops", ["items:read"])
    # Nothing of the old layout is left but the groups, which did not move.
    old = [k for k in raw.scan_iter(match=f"{{{prefix}}}:*", count=1000)]
    assert sorted(old) == sorted(
        [f"{{{prefix}}}:{k}" for k in ("layout", "names", "groups", "g:ops")]
    )
    store.close()


def test_the_upgrade_runs_once_while_other_processes_wait(
    prefix_url: tuple[str, redis.Redis],
) -> None:
    url, raw = prefix_url
    prefix = url.rpartition("prefix=")[2]
    made = _write_layout_1(raw, prefix, users=300, sessions=1)
    seen: list[Any] = []
    errors: list[BaseException] = []

    def first_use() -> None:
        try:
            store = RedisStore(url)
            seen.append(store.list_users(limit=1000).items)
            store.close()
        except BaseException as err:  # reported below
            errors.append(err)

    threads = [threading.Thread(target=first_use) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    assert [[u.username for u in items] for items in seen] == [sorted(made["users"])] * 4


def test_migrate_false_refuses_the_layout_before_until_db_upgrade(
    prefix_url: tuple[str, redis.Redis],
) -> None:
    from click.testing import CliRunner

    from authgate.cli import main

    url, raw = prefix_url
    prefix = url.rpartition("prefix=")[2]
    _write_layout_1(raw, prefix, users=3, sessions=1)
    strict = url + "&migrate=false"
    with pytest.raises(ConfigError, match="authgate db upgrade"):
        RedisStore(strict)
    runner = CliRunner()
    current = runner.invoke(main, ["--store", strict, "db", "current"])
    assert current.exit_code == 0, current.output
    assert "layout 1 (behind layout 2: run `authgate db upgrade`)" in current.output
    upgraded = runner.invoke(main, ["--store", strict, "db", "upgrade"])
    assert upgraded.exit_code == 0, upgraded.output
    assert "upgraded from layout 1" in upgraded.output
    assert "layout 2 (head)" in runner.invoke(main, ["--store", strict, "db", "current"]).output
    store = RedisStore(strict)
    assert len(store.list_users().items) == 3
    store.close()


def test_a_layout_from_a_newer_version_is_refused(prefix_url: tuple[str, redis.Redis]) -> None:
    url, raw = prefix_url
    prefix = url.rpartition("prefix=")[2]
    raw.set(f"{{{prefix}}}:layout", "3")
    with pytest.raises(ConfigError, match="newer authgate"):
        RedisStore(url)


def test_an_upgrade_cut_short_after_its_last_user_is_taken_up_again(
    prefix_url: tuple[str, redis.Redis],
) -> None:
    """The layout key says an upgrade is under way until it is done: a run that
    stopped before moving the counters is finished by the next process, not taken
    for an empty store."""
    url, raw = prefix_url
    prefix = url.rpartition("prefix=")[2]
    _write_layout_1(raw, prefix, users=2, sessions=1)
    store = RedisStore(url, check=False)
    # What a run leaves when it stops after its last user: users moved, counters not.
    raw.set(f"{{{prefix}}}:layout", "1-upgrading")
    raw.delete(f"{{{prefix}}}:users")
    assert store.get_counter("login-failures:user0001") == 4
    assert raw.get(f"{{{prefix}}}:layout") == "2"
    assert raw.exists(f"{{{prefix}}}:c:login-failures:user0001") == 0
    store.close()


def test_a_corrupt_session_of_the_layout_before_is_skipped_not_fatal(
    prefix_url: tuple[str, redis.Redis],
) -> None:
    url, raw = prefix_url
    prefix = url.rpartition("prefix=")[2]
    made = _write_layout_1(raw, prefix, users=3, sessions=2)
    broken = next(sid for sid, s in made["sessions"].items() if s.username == "user0001")
    raw.hset(f"{{{prefix}}}:s:{broken}", "record", "{not json")
    store = RedisStore(url)
    assert {s.id for s in store.list_sessions("user0001")} == {
        sid for sid, s in made["sessions"].items() if s.username == "user0001" and sid != broken
    }
    assert len(store.list_sessions("user0002")) == 2
    store.close()


def test_an_upgrade_that_lost_its_lock_stops() -> None:
    """Another process took the lock (this one outlived it): renewing fails and the
    run stops rather than racing it."""
    from authgate.errors import StoreUnavailable
    from authgate.faces import drive
    from authgate.stores.redis.layout import _Lock

    replies = iter([0])  # the renewal script: the key no longer holds our token
    with pytest.raises(StoreUnavailable, match="lost its lock"):
        drive(_Lock("{p}:upgrading", "ours").renew(), lambda step: next(replies))


def test_a_sessions_hash_expiry_only_ever_moves_later(prefix_url: tuple[str, redis.Redis]) -> None:
    url, raw = prefix_url
    store = RedisStore(url)
    now = utcnow()
    for minutes in (600, 5):  # a long session, then a short one
        store.create_session(
            Session(id=new_session_id("eve"), username="eve",
                    expires_at=now + timedelta(minutes=minutes))
        )  # fmt: skip
    hash_key = Keys(url.rpartition("prefix=")[2]).sessions_of("eve")
    assert raw.pttl(hash_key) > 500 * 60 * 1000
    raw.persist(hash_key)  # as an interrupted upgrade may leave it: kept forever
    store.create_session(
        Session(id=new_session_id("eve"), username="eve", expires_at=now + timedelta(minutes=5))
    )
    assert raw.pttl(hash_key) == -1
    store.close()


def test_a_create_sent_again_after_its_answer_was_lost_keeps_the_lookups(
    prefix_url: tuple[str, redis.Redis],
) -> None:
    """redis-py resends a command whose connection dropped: the second create of the
    same record must not undo the first's username list entry and id lookup."""
    url, _ = prefix_url
    store = RedisStore(url)
    user = User.new("frank")
    store.create_user(user)
    store.create_user(user)  # the same record again: done already
    assert store.get_user_by_id(user.id) == user
    assert [u.username for u in store.list_users().items] == ["frank"]
    with pytest.raises(UserExists):
        store.create_user(User.new("frank"))  # another user of that name
    assert store.get_user_by_id(user.id) == user
    store.close()
