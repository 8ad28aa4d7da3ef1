"""The version of the Redis store's key layout, and the upgrade from the one before.

Layout 1 kept every key under the one hash tag ``{prefix}`` (on a cluster, everything
on one slot of one primary), users and sessions as hashes around a JSON record.
Layout 2 files each user's keys under the user's shard (see `logic`), each user and
session packed into one string (`records`).  The first operation of a
store checks ``{prefix}:layout``; a store of layout 1 is upgraded then, by the one
process that takes the upgrade lock while the others wait (``migrate=false`` refuses
instead and `authgate db upgrade` does it).  The upgrade is written as steps like
every operation, so either face runs it; it copies user by user and deletes what it
copied, so a run cut short is taken up again by the next.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass

from ...errors import ConfigError, StoreError, StoreUnavailable
from .. import _codec
from . import records
from .commands import _Cmd, _lua, _Pause, _Steps
from .keys import Keys

__all__ = ["LAYOUT", "ensure_layout", "layout_of"]

#: The key layout this version writes.
LAYOUT = "2"
#: What the layout key holds while an upgrade from layout 1 is under way.
_UPGRADING = "1-upgrading"
_log = logging.getLogger("authgate.store")
#: How long the upgrade lock lasts without being renewed (it is renewed per batch).
_LOCK_MS = 30_000
#: How long a process waits for another's upgrade before answering "unavailable".
_WAIT_SECONDS = 120.0
_BATCH = 100
_USER_FIELDS = ("id", "version", "record")
_SESSION_FIELDS = ("record", "refresh", "exp", "seen")


def layout_of(keys: Keys) -> _Steps[str | None]:
    """The store's layout version: ``"2"``, ``"1"`` for data of the layout before,
    None for an empty store."""
    version = yield _Cmd(("GET", keys.layout))
    if version == _UPGRADING:  # an upgrade began and did not finish
        return "1"
    if version is not None:
        return str(version)
    old = yield _Cmd(("EXISTS", keys.base + "users"))
    return "1" if old else None


def ensure_layout(keys: Keys, *, migrate: bool) -> _Steps[str | None]:
    """Make sure the store is of this version's layout, upgrading one of the layout
    before when `migrate` allows; returns the layout it found (None: none yet)."""
    base, prefix = keys.base, keys.prefix
    waited = 0.0
    while True:
        found = yield from layout_of(keys)
        if found == LAYOUT:
            return found
        if found is None:
            yield _Cmd(("SET", keys.layout, LAYOUT, "NX"), write=True)
            return found
        if found != "1":
            raise ConfigError(
                f"the Redis store under prefix {prefix!r} has key layout {found}, written "
                f"by a newer authgate than this one (layout {LAYOUT}): upgrade authgate"
            )
        if not migrate:
            raise ConfigError(
                f"the Redis store under prefix {prefix!r} has the key layout of an older "
                "authgate: run `authgate db upgrade`, or open it without migrate=false"
            )
        lock = _Lock(base + "upgrading", secrets.token_hex(8))
        taken = yield _Cmd(("SET", lock.key, lock.token, "NX", "PX", _LOCK_MS), write=True)
        if taken:
            try:
                yield from _upgrade(keys, lock)
            except Exception:  # (not on GeneratorExit: a cancelled run leaves it to expire)
                yield from lock.release()
                raise
            yield from lock.release()
            return found
        if waited >= _WAIT_SECONDS:
            raise StoreUnavailable("the Redis store's key layout is being upgraded; retry soon")
        yield _Pause(0.2)
        waited += 0.2


@dataclass(frozen=True, slots=True)
class _Lock:
    """The upgrade lock, held while its key holds our token: renewed and released only
    then (a run that outlived its lock stops instead of racing the next holder)."""

    key: str
    token: str

    def renew(self) -> _Steps[None]:
        held = yield from _lua(_RENEW, (self.key,), (self.token, _LOCK_MS))
        if not held:
            raise StoreUnavailable("the key layout upgrade lost its lock; it goes on elsewhere")

    def release(self) -> _Steps[None]:
        yield from _lua(_RELEASE, (self.key,), (self.token,))


_RENEW = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
return redis.call('PEXPIRE', KEYS[1], ARGV[2])
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def _upgrade(keys: Keys, lock: _Lock) -> _Steps[None]:
    """Layout 1 to 2: every user (record, sessions, id lookup), then the counters.
    The layout key says an upgrade is under way until it is done, so a run cut short
    anywhere (after the last user, say) is taken up again, never taken for empty."""
    old = keys.base  # layout 1 kept everything here
    yield _Cmd(("SET", keys.layout, _UPGRADING), write=True)
    while True:
        names = yield _Cmd(("ZRANGE", old + "users", 0, _BATCH - 1))
        if not names:
            break
        for name in names:
            yield from lock.renew()
            yield from _move_user(keys, name)
            yield _Cmd(("ZREM", old + "users", name), write=True)
    cursor = "0"
    while True:
        yield from lock.renew()
        cursor, found = yield _Cmd(("SCAN", cursor, "MATCH", old + "c:*", "COUNT", 1000), route=old)
        for key in found:
            yield from _move_counter(key, keys.counter(key[len(old) + 2 :]))
        if str(cursor) == "0":
            break
    yield from lock.renew()
    yield _Cmd(("SET", keys.layout, LAYOUT), write=True)


def _move_user(keys: Keys, name: str) -> _Steps[None]:
    old = keys.base
    old_user = f"{old}u:{name}"
    user_id, version, record = yield _Cmd(("HMGET", old_user, *_USER_FIELDS))
    if user_id is not None:
        packed = f"{records.escape(user_id)}|{version}|{record}"
        yield _Cmd(("SET", keys.user(name), packed), write=True)
        yield _Cmd(("ZADD", keys.names, 0, keys.index_entry(name, user_id)), write=True)
        yield _Cmd(("SET", keys.user_id(user_id), name), write=True)
        yield _Cmd(("DEL", f"{old}uid:{user_id}"), write=True)
    old_index = f"{old}us:{name}"
    home = keys.sessions_of(name)
    before = yield _Cmd(("PTTL", home))  # -2: made here; -1: kept forever; else time left
    longest = 0
    members = yield _Cmd(("ZRANGE", old_index, 0, -1))
    for sid in members:
        session = f"{old}s:{sid}"
        record, refresh, expires, seen = yield _Cmd(("HMGET", session, *_SESSION_FIELDS))
        left = yield _Cmd(("PTTL", session))
        if record is None or left == -2:
            continue
        try:
            moved = _codec.session_from_json(record).replace(
                refresh_hash=refresh or "",
                expires_at=_codec.from_timestamp(float(expires)),
                last_seen=_codec.from_timestamp(float(seen)),
            )
        except (StoreError, TypeError, ValueError):  # one corrupt record stops nothing
            _log.warning("the key layout upgrade skipped a corrupt session of %s", name)
            yield _Cmd(("DEL", session), write=True)
            continue
        yield _Cmd(("HSET", home, sid, records.pack_session(moved)), write=True)
        longest = max(longest, left)
        if keys.sessions_named_by(sid) != home:  # ids were random: say where it went
            expiry = ("PX", left) if left > 0 else ()
            yield _Cmd(("SET", keys.forward(sid), name, *expiry), write=True)
        yield _Cmd(("DEL", session), write=True)
    if longest > 0 and (before == -2 or 0 <= before < longest):  # later, never earlier
        yield _Cmd(("PEXPIRE", home, longest), write=True)
    yield _Cmd(("DEL", old_index), write=True)
    yield _Cmd(("DEL", old_user), write=True)


def _move_counter(old: str, new: str) -> _Steps[None]:
    value = yield _Cmd(("GET", old))
    left = yield _Cmd(("PTTL", old))
    if value is not None and left != -2:
        expiry = ("PX", left) if left > 0 else ()
        yield _Cmd(("SET", new, value, *expiry), write=True)
    yield _Cmd(("DEL", old), write=True)
