"""The production store (``redis://host:port/db``, ``rediss://...``) over redis-py.

Each operation is written once, in `_Redis`, as a generator that yields the Redis
commands it needs and receives their replies (`authgate.faces`); `RedisStore` sends
them with redis-py's sync client and `AsyncRedisStore` with its asyncio client, and
neither face has an operation of its own.  Every change that touches
several keys runs as one Lua script, so it is atomic.

All keys share the hash tag ``{prefix}``, so on Redis Cluster no script crosses slots.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from datetime import datetime
from hashlib import sha1
from typing import Any, Generic, Protocol, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

try:
    import redis
    import redis.asyncio as aioredis
    from redis.asyncio.retry import Retry as AsyncRetry
    from redis.backoff import ExponentialBackoff
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import NoScriptError, RedisError
    from redis.exceptions import TimeoutError as RedisTimeoutError
    from redis.retry import Retry
except ImportError as _err:  # pragma: no cover - exercised only without the extra
    raise ImportError("the Redis store needs redis-py: pip install 'authgate[redis]'") from _err

from ..errors import (
    ConfigError,
    NotFound,
    StoreError,
    StoreUnavailable,
    UserExists,
    UserNotFound,
    VersionConflict,
)
from ..faces import AsyncFace, SyncFace, adrive, drive, operation
from ..users import Group, User, utcnow
from . import _codec
from .base import Page, Session
from .cache import SessionCache, read_through

__all__ = ["AsyncRedisStore", "RedisStore"]

T = TypeVar("T")


class _Client(Protocol):
    def execute_command(self, *args: Any, **options: Any) -> Any: ...


C = TypeVar("C", bound=_Client)  # a face's redis-py client


@dataclass(frozen=True, slots=True)
class _Cmd:
    """One Redis command (what the store's steps yield; a face sends it)."""

    args: tuple[Any, ...]


_Steps = Generator[_Cmd, Any, T]


@functools.cache
def _sha(script: str) -> str:
    return sha1(script.encode(), usedforsecurity=False).hexdigest()


def _lua(script: str, keys: tuple[str, ...], args: tuple[Any, ...]) -> _Steps[Any]:
    """Run a Lua script: by its SHA, loading it first when the server lacks it."""
    try:
        return (yield _Cmd(("EVALSHA", _sha(script), len(keys), *keys, *args)))
    except NoScriptError:
        return (yield _Cmd(("EVAL", script, len(keys), *keys, *args)))


_CREATE_USER = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'id', ARGV[2], 'version', ARGV[3], 'record', ARGV[4])
redis.call('ZADD', KEYS[2], 0, ARGV[1])
redis.call('SET', KEYS[3], ARGV[1])
return 1
"""

_UPDATE_USER = """
local cur = redis.call('HMGET', KEYS[1], 'id', 'version')
if not cur[1] or cur[1] ~= ARGV[1] then return -1 end
if cur[2] ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], 'version', ARGV[3], 'record', ARGV[4])
redis.call('PUBLISH', ARGV[5], ARGV[6])
return 1
"""

_DELETE_USER = """
local cur = redis.call('HMGET', KEYS[1], 'id', 'version')
local id = cur[1]
if not id then return 0 end
if ARGV[3] ~= '' and cur[2] ~= ARGV[3] then return -1 end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('DEL', ARGV[2] .. 'uid:' .. id)
for _, sid in ipairs(redis.call('ZRANGE', KEYS[3], 0, -1)) do
  redis.call('DEL', ARGV[2] .. 's:' .. sid)
end
redis.call('DEL', KEYS[3])
redis.call('PUBLISH', ARGV[2] .. 'changes', ARGV[1])
return 1
"""

_PUT_GROUP = """
redis.call('SET', KEYS[1], ARGV[2])
redis.call('ZADD', KEYS[2], 0, ARGV[1])
return 1
"""

_DELETE_GROUP = """
if redis.call('DEL', KEYS[1]) == 0 then return 0 end
redis.call('ZREM', KEYS[2], ARGV[1])
return 1
"""

# A user's session index lives as long as their longest session, so the index of a
# made-up name (a SCRAM HELLO) goes by itself.  Expects locals idx, exp_ms and now_ms.
_EXTEND_INDEX = """
local left = redis.call('PTTL', idx)
if left < 0 or now_ms + left < exp_ms then redis.call('PEXPIREAT', idx, exp_ms) end
"""

_CREATE_SESSION = (
    """
redis.call('HSET', KEYS[1], 'record', ARGV[1], 'user', ARGV[2], 'refresh', ARGV[3],
           'exp', ARGV[4], 'seen', ARGV[5])
redis.call('PEXPIREAT', KEYS[1], ARGV[8])
redis.call('ZADD', KEYS[2], ARGV[6], ARGV[7])
local idx, exp_ms, now_ms = KEYS[2], tonumber(ARGV[8]), tonumber(ARGV[9])
"""
    + _EXTEND_INDEX
    + """
return 1
"""
)

_GET_SESSION_USER = """
local row = redis.call('HMGET', KEYS[1], 'record', 'refresh', 'exp', 'seen')
return {row[1], row[2], row[3], row[4], redis.call('HGET', KEYS[2], 'record')}
"""

_TOUCH_SESSION = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'seen', ARGV[1])
return 1
"""

_ROTATE_REFRESH = (
    """
local cur = redis.call('HGET', KEYS[1], 'refresh')
if not cur or cur ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'refresh', ARGV[2], 'exp', ARGV[3], 'seen', ARGV[4])
redis.call('PEXPIREAT', KEYS[1], ARGV[5])
local idx = ARGV[7] .. 'us:' .. redis.call('HGET', KEYS[1], 'user')
local exp_ms, now_ms = tonumber(ARGV[5]), tonumber(ARGV[6])
"""
    + _EXTEND_INDEX
    + """
return 1
"""
)

_REVOKE_SESSION = """
local user = redis.call('HGET', KEYS[1], 'user')
if not user then return 0 end
redis.call('DEL', KEYS[1])
redis.call('ZREM', ARGV[1] .. 'us:' .. user, ARGV[2])
redis.call('PUBLISH', ARGV[1] .. 'changes', user)
return 1
"""

_LIST_SESSIONS = """
local out = {}
for _, sid in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local row = redis.call('HMGET', ARGV[1] .. 's:' .. sid, 'record', 'refresh', 'exp', 'seen')
  if row[1] then
    table.insert(out, row[1]); table.insert(out, row[2])
    table.insert(out, row[3]); table.insert(out, row[4])
  else
    redis.call('ZREM', KEYS[1], sid)
  end
end
return out
"""

_REVOKE_USER_SESSIONS = """
local n = 0
for _, sid in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  if sid ~= ARGV[2] then
    n = n + redis.call('DEL', ARGV[1] .. 's:' .. sid)
    redis.call('ZREM', KEYS[1], sid)
  end
end
if n > 0 then redis.call('PUBLISH', ARGV[1] .. 'changes', ARGV[3]) end
return n
"""

_INCR = """
local v = redis.call('INCR', KEYS[1])
if v == 1 or redis.call('PTTL', KEYS[1]) < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
return v
"""


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


class _Redis(Generic[C]):
    """Every operation of the Redis store, defined once as the commands it sends (no
    I/O here); `RedisStore` sends them with redis-py's sync client, `AsyncRedisStore`
    with its asyncio client.

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
            cache = SessionCache(self._cache_ttl)
            self._invalidator = _Invalidator(self._client_url, self.channel, cache)
            self._invalidator.start()
            self._cache = cache
        return self._cache

    def peek_session_user(
        self, session_id: str, username: str
    ) -> tuple[Session | None, User | None] | None:
        """The cached answer, or None (never a network call)."""
        cache = self._session_cache()
        hit = cache.get(session_id, username) if cache is not None else None
        return (hit[0], hit[1]) if hit is not None else None

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

    @operation
    def ping(self) -> _Steps[None]:
        """Check the server answers; `StoreUnavailable` when it does not."""
        yield _Cmd(("PING",))

    def _user_key(self, username: str) -> str:
        return f"{self.base}u:{username}"

    # users

    def _user(self, username: str) -> _Steps[User | None]:
        raw = yield _Cmd(("HGET", self._user_key(username), "record"))
        return _codec.user_from_json(raw) if raw is not None else None

    @operation
    def get_user(self, username: str) -> _Steps[User | None]:
        return self._user(username)

    @operation
    def get_user_by_id(self, user_id: str) -> _Steps[User | None]:
        name = yield _Cmd(("GET", f"{self.base}uid:{user_id}"))
        if name is None:
            return None
        return (yield from self._user(name))

    @operation
    def list_users(self, after: str | None = None, limit: int = 100) -> _Steps[Page]:
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

    @operation
    def create_user(self, user: User) -> _Steps[User]:
        created = yield from _lua(
            _CREATE_USER,
            (self._user_key(user.username), f"{self.base}users", f"{self.base}uid:{user.id}"),
            (user.username, user.id, user.version, _codec.user_to_json(user)),
        )
        if not created:
            raise UserExists()
        return user

    @operation
    def update_user(self, user: User, expected_version: int) -> _Steps[User]:
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

    @operation
    def delete_user(self, username: str, expected_version: int | None = None) -> _Steps[None]:
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

    # groups

    def _group(self, name: str) -> _Steps[Group | None]:
        raw = yield _Cmd(("GET", f"{self.base}g:{name}"))
        return _codec.group_from_json(raw) if raw is not None else None

    @operation
    def get_group(self, name: str) -> _Steps[Group | None]:
        return self._group(name)

    @operation
    def list_groups(self) -> _Steps[list[Group]]:
        names = yield _Cmd(("ZRANGE", f"{self.base}groups", 0, -1))
        groups: list[Group] = []
        for name in names:
            group = yield from self._group(name)
            if group is not None:
                groups.append(group)
        return groups

    @operation
    def put_group(self, group: Group) -> _Steps[Group]:
        yield from _lua(
            _PUT_GROUP,
            (f"{self.base}g:{group.name}", f"{self.base}groups"),
            (group.name, _codec.group_to_json(group)),
        )
        return group

    @operation
    def delete_group(self, name: str) -> _Steps[None]:
        deleted = yield from _lua(
            _DELETE_GROUP, (f"{self.base}g:{name}", f"{self.base}groups"), (name,)
        )
        if not deleted:
            raise NotFound("no such group")

    # sessions

    @operation
    def create_session(self, session: Session) -> _Steps[Session]:
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

    @operation
    def get_session(self, session_id: str) -> _Steps[Session | None]:
        row = yield _Cmd(
            ("HMGET", f"{self.base}s:{session_id}", "record", "refresh", "exp", "seen")
        )
        if row[0] is None:
            return None
        session = _session_from_row(row)
        return None if session.is_expired() else session

    @operation
    def get_session_user(
        self, session_id: str, username: str
    ) -> _Steps[tuple[Session | None, User | None]]:
        return read_through(
            self._session_cache(), session_id, username, self._session_user(session_id, username)
        )

    def _session_user(
        self, session_id: str, username: str
    ) -> _Steps[tuple[Session | None, User | None]]:
        row = yield from _lua(
            _GET_SESSION_USER, (f"{self.base}s:{session_id}", self._user_key(username)), ()
        )
        session = _session_from_row(row[:4]) if row[0] else None
        user = _codec.user_from_json(row[4]) if row[4] else None
        return (None if session is None or session.is_expired() else session), user

    @operation
    def touch_session(self, session_id: str, last_seen: datetime) -> _Steps[bool]:
        done = yield from _lua(_TOUCH_SESSION, (f"{self.base}s:{session_id}",), (_ts(last_seen),))
        if self._cache is not None:
            self._cache.touch(session_id, last_seen)
        return bool(done)

    @operation
    def rotate_refresh(
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

    @operation
    def revoke_session(self, session_id: str) -> _Steps[bool]:
        try:
            done = yield from _lua(
                _REVOKE_SESSION, (f"{self.base}s:{session_id}",), (self.base, session_id)
            )
        finally:
            self._evict(session_id=session_id)
        return bool(done)

    @operation
    def list_sessions(self, username: str) -> _Steps[list[Session]]:
        flat = yield from _lua(_LIST_SESSIONS, (f"{self.base}us:{username}",), (self.base,))
        rows = [flat[i : i + 4] for i in range(0, len(flat), 4)]
        sessions = [_session_from_row(row) for row in rows]
        return sorted(
            (s for s in sessions if not s.is_expired()), key=lambda s: (s.created_at, s.id)
        )

    @operation
    def revoke_user_sessions(self, username: str, keep: str | None = None) -> _Steps[int]:
        try:
            count = yield from _lua(
                _REVOKE_USER_SESSIONS,
                (f"{self.base}us:{username}",),
                (self.base, keep or "", username),
            )
        finally:
            self._evict(username=username)
        return int(count)

    # counters

    @operation
    def incr(self, key: str, ttl_seconds: float) -> _Steps[int]:
        ttl_ms = max(1, int(ttl_seconds * 1000))
        value = yield from _lua(_INCR, (f"{self.base}c:{key}",), (ttl_ms,))
        return int(value)

    @operation
    def get_counter(self, key: str) -> _Steps[int]:
        value = yield _Cmd(("GET", f"{self.base}c:{key}"))
        return int(value) if value is not None else 0

    @operation
    def counter_ttl(self, key: str) -> _Steps[float]:
        ttl = yield _Cmd(("PTTL", f"{self.base}c:{key}"))
        return max(0.0, int(ttl) / 1000)

    @operation
    def expire_counter(self, key: str, ttl_seconds: float) -> _Steps[bool]:
        done = yield _Cmd(("PEXPIRE", f"{self.base}c:{key}", max(1, int(ttl_seconds * 1000))))
        return bool(done)

    @operation
    def reset_counter(self, key: str) -> _Steps[None]:
        yield _Cmd(("DEL", f"{self.base}c:{key}"))


def _parse_url(url: str) -> tuple[str, str, float]:
    """Split authgate's own query parameters (``prefix``, ``cache_ttl``) off a URL."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    prefix = "authgate"
    cache_ttl = 5.0
    rest = []
    for name, value in query:
        if name == "prefix":
            prefix = value
        elif name == "cache_ttl":
            try:
                cache_ttl = float(value)
            except ValueError:
                raise ConfigError(f"cache_ttl must be a number of seconds, not {value!r}") from None
        else:
            rest.append((name, value))
    if not prefix or any(ch in prefix for ch in "{}"):
        raise ConfigError("the Redis key prefix must be non-empty and contain no braces")
    return urlunsplit(parts._replace(query=urlencode(rest))), prefix, cache_ttl


class _Invalidator(threading.Thread):
    """Listens on the change channel and evicts what changed from a `SessionCache`.

    The cache is on only while the subscription is confirmed: before the first
    confirmation, and from a connection error until the next one, every session check
    goes to Redis.
    """

    def __init__(self, client_url: str, channel: str, cache: SessionCache) -> None:
        super().__init__(name="authgate-redis-invalidator", daemon=True)
        self.client_url = client_url
        self.channel = channel
        self.cache = cache
        self.stopping = threading.Event()
        cache.disable()

    def run(self) -> None:
        backoff = 0.1
        while not self.stopping.is_set():
            client = redis.Redis.from_url(
                self.client_url,
                decode_responses=True,
                socket_connect_timeout=5,
                health_check_interval=5,
            )
            subscribe: Callable[[], Any] = client.pubsub  # untyped in redis-py
            pubsub = subscribe()
            try:
                pubsub.subscribe(self.channel)
                while not self.stopping.is_set():
                    message = pubsub.get_message(timeout=0.5)
                    if message is None:
                        continue
                    if message["type"] == "subscribe":
                        self.cache.enable()
                        backoff = 0.1
                    elif message["type"] == "message":
                        self.cache.evict_user(message["data"])
            except (RedisError, OSError, ValueError):
                self.cache.disable()
                self.stopping.wait(backoff)
                backoff = min(backoff * 2, 5.0)
            finally:
                with contextlib.suppress(Exception):
                    pubsub.close()
                    client.close()

    def stop(self) -> None:
        self.stopping.set()


# Both faces' connections.  A lost connection (refused, reset, closed by the server) is
# retried three times within about 0.15 s, on a fresh connection: a pooled one left
# dead by a Redis restart reconnects instead of failing its next request (and one idle
# for over a second is PINGed before use).  A timeout is never retried: the command may
# have run, and a write sent twice could apply twice.  (redis-py's defaults differ by
# face: the sync client retries timeouts too, ten times; the asyncio one retries
# nothing, so every connection left over from an outage failed one request.)
_CLIENT_OPTIONS: dict[str, Any] = {
    "decode_responses": True,
    "socket_connect_timeout": 5,
    "socket_timeout": 10,
    "health_check_interval": 1,
}
_RETRY: dict[str, Any] = {
    "backoff": ExponentialBackoff(cap=0.1, base=0.02),
    "retries": 3,
    "supported_errors": (RedisConnectionError,),
}


def _unavailable(url: str, err: Exception) -> StoreUnavailable:
    parts = urlsplit(url)  # name the host, never the password in the URL
    where = f"{parts.hostname or 'localhost'}:{parts.port or 6379}"
    return StoreUnavailable(f"cannot reach Redis at {where}: {err}")


def _guarded(url: str, steps: _Steps[T]) -> _Steps[T]:
    """`steps`, with redis-py's failures told in the store's terms."""
    try:
        return (yield from steps)
    except (RedisConnectionError, RedisTimeoutError) as err:
        raise _unavailable(url, err) from err
    except RedisError as err:
        raise StoreError(f"Redis refused an operation: {err}") from err


class RedisStore(_Redis["redis.Redis"], SyncFace):
    """The sync face of the Redis store (redis-py's `redis.Redis`); it checks that the
    server answers at once (``check=False``: at the first operation)."""

    def __init__(
        self,
        url: str = "redis://localhost:6379/0",
        *,
        prefix: str | None = None,
        client: redis.Redis | None = None,
        check: bool = True,
    ) -> None:
        super().__init__(url, prefix=prefix, client=client)
        if check:
            self.ping()

    @staticmethod
    def _connect(url: str) -> redis.Redis:
        return redis.Redis.from_url(url, retry=Retry(**_RETRY), **_CLIENT_OPTIONS)

    def _drive(self, steps: _Steps[T]) -> T:
        return drive(_guarded(self.url, steps), lambda cmd: self._command(*cmd.args))

    def close(self) -> None:
        """Stop the invalidation thread and release the connections."""
        self._stop_invalidator()
        self._client.close()


class AsyncRedisStore(_Redis["aioredis.Redis"], AsyncFace):
    """The async face of the Redis store (redis-py's `redis.asyncio.Redis`)."""

    @staticmethod
    def _connect(url: str) -> aioredis.Redis:
        return aioredis.Redis.from_url(url, retry=AsyncRetry(**_RETRY), **_CLIENT_OPTIONS)

    async def _drive(self, steps: _Steps[T]) -> T:
        return await adrive(_guarded(self.url, steps), lambda cmd: self._command(*cmd.args))

    async def close(self) -> None:
        """Stop the invalidation thread and release the connections."""
        self._stop_invalidator()
        await self._client.aclose()
