"""The production store (``redis://host:port/db``, ``rediss://...``) over redis-py.

Each operation is written once, in `_Logic`, as a generator that yields the Redis
commands it needs and receives their replies; `RedisStore` drives it with redis-py's
sync client and `AsyncRedisStore` with its asyncio client.  Every change that touches
several keys runs as one Lua script, so it is atomic.

All keys share the hash tag ``{prefix}``, so on Redis Cluster no script crosses slots.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from datetime import datetime
from hashlib import sha1
from typing import Any, TypeVar
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
from ..users import Group, User, utcnow
from . import _codec
from .base import Page, Session
from .cache import SessionCache

__all__ = ["AsyncRedisStore", "RedisStore"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class _Cmd:
    args: tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class _Lua:
    script: str
    keys: tuple[str, ...]
    args: tuple[Any, ...]

    @property
    def sha(self) -> str:
        return sha1(self.script.encode(), usedforsecurity=False).hexdigest()


_Op = _Cmd | _Lua
_Flow = Generator[_Op, Any, T]

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


class _Logic:
    """Every store operation as a generator of Redis commands: no I/O here."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.base = "{" + prefix + "}:"
        #: Where every change that can end a session check is announced (username).
        self.channel = self.base + "changes"

    def _user_key(self, username: str) -> str:
        return f"{self.base}u:{username}"

    # users

    def get_user(self, username: str) -> _Flow[User | None]:
        raw = yield _Cmd(("HGET", self._user_key(username), "record"))
        return _codec.user_from_json(raw) if raw is not None else None

    def get_user_by_id(self, user_id: str) -> _Flow[User | None]:
        name = yield _Cmd(("GET", f"{self.base}uid:{user_id}"))
        if name is None:
            return None
        return (yield from self.get_user(name))

    def list_users(self, after: str | None, limit: int) -> _Flow[Page]:
        low = f"({after}" if after is not None else "-"
        names = yield _Cmd(("ZRANGEBYLEX", f"{self.base}users", low, "+", "LIMIT", 0, limit + 1))
        more = len(names) > limit
        names = names[:limit]
        users: list[User] = []
        for name in names:
            user = yield from self.get_user(name)
            if user is not None:
                users.append(user)
        return Page(users, names[-1] if more and names else None)

    def create_user(self, user: User) -> _Flow[User]:
        created = yield _Lua(
            _CREATE_USER,
            (self._user_key(user.username), f"{self.base}users", f"{self.base}uid:{user.id}"),
            (user.username, user.id, user.version, _codec.user_to_json(user)),
        )
        if not created:
            raise UserExists()
        return user

    def update_user(self, user: User, expected_version: int) -> _Flow[User]:
        result = yield _Lua(
            _UPDATE_USER,
            (self._user_key(user.username),),
            (
                user.id,
                expected_version,
                user.version,
                _codec.user_to_json(user),
                self.channel,
                user.username,
            ),
        )
        if result == -1:
            raise UserNotFound()
        if result == 0:
            raise VersionConflict()
        return user

    def delete_user(self, username: str, expected_version: int | None = None) -> _Flow[None]:
        deleted = yield _Lua(
            _DELETE_USER,
            (self._user_key(username), f"{self.base}users", f"{self.base}us:{username}"),
            (username, self.base, "" if expected_version is None else str(expected_version)),
        )
        if deleted == -1:
            raise VersionConflict()
        if not deleted:
            raise UserNotFound()

    # groups

    def get_group(self, name: str) -> _Flow[Group | None]:
        raw = yield _Cmd(("GET", f"{self.base}g:{name}"))
        return _codec.group_from_json(raw) if raw is not None else None

    def list_groups(self) -> _Flow[list[Group]]:
        names = yield _Cmd(("ZRANGE", f"{self.base}groups", 0, -1))
        groups: list[Group] = []
        for name in names:
            group = yield from self.get_group(name)
            if group is not None:
                groups.append(group)
        return groups

    def put_group(self, group: Group) -> _Flow[Group]:
        yield _Lua(
            _PUT_GROUP,
            (f"{self.base}g:{group.name}", f"{self.base}groups"),
            (group.name, _codec.group_to_json(group)),
        )
        return group

    def delete_group(self, name: str) -> _Flow[None]:
        deleted = yield _Lua(_DELETE_GROUP, (f"{self.base}g:{name}", f"{self.base}groups"), (name,))
        if not deleted:
            raise NotFound("no such group")

    # sessions

    def create_session(self, session: Session) -> _Flow[Session]:
        yield _Lua(
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

    def get_session(self, session_id: str) -> _Flow[Session | None]:
        row = yield _Cmd(
            ("HMGET", f"{self.base}s:{session_id}", "record", "refresh", "exp", "seen")
        )
        if row[0] is None:
            return None
        session = _session_from_row(row)
        return None if session.is_expired() else session

    def get_session_user(
        self, session_id: str, username: str
    ) -> _Flow[tuple[Session | None, User | None]]:
        row = yield _Lua(
            _GET_SESSION_USER, (f"{self.base}s:{session_id}", self._user_key(username)), ()
        )
        session = _session_from_row(row[:4]) if row[0] else None
        user = _codec.user_from_json(row[4]) if row[4] else None
        return (None if session is None or session.is_expired() else session), user

    def touch_session(self, session_id: str, last_seen: datetime) -> _Flow[bool]:
        done = yield _Lua(_TOUCH_SESSION, (f"{self.base}s:{session_id}",), (_ts(last_seen),))
        return bool(done)

    def rotate_refresh(
        self, session_id: str, expected_hash: str, new_hash: str, expires_at: datetime
    ) -> _Flow[bool]:
        done = yield _Lua(
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

    def revoke_session(self, session_id: str) -> _Flow[bool]:
        done = yield _Lua(_REVOKE_SESSION, (f"{self.base}s:{session_id}",), (self.base, session_id))
        return bool(done)

    def list_sessions(self, username: str) -> _Flow[list[Session]]:
        flat = yield _Lua(_LIST_SESSIONS, (f"{self.base}us:{username}",), (self.base,))
        rows = [flat[i : i + 4] for i in range(0, len(flat), 4)]
        sessions = [_session_from_row(row) for row in rows]
        return sorted(
            (s for s in sessions if not s.is_expired()), key=lambda s: (s.created_at, s.id)
        )

    def revoke_user_sessions(self, username: str, keep: str | None) -> _Flow[int]:
        count = yield _Lua(
            _REVOKE_USER_SESSIONS,
            (f"{self.base}us:{username}",),
            (self.base, keep or "", username),
        )
        return int(count)

    # counters

    def incr(self, key: str, ttl_seconds: float) -> _Flow[int]:
        ttl_ms = max(1, int(ttl_seconds * 1000))
        value = yield _Lua(_INCR, (f"{self.base}c:{key}",), (ttl_ms,))
        return int(value)

    def get_counter(self, key: str) -> _Flow[int]:
        value = yield _Cmd(("GET", f"{self.base}c:{key}"))
        return int(value) if value is not None else 0

    def counter_ttl(self, key: str) -> _Flow[float]:
        ttl = yield _Cmd(("PTTL", f"{self.base}c:{key}"))
        return max(0.0, int(ttl) / 1000)

    def expire_counter(self, key: str, ttl_seconds: float) -> _Flow[bool]:
        done = yield _Cmd(("PEXPIRE", f"{self.base}c:{key}", max(1, int(ttl_seconds * 1000))))
        return bool(done)

    def reset_counter(self, key: str) -> _Flow[None]:
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
            pubsub: Any = client.pubsub()  # type: ignore[no-untyped-call]
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


class _CacheHolder:
    """What both faces share: the session-check cache and its invalidation thread,
    started on the first session check (a CLI never starts it)."""

    _logic: _Logic
    _client_url: str
    _cache_ttl: float
    _cache: SessionCache | None = None
    _invalidator: _Invalidator | None = None

    def _session_cache(self) -> SessionCache | None:
        if self._cache is None and self._cache_ttl > 0:
            cache = SessionCache(self._cache_ttl)
            self._invalidator = _Invalidator(self._client_url, self._logic.channel, cache)
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

    def _evict_user(self, username: str) -> None:
        if self._cache is not None:
            self._cache.evict_user(username)

    def _evict_session(self, session_id: str) -> None:
        if self._cache is not None:
            self._cache.evict_session(session_id)

    def _touched(self, session_id: str, last_seen: datetime) -> None:
        if self._cache is not None:
            self._cache.touch(session_id, last_seen)

    def _stop_invalidator(self) -> None:
        if self._invalidator is not None:
            self._invalidator.stop()
            self._invalidator.join(2)


class RedisStore(_CacheHolder):
    """The sync face of the Redis store (redis-py's `redis.Redis`)."""

    def __init__(
        self,
        url: str = "redis://localhost:6379/0",
        *,
        prefix: str | None = None,
        client: redis.Redis | None = None,
        check: bool = True,
    ) -> None:
        self.url = url
        client_url, url_prefix, self._cache_ttl = _parse_url(url)
        self._client_url = client_url
        self._logic = _Logic(prefix or url_prefix)
        self._client: redis.Redis = client or redis.Redis.from_url(
            client_url, retry=Retry(**_RETRY), **_CLIENT_OPTIONS
        )
        self._command: Any = self._client.execute_command  # untyped in redis-py
        if check:
            self.ping()

    def __repr__(self) -> str:
        return f"RedisStore(prefix={self._logic.prefix!r})"

    def ping(self) -> None:
        """Check the server answers; `StoreUnavailable` when it does not."""
        self._execute(_Cmd(("PING",)))

    @property
    def prefix(self) -> str:
        """The key prefix (all keys are ``{prefix}:...``)."""
        return self._logic.prefix

    def _run(self, flow: _Flow[T]) -> T:
        try:
            op = next(flow)
            while True:
                op = flow.send(self._execute(op))
        except StopIteration as done:
            result: T = done.value
            return result

    def _execute(self, op: _Op) -> Any:
        try:
            if isinstance(op, _Cmd):
                return self._command(*op.args)
            try:
                return self._command("EVALSHA", op.sha, len(op.keys), *op.keys, *op.args)
            except NoScriptError:
                return self._command("EVAL", op.script, len(op.keys), *op.keys, *op.args)
        except (RedisConnectionError, RedisTimeoutError) as err:
            raise _unavailable(self.url, err) from err
        except RedisError as err:
            raise StoreError(f"Redis refused an operation: {err}") from err

    def get_user(self, username: str) -> User | None:
        return self._run(self._logic.get_user(username))

    def get_user_by_id(self, user_id: str) -> User | None:
        return self._run(self._logic.get_user_by_id(user_id))

    def list_users(self, after: str | None = None, limit: int = 100) -> Page:
        return self._run(self._logic.list_users(after, limit))

    def create_user(self, user: User) -> User:
        return self._run(self._logic.create_user(user))

    def update_user(self, user: User, expected_version: int) -> User:
        try:
            return self._run(self._logic.update_user(user, expected_version))
        finally:
            self._evict_user(user.username)

    def delete_user(self, username: str, expected_version: int | None = None) -> None:
        try:
            return self._run(self._logic.delete_user(username, expected_version))
        finally:
            self._evict_user(username)

    def get_group(self, name: str) -> Group | None:
        return self._run(self._logic.get_group(name))

    def list_groups(self) -> list[Group]:
        return self._run(self._logic.list_groups())

    def put_group(self, group: Group) -> Group:
        return self._run(self._logic.put_group(group))

    def delete_group(self, name: str) -> None:
        return self._run(self._logic.delete_group(name))

    def create_session(self, session: Session) -> Session:
        return self._run(self._logic.create_session(session))

    def get_session(self, session_id: str) -> Session | None:
        return self._run(self._logic.get_session(session_id))

    def get_session_user(
        self, session_id: str, username: str
    ) -> tuple[Session | None, User | None]:
        cache = self._session_cache()
        if cache is None:
            return self._run(self._logic.get_session_user(session_id, username))
        hit = cache.get(session_id, username)
        if hit is not None:
            return hit[0], hit[1]
        generation = cache.generation
        session, user = self._run(self._logic.get_session_user(session_id, username))
        if session is not None and user is not None:
            cache.put(session, user, generation)
        return session, user

    def touch_session(self, session_id: str, last_seen: datetime) -> bool:
        done = self._run(self._logic.touch_session(session_id, last_seen))
        self._touched(session_id, last_seen)
        return bool(done)

    def rotate_refresh(
        self, session_id: str, expected_hash: str, new_hash: str, expires_at: datetime
    ) -> bool:
        return self._run(
            self._logic.rotate_refresh(session_id, expected_hash, new_hash, expires_at)
        )

    def revoke_session(self, session_id: str) -> bool:
        try:
            return self._run(self._logic.revoke_session(session_id))
        finally:
            self._evict_session(session_id)

    def list_sessions(self, username: str) -> list[Session]:
        return self._run(self._logic.list_sessions(username))

    def revoke_user_sessions(self, username: str, keep: str | None = None) -> int:
        try:
            return self._run(self._logic.revoke_user_sessions(username, keep))
        finally:
            self._evict_user(username)

    def incr(self, key: str, ttl_seconds: float) -> int:
        return self._run(self._logic.incr(key, ttl_seconds))

    def get_counter(self, key: str) -> int:
        return self._run(self._logic.get_counter(key))

    def counter_ttl(self, key: str) -> float:
        return self._run(self._logic.counter_ttl(key))

    def expire_counter(self, key: str, ttl_seconds: float) -> bool:
        return self._run(self._logic.expire_counter(key, ttl_seconds))

    def reset_counter(self, key: str) -> None:
        return self._run(self._logic.reset_counter(key))

    def close(self) -> None:
        self._stop_invalidator()
        self._client.close()


class AsyncRedisStore(_CacheHolder):
    """The async face of the Redis store (redis-py's `redis.asyncio.Redis`)."""

    def __init__(
        self,
        url: str = "redis://localhost:6379/0",
        *,
        prefix: str | None = None,
        client: aioredis.Redis | None = None,
    ) -> None:
        self.url = url
        client_url, url_prefix, self._cache_ttl = _parse_url(url)
        self._client_url = client_url
        self._logic = _Logic(prefix or url_prefix)
        self._client: aioredis.Redis = client or aioredis.Redis.from_url(
            client_url,
            retry=AsyncRetry(**_RETRY),
            **_CLIENT_OPTIONS,
        )
        self._command: Any = self._client.execute_command  # untyped in redis-py

    def __repr__(self) -> str:
        return f"AsyncRedisStore(prefix={self._logic.prefix!r})"

    @property
    def prefix(self) -> str:
        """The key prefix (all keys are ``{prefix}:...``)."""
        return self._logic.prefix

    async def _run(self, flow: _Flow[T]) -> T:
        try:
            op = next(flow)
            while True:
                op = flow.send(await self._execute(op))
        except StopIteration as done:
            result: T = done.value
            return result

    async def _execute(self, op: _Op) -> Any:
        try:
            if isinstance(op, _Cmd):
                return await self._command(*op.args)
            try:
                return await self._command("EVALSHA", op.sha, len(op.keys), *op.keys, *op.args)
            except NoScriptError:
                return await self._command("EVAL", op.script, len(op.keys), *op.keys, *op.args)
        except (RedisConnectionError, RedisTimeoutError) as err:
            raise _unavailable(self.url, err) from err
        except RedisError as err:
            raise StoreError(f"Redis refused an operation: {err}") from err

    async def ping(self) -> None:
        """Check the server answers; `StoreUnavailable` when it does not."""
        await self._execute(_Cmd(("PING",)))

    async def get_user(self, username: str) -> User | None:
        return await self._run(self._logic.get_user(username))

    async def get_user_by_id(self, user_id: str) -> User | None:
        return await self._run(self._logic.get_user_by_id(user_id))

    async def list_users(self, after: str | None = None, limit: int = 100) -> Page:
        return await self._run(self._logic.list_users(after, limit))

    async def create_user(self, user: User) -> User:
        return await self._run(self._logic.create_user(user))

    async def update_user(self, user: User, expected_version: int) -> User:
        try:
            return await self._run(self._logic.update_user(user, expected_version))
        finally:
            self._evict_user(user.username)

    async def delete_user(self, username: str, expected_version: int | None = None) -> None:
        try:
            return await self._run(self._logic.delete_user(username, expected_version))
        finally:
            self._evict_user(username)

    async def get_group(self, name: str) -> Group | None:
        return await self._run(self._logic.get_group(name))

    async def list_groups(self) -> list[Group]:
        return await self._run(self._logic.list_groups())

    async def put_group(self, group: Group) -> Group:
        return await self._run(self._logic.put_group(group))

    async def delete_group(self, name: str) -> None:
        return await self._run(self._logic.delete_group(name))

    async def create_session(self, session: Session) -> Session:
        return await self._run(self._logic.create_session(session))

    async def get_session(self, session_id: str) -> Session | None:
        return await self._run(self._logic.get_session(session_id))

    async def get_session_user(
        self, session_id: str, username: str
    ) -> tuple[Session | None, User | None]:
        cache = self._session_cache()
        if cache is None:
            return await self._run(self._logic.get_session_user(session_id, username))
        hit = cache.get(session_id, username)
        if hit is not None:
            return hit[0], hit[1]
        generation = cache.generation
        session, user = await self._run(self._logic.get_session_user(session_id, username))
        if session is not None and user is not None:
            cache.put(session, user, generation)
        return session, user

    async def touch_session(self, session_id: str, last_seen: datetime) -> bool:
        done = await self._run(self._logic.touch_session(session_id, last_seen))
        self._touched(session_id, last_seen)
        return bool(done)

    async def rotate_refresh(
        self, session_id: str, expected_hash: str, new_hash: str, expires_at: datetime
    ) -> bool:
        return await self._run(
            self._logic.rotate_refresh(session_id, expected_hash, new_hash, expires_at)
        )

    async def revoke_session(self, session_id: str) -> bool:
        try:
            return await self._run(self._logic.revoke_session(session_id))
        finally:
            self._evict_session(session_id)

    async def list_sessions(self, username: str) -> list[Session]:
        return await self._run(self._logic.list_sessions(username))

    async def revoke_user_sessions(self, username: str, keep: str | None = None) -> int:
        try:
            return await self._run(self._logic.revoke_user_sessions(username, keep))
        finally:
            self._evict_user(username)

    async def incr(self, key: str, ttl_seconds: float) -> int:
        return await self._run(self._logic.incr(key, ttl_seconds))

    async def get_counter(self, key: str) -> int:
        return await self._run(self._logic.get_counter(key))

    async def counter_ttl(self, key: str) -> float:
        return await self._run(self._logic.counter_ttl(key))

    async def expire_counter(self, key: str, ttl_seconds: float) -> bool:
        return await self._run(self._logic.expire_counter(key, ttl_seconds))

    async def reset_counter(self, key: str) -> None:
        return await self._run(self._logic.reset_counter(key))

    async def close(self) -> None:
        self._stop_invalidator()
        await self._client.aclose()
