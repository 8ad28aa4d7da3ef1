"""Every operation of the Redis store, defined once as the commands it sends (`_Redis`),
and the store URL's own parameters."""

from __future__ import annotations

import math
import os
import weakref
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Generic, Protocol, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ...errors import (
    ConfigError,
    NotFound,
    UserExists,
    UserNotFound,
    VersionConflict,
)
from ...faces import operation
from ...users import Group, User, utcnow
from .. import _codec
from ..base import Page, Session
from ..cache import CACHE_TTL, SessionCache, read_through
from .commands import (
    _CREATE_SESSION,
    _CREATE_USER,
    _DELETE_GROUP,
    _DELETE_USER,
    _GET_SESSION_USER,
    _INCR,
    _LIST_SESSIONS,
    _PUT_GROUP,
    _REVOKE_SESSION,
    _REVOKE_USER_SESSIONS,
    _ROTATE_REFRESH,
    _TOUCH_SESSION,
    _UPDATE_USER,
    _Cmd,
    _lua,
    _Steps,
)
from .invalidator import DEAF_AFTER, _Invalidator

T = TypeVar("T")


class _Client(Protocol):
    def execute_command(self, *args: Any, **options: Any) -> Any: ...


C = TypeVar("C", bound=_Client)  # a face's redis-py client


def _ms(value: datetime) -> int:
    """Milliseconds for PEXPIREAT, rounded up so Redis never drops a key early."""
    return int(_codec.timestamp(value) * 1000) + 1


def _ts(value: datetime) -> str:
    return repr(_codec.timestamp(value))


def _session_from_row(row: Sequence[Any]) -> Session:
    record, refresh, exp_ts, seen_ts = row
    return _codec.session_from_json(record).replace(
        refresh_hash=refresh or "",
        expires_at=_codec.from_timestamp(float(exp_ts)),
        last_seen=_codec.from_timestamp(float(seen_ts)),
    )


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


def _parse_url(url: str) -> tuple[str, str, float]:
    """Split authgate's own query parameters (``prefix``, ``cache_ttl``) off a URL."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    prefix = "authgate"
    cache_ttl = CACHE_TTL
    rest = []
    for name, value in query:
        if name == "prefix":
            prefix = value
        elif name == "cache_ttl":
            try:
                cache_ttl = float(value)
            except ValueError:
                cache_ttl = math.nan
            if not 0 <= cache_ttl < math.inf:
                raise ConfigError(
                    f"cache_ttl must be a number of seconds (0 turns the cache off), not {value!r}"
                )
        else:
            rest.append((name, value))
    if not prefix or any(ch in prefix for ch in "{}"):
        raise ConfigError("the Redis key prefix must be non-empty and contain no braces")
    return urlunsplit(parts._replace(query=urlencode(rest))), prefix, cache_ttl


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
        self._client_url, url_prefix, self._cache_ttl = _parse_url(url)
        self._prefix = prefix or url_prefix
        self.base = "{" + self._prefix + "}:"
        #: Where every change that can end a session check is announced (username).
        self.channel = self.base + "changes"
        self._client: C = client if client is not None else self._connect(self._client_url)
        self._command = self._client.execute_command

    @staticmethod
    def _connect(url: str) -> C:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(prefix={self._prefix!r})"

    @property
    def prefix(self) -> str:
        """The key prefix (all keys are ``{prefix}:...``)."""
        return self._prefix

    def _session_cache(self) -> SessionCache | None:
        if self._cache is None and self._cache_ttl > 0:
            cache = SessionCache(self._cache_ttl, deaf_after=DEAF_AFTER)
            self._invalidator = _Invalidator(self._client_url, self.channel, cache)
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

    def _user_key(self, username: str) -> str:
        return f"{self.base}u:{username}"

    # users

    def _user(self, username: str) -> _Steps[User | None]:
        raw = yield _Cmd(("HGET", self._user_key(username), "record"))
        return _codec.user_from_json(raw) if raw is not None else None

    def _get_user(self, username: str) -> _Steps[User | None]:
        return self._user(username)

    get_user = operation(_get_user)

    def _get_user_by_id(self, user_id: str) -> _Steps[User | None]:
        name = yield _Cmd(("GET", f"{self.base}uid:{user_id}"))
        if name is None:
            return None
        return (yield from self._user(name))

    get_user_by_id = operation(_get_user_by_id)

    def _list_users(self, after: str | None = None, limit: int = 100) -> _Steps[Page]:
        low = f"({after}" if after is not None else "-"
        names = yield _Cmd(("ZRANGEBYLEX", f"{self.base}users", low, "+", "LIMIT", 0, limit + 1))
        more = len(names) > limit
        names = names[:limit]
        users: list[User] = []
        for name in names:
            user = yield from self._user(name)
            if user is not None:
                users.append(user)
        return Page(users, names[-1] if more and names else None)

    list_users = operation(_list_users)

    def _create_user(self, user: User) -> _Steps[User]:
        created = yield from _lua(
            _CREATE_USER,
            (self._user_key(user.username), f"{self.base}users", f"{self.base}uid:{user.id}"),
            (user.username, user.id, user.version, _codec.user_to_json(user)),
        )
        if not created:
            raise UserExists()
        return user

    create_user = operation(_create_user)

    def _update_user(self, user: User, expected_version: int) -> _Steps[User]:
        args = (user.id, expected_version, user.version, _codec.user_to_json(user))
        try:
            result = yield from _lua(
                _UPDATE_USER,
                (self._user_key(user.username),),
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
        keys = (self._user_key(username), f"{self.base}users", f"{self.base}us:{username}")
        version = "" if expected_version is None else str(expected_version)
        try:
            deleted = yield from _lua(_DELETE_USER, keys, (username, self.base, version))
        finally:
            self._evict(username=username)
        if deleted == -1:
            raise VersionConflict()
        if not deleted:
            raise UserNotFound()

    delete_user = operation(_delete_user)

    # groups

    def _group(self, name: str) -> _Steps[Group | None]:
        raw = yield _Cmd(("GET", f"{self.base}g:{name}"))
        return _codec.group_from_json(raw) if raw is not None else None

    def _get_group(self, name: str) -> _Steps[Group | None]:
        return self._group(name)

    get_group = operation(_get_group)

    def _list_groups(self) -> _Steps[list[Group]]:
        names = yield _Cmd(("ZRANGE", f"{self.base}groups", 0, -1))
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
            (f"{self.base}g:{group.name}", f"{self.base}groups"),
            (group.name, _codec.group_to_json(group)),
        )
        return group

    put_group = operation(_put_group)

    def _delete_group(self, name: str) -> _Steps[None]:
        deleted = yield from _lua(
            _DELETE_GROUP, (f"{self.base}g:{name}", f"{self.base}groups"), (name,)
        )
        if not deleted:
            raise NotFound("no such group")

    delete_group = operation(_delete_group)

    # sessions

    def _create_session(self, session: Session) -> _Steps[Session]:
        yield from _lua(
            _CREATE_SESSION,
            (f"{self.base}s:{session.id}", f"{self.base}us:{session.username}"),
            (
                _codec.session_to_json(session),
                session.username,
                session.refresh_hash,
                _ts(session.expires_at),
                _ts(session.last_seen),
                _codec.timestamp(session.created_at),
                session.id,
                _ms(session.expires_at),
                _ms(utcnow()),
            ),
        )
        return session

    create_session = operation(_create_session)

    def _get_session(self, session_id: str) -> _Steps[Session | None]:
        row = yield _Cmd(
            ("HMGET", f"{self.base}s:{session_id}", "record", "refresh", "exp", "seen")
        )
        if row[0] is None:
            return None
        session = _session_from_row(row)
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
        row = yield from _lua(
            _GET_SESSION_USER, (f"{self.base}s:{session_id}", self._user_key(username)), ()
        )
        session = _session_from_row(row[:4]) if row[0] else None
        user = _codec.user_from_json(row[4]) if row[4] else None
        return (None if session is None or session.is_expired() else session), user

    def _touch_session(self, session_id: str, last_seen: datetime) -> _Steps[bool]:
        done = yield from _lua(_TOUCH_SESSION, (f"{self.base}s:{session_id}",), (_ts(last_seen),))
        if self._cache is not None:
            self._cache.touch(session_id, last_seen)
        return bool(done)

    touch_session = operation(_touch_session)

    def _rotate_refresh(
        self, session_id: str, expected_hash: str, new_hash: str, expires_at: datetime
    ) -> _Steps[bool]:
        done = yield from _lua(
            _ROTATE_REFRESH,
            (f"{self.base}s:{session_id}",),
            (
                expected_hash,
                new_hash,
                _ts(expires_at),
                _ts(utcnow()),
                _ms(expires_at),
                _ms(utcnow()),
                self.base,
            ),
        )
        return bool(done)

    rotate_refresh = operation(_rotate_refresh)

    def _revoke_session(self, session_id: str) -> _Steps[bool]:
        try:
            done = yield from _lua(
                _REVOKE_SESSION, (f"{self.base}s:{session_id}",), (self.base, session_id)
            )
        finally:
            self._evict(session_id=session_id)
        return bool(done)

    revoke_session = operation(_revoke_session)

    def _list_sessions(self, username: str) -> _Steps[list[Session]]:
        flat = yield from _lua(_LIST_SESSIONS, (f"{self.base}us:{username}",), (self.base,))
        rows = [flat[i : i + 4] for i in range(0, len(flat), 4)]
        sessions = [_session_from_row(row) for row in rows]
        return sorted(
            (s for s in sessions if not s.is_expired()), key=lambda s: (s.created_at, s.id)
        )

    list_sessions = operation(_list_sessions)

    def _revoke_user_sessions(self, username: str, keep: str | None = None) -> _Steps[int]:
        try:
            count = yield from _lua(
                _REVOKE_USER_SESSIONS,
                (f"{self.base}us:{username}",),
                (self.base, keep or "", username),
            )
        finally:
            self._evict(username=username)
        return int(count)

    revoke_user_sessions = operation(_revoke_user_sessions)

    # counters

    def _incr(self, key: str, ttl_seconds: float) -> _Steps[int]:
        ttl_ms = max(1, int(ttl_seconds * 1000))
        value = yield from _lua(_INCR, (f"{self.base}c:{key}",), (ttl_ms,))
        return int(value)

    incr = operation(_incr)

    def _get_counter(self, key: str) -> _Steps[int]:
        value = yield _Cmd(("GET", f"{self.base}c:{key}"))
        return int(value) if value is not None else 0

    get_counter = operation(_get_counter)

    def _counter_ttl(self, key: str) -> _Steps[float]:
        ttl = yield _Cmd(("PTTL", f"{self.base}c:{key}"))
        return max(0.0, int(ttl) / 1000)

    counter_ttl = operation(_counter_ttl)

    def _expire_counter(self, key: str, ttl_seconds: float) -> _Steps[bool]:
        done = yield _Cmd(("PEXPIRE", f"{self.base}c:{key}", max(1, int(ttl_seconds * 1000))))
        return bool(done)

    expire_counter = operation(_expire_counter)

    def _reset_counter(self, key: str) -> _Steps[None]:
        yield _Cmd(("DEL", f"{self.base}c:{key}"))

    reset_counter = operation(_reset_counter)
