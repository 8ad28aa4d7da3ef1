"""Every operation of the Redis store, defined once as the commands it sends (`_Redis`).

The key layout spreads users over a cluster (`keys`).  Whatever belongs to one user
(the record, one hash of all the user's sessions, API keys and handshakes, the
counters named after the user) shares the user's hash tag, ``{prefix:1a2b}:``
(`shard_of`), so every script stays in one slot while users spread over the slots.
Session ids begin with eight hex digits of their owner's username hash
(`new_session_id`), so an operation given an id alone goes straight to the owner's
sessions hash; a session whose id names another hash (made before this layout, or by
code of a user's own) leaves a forwarding address there.  What is the store's own
sits under ``{prefix}:``: the list of usernames for the admin listing, the groups, the
layout's version.  Lookups that cross users (the listing, id to user) are written
before the record they point at and checked against it when read, so no failure
between the two writes leaves a wrong answer.  Records are packed strings
(`records`).
"""

from __future__ import annotations

import functools
import os
import weakref
from datetime import datetime
from typing import Any, Generic, Protocol, TypeVar

from ...errors import (
    NotFound,
    UserExists,
    UserNotFound,
    VersionConflict,
)
from ...faces import operation
from ...users import Group, User, utcnow
from .. import _codec
from ..base import Page, Session
from ..cache import SessionCache, read_through
from . import records
from .commands import (
    _CREATE_SESSION,
    _CREATE_USER,
    _DELETE_GROUP,
    _DELETE_USER,
    _GET_SESSION,
    _GET_SESSION_USER,
    _INCR,
    _LIST_SESSIONS,
    _PUT_GROUP,
    _REVOKE_SESSION,
    _REVOKE_USER_SESSIONS,
    _ROTATE_REFRESH,
    _TOUCH_SESSION,
    _UPDATE_USER,
    MOVED,
    _Cmd,
    _lua,
    _Steps,
)
from .invalidator import DEAF_AFTER, _Invalidator, listener
from .keys import Keys
from .layout import ensure_layout
from .settings import RedisSettings, parse_redis_url

T = TypeVar("T")


class _Client(Protocol):
    def execute_command(self, *args: Any, **options: Any) -> Any: ...


C = TypeVar("C", bound=_Client)  # a face's redis-py client


def _ms(value: datetime) -> int:
    """Milliseconds for PEXPIREAT, rounded up so Redis never drops a key early."""
    return int(_codec.timestamp(value) * 1000) + 1


#: The stores whose session cache has a listening thread in this process.
_LISTENING: weakref.WeakSet[_Redis[Any]] = weakref.WeakSet()


def _listen_anew_after_fork() -> None:
    """A forked child (a pre-loading server's worker) has no listening thread: each
    store's cache starts again, with a thread of the child's own, on its next check.
    (Until then nothing answers from the inherited cache, which goes deaf anyway.)"""
    for store in list(_LISTENING):
        store._cache = None
        store._invalidator = None
    _LISTENING.clear()


os.register_at_fork(after_in_child=_listen_anew_after_fork)


class _Redis(Generic[C]):
    """Every operation of the Redis store, defined once as the commands it sends (no
    I/O here); `RedisStore` sends them with redis-py's sync client, `AsyncRedisStore`
    with its asyncio client.  Each is a plain method made an operation by assignment
    (``incr = operation(_incr)``), not by decorator: the mutation run (mutmut) leaves
    decorated functions alone.

    The session check is served from a `SessionCache` (`read_through`), kept honest by
    an invalidation thread started on the first check (a CLI never starts it); every
    change this process makes evicts what it changed at once.
    """

    _cache: SessionCache | None = None
    _invalidator: _Invalidator | None = None

    def __init__(
        self, url: str = "redis://localhost:6379/0", *, prefix: str | None = None,
        client: C | None = None,
    ) -> None:  # fmt: skip
        self.url = url
        self.settings = parse_redis_url(url, prefix=prefix)
        self._prefix = self.settings.prefix
        self._cache_ttl = self.settings.cache_ttl
        self.keys = Keys(self._prefix)
        #: The store's own keys (the username list, groups, the layout's version).
        self.base = self.keys.base
        #: Where every change that can end a session check is announced (username).
        self.channel = self.keys.channel
        #: The layout is known to be this version's (checked at the first operation).
        self._laid_out = False
        self._client: C = client if client is not None else self._connect(self.settings)
        self._command = self._client.execute_command

    @staticmethod
    def _connect(settings: RedisSettings) -> C:
        raise NotImplementedError

    def _steps(self, steps: _Steps[T]) -> _Steps[T]:
        """`steps`, after the first operation has checked the key layout (and upgraded
        one written by an older version, unless ``migrate=false``)."""
        if self._laid_out:
            return steps
        return self._after_layout(steps)

    def _after_layout(self, steps: _Steps[T]) -> _Steps[T]:
        yield from ensure_layout(self.keys, migrate=self.settings.migrate)
        self._laid_out = True
        return (yield from steps)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(prefix={self._prefix!r})"

    @property
    def prefix(self) -> str:
        """The key prefix (keys are ``{prefix}:...`` and ``{prefix:shard}:...``)."""
        return self._prefix

    def _session_cache(self) -> SessionCache | None:
        if self._cache is None and self._cache_ttl > 0:
            cache = SessionCache(self._cache_ttl, deaf_after=DEAF_AFTER)
            connect = functools.partial(listener, self.settings, self.channel)
            self._invalidator = _Invalidator(connect, self.channel, cache)
            self._invalidator.start()
            self._cache = cache
            _LISTENING.add(self)
        return self._cache

    def peek_session_user(
        self, session_id: str, username: str
    ) -> tuple[Session | None, User | None] | None:
        """The cached answer, or None (never a network call)."""
        cache = self._session_cache()
        return cache.get(session_id, username) if cache is not None else None

    def _evict(self, *, username: str = "", session_id: str = "") -> None:
        """Forget this process's cached answers about what a change touched (called
        whatever the change's outcome: a timeout may still have applied it)."""
        if self._cache is not None:
            if username:
                self._cache.evict_user(username)
            if session_id:
                self._cache.evict_session(session_id)

    def _stop_invalidator(self) -> None:
        if self._invalidator is not None:
            self._invalidator.stop()
            self._invalidator.join(2)

    def _ping(self) -> _Steps[None]:
        """Check the server answers; `StoreUnavailable` when it does not."""
        yield _Cmd(("PING",))

    ping = operation(_ping)

    # users

    def _user(self, username: str) -> _Steps[User | None]:
        raw = yield _Cmd(("GET", self.keys.user(username)))
        return records.unpack_user(raw) if raw is not None else None

    def _get_user(self, username: str) -> _Steps[User | None]:
        return self._user(username)

    get_user = operation(_get_user)

    def _get_user_by_id(self, user_id: str) -> _Steps[User | None]:
        name = yield _Cmd(("GET", self.keys.user_id(user_id)))
        if name is None:
            return None
        user = yield from self._user(name)
        return user if user is not None and user.id == user_id else None

    get_user_by_id = operation(_get_user_by_id)

    def _list_users(self, after: str | None = None, limit: int = 100) -> _Steps[Page]:
        # An entry whose record is missing or has another id is skipped: a create in
        # flight (its entry is written first) or one that failed halfway.  It is not
        # deleted here: the create may be about to write its record.
        low = f"({after}!" if after is not None else "-"
        users: list[User] = []
        while len(users) <= limit:
            batch = yield _Cmd(("ZRANGEBYLEX", self.keys.names, low, "+", "LIMIT", 0, limit + 1))
            for entry in batch:
                name, _, user_id = entry.partition(" ")
                user = yield from self._user(name)
                if user is not None and user.id == user_id:
                    users.append(user)
            if len(batch) <= limit:
                break
            low = f"({batch[-1]}"
        more = len(users) > limit
        users = users[:limit]
        return Page(users, users[-1].username if more else None)

    list_users = operation(_list_users)

    def _create_user(self, user: User) -> _Steps[User]:
        entry = self.keys.index_entry(user.username, user.id)
        yield _Cmd(("ZADD", self.keys.names, 0, entry), write=True)
        yield _Cmd(("SET", self.keys.user_id(user.id), user.username), write=True)
        created = yield from _lua(
            _CREATE_USER,
            (self.keys.user(user.username),),
            (records.pack_user(user), records.escape(user.id)),
        )
        if not created:
            yield _Cmd(("ZREM", self.keys.names, entry), write=True)
            yield _Cmd(("DEL", self.keys.user_id(user.id)), write=True)
            raise UserExists()
        return user

    create_user = operation(_create_user)

    def _update_user(self, user: User, expected_version: int) -> _Steps[User]:
        args = (records.escape(user.id), expected_version, records.pack_user(user))
        try:
            result = yield from _lua(
                _UPDATE_USER,
                (self.keys.user(user.username),),
                (*args, self.channel, user.username),
            )
        finally:
            self._evict(username=user.username)
        if result == -1:
            raise UserNotFound()
        if result == 0:
            raise VersionConflict()
        return user

    update_user = operation(_update_user)

    def _delete_user(self, username: str, expected_version: int | None = None) -> _Steps[None]:
        version = "" if expected_version is None else str(expected_version)
        try:
            deleted = yield from _lua(
                _DELETE_USER,
                (self.keys.user(username), self.keys.sessions_of(username)),
                (records.escape(username), version, self.channel),
            )
        finally:
            self._evict(username=username)
        if deleted == -1:
            raise VersionConflict()
        if not deleted:
            raise UserNotFound()
        deleted = records.unescape(deleted)
        yield _Cmd(("ZREM", self.keys.names, self.keys.index_entry(username, deleted)), write=True)
        yield _Cmd(("DEL", self.keys.user_id(deleted)), write=True)

    delete_user = operation(_delete_user)

    # groups

    def _group(self, name: str) -> _Steps[Group | None]:
        raw = yield _Cmd(("GET", self.keys.group(name)))
        return _codec.group_from_json(raw) if raw is not None else None

    def _get_group(self, name: str) -> _Steps[Group | None]:
        return self._group(name)

    get_group = operation(_get_group)

    def _list_groups(self) -> _Steps[list[Group]]:
        names = yield _Cmd(("ZRANGE", self.keys.groups, 0, -1))
        groups: list[Group] = []
        for name in names:
            group = yield from self._group(name)
            if group is not None:
                groups.append(group)
        return groups

    list_groups = operation(_list_groups)

    def _put_group(self, group: Group) -> _Steps[Group]:
        yield from _lua(
            _PUT_GROUP,
            (self.keys.group(group.name), self.keys.groups),
            (group.name, _codec.group_to_json(group)),
        )
        return group

    put_group = operation(_put_group)

    def _delete_group(self, name: str) -> _Steps[None]:
        deleted = yield from _lua(_DELETE_GROUP, (self.keys.group(name), self.keys.groups), (name,))
        if not deleted:
            raise NotFound("no such group")

    delete_group = operation(_delete_group)

    # sessions

    def _create_session(self, session: Session) -> _Steps[Session]:
        home = self.keys.sessions_of(session.username)
        expires_ms = _ms(session.expires_at)
        if self.keys.sessions_named_by(session.id) != home:  # the id points elsewhere
            forward = self.keys.forward(session.id)
            yield _Cmd(("SET", forward, session.username, "PXAT", expires_ms), write=True)
        now = utcnow()
        yield from _lua(
            _CREATE_SESSION,
            (home,),
            (session.id, records.pack_session(session), expires_ms, _ms(now), records.micros(now)),
        )
        return session

    create_session = operation(_create_session)

    def _by_id(self, script: str, session_id: str, *args: Any) -> _Steps[tuple[Any, str]]:
        """Run a script of the session `session_id` on the hash its id names, and once
        more on its owner's if it answers that the session lives there.  Returns the
        answer and the forwarding key followed ("" when none was)."""
        forward = self.keys.forward(session_id)
        keys = (self.keys.sessions_named_by(session_id), forward)
        reply = yield from _lua(script, keys, (session_id, *args))
        if not (isinstance(reply, list) and len(reply) == 2 and reply[0] == MOVED):
            return reply, ""
        home = self.keys.sessions_of(reply[1])  # (and no forwarding from there)
        reply = yield from _lua(script, (home, f"{home}:none"), (session_id, *args))
        return reply, forward

    def _get_session(self, session_id: str) -> _Steps[Session | None]:
        raw, _ = yield from self._by_id(_GET_SESSION, session_id)
        if not isinstance(raw, str):
            return None
        session = records.unpack_session(session_id, raw)
        return None if session.is_expired() else session

    get_session = operation(_get_session)

    def _get_session_user(
        self, session_id: str, username: str
    ) -> _Steps[tuple[Session | None, User | None]]:
        return read_through(
            self._session_cache(), session_id, username, self._session_user(session_id, username)
        )

    get_session_user = operation(_get_session_user)

    def _session_user(
        self, session_id: str, username: str
    ) -> _Steps[tuple[Session | None, User | None]]:
        user_key, home = self.keys.user_and_sessions(username)
        row = yield from _lua(_GET_SESSION_USER, (home, user_key), (session_id,))
        session = records.unpack_session(session_id, row[0]) if row[0] else None
        user = records.unpack_user(row[1]) if row[1] else None
        if session is None and self.keys.sessions_named_by(session_id) != home:
            # Not `username`'s (a token naming another user), or an id of another shape.
            return (yield from self._get_session(session_id)), user
        return (None if session is None or session.is_expired() else session), user

    def _touch_session(self, session_id: str, last_seen: datetime) -> _Steps[bool]:
        done, _ = yield from self._by_id(_TOUCH_SESSION, session_id, records.micros(last_seen))
        if self._cache is not None:
            self._cache.touch(session_id, last_seen)
        return bool(done)

    touch_session = operation(_touch_session)

    def _rotate_refresh(
        self, session_id: str, expected_hash: str, new_hash: str, expires_at: datetime
    ) -> _Steps[bool]:
        expires_ms = _ms(expires_at)
        done, forwarded = yield from self._by_id(
            _ROTATE_REFRESH,
            session_id,
            records.pack_refresh(expected_hash),
            records.pack_refresh(new_hash),
            records.micros(utcnow()),
            records.micros(expires_at),
            expires_ms,
            _ms(utcnow()),
        )
        if done and forwarded:  # the address lives as long as the session
            yield _Cmd(("PEXPIREAT", forwarded, expires_ms), write=True)
        return bool(done)

    rotate_refresh = operation(_rotate_refresh)

    def _revoke_session(self, session_id: str) -> _Steps[bool]:
        try:
            done, forwarded = yield from self._by_id(_REVOKE_SESSION, session_id, self.channel)
        finally:
            self._evict(session_id=session_id)
        if forwarded:
            yield _Cmd(("DEL", forwarded), write=True)
        return bool(done)

    revoke_session = operation(_revoke_session)

    def _list_sessions(self, username: str) -> _Steps[list[Session]]:
        flat = yield from _lua(
            _LIST_SESSIONS,
            (self.keys.sessions_of(username),),
            (records.escape(username), records.micros(utcnow())),
        )
        sessions = [records.unpack_session(flat[i], flat[i + 1]) for i in range(0, len(flat), 2)]
        return sorted(
            (s for s in sessions if not s.is_expired()), key=lambda s: (s.created_at, s.id)
        )

    list_sessions = operation(_list_sessions)

    def _revoke_user_sessions(self, username: str, keep: str | None = None) -> _Steps[int]:
        try:
            count = yield from _lua(
                _REVOKE_USER_SESSIONS,
                (self.keys.sessions_of(username),),
                (records.escape(username), keep or "", self.channel),
            )
        finally:
            self._evict(username=username)
        return int(count)

    revoke_user_sessions = operation(_revoke_user_sessions)

    # counters

    def _incr(self, key: str, ttl_seconds: float, by: int = 1) -> _Steps[int]:
        ttl_ms = max(1, int(ttl_seconds * 1000))
        value = yield from _lua(_INCR, (self.keys.counter(key),), (ttl_ms, int(by)))
        return int(value)

    incr = operation(_incr)

    def _get_counter(self, key: str) -> _Steps[int]:
        value = yield _Cmd(("GET", self.keys.counter(key)))
        return int(value) if value is not None else 0

    get_counter = operation(_get_counter)

    def _counter_ttl(self, key: str) -> _Steps[float]:
        ttl = yield _Cmd(("PTTL", self.keys.counter(key)))
        return max(0.0, int(ttl) / 1000)

    counter_ttl = operation(_counter_ttl)

    def _expire_counter(self, key: str, ttl_seconds: float) -> _Steps[bool]:
        ttl_ms = max(1, int(ttl_seconds * 1000))
        done = yield _Cmd(("PEXPIRE", self.keys.counter(key), ttl_ms), write=True)
        return bool(done)

    expire_counter = operation(_expire_counter)

    def _reset_counter(self, key: str) -> _Steps[None]:
        yield _Cmd(("DEL", self.keys.counter(key)), write=True)

    reset_counter = operation(_reset_counter)
