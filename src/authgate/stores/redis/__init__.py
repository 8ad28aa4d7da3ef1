"""The production store (``redis://host:port/db``, ``rediss://...``) over redis-py.

Each operation is written once, in `_Redis`, as a generator that yields the Redis
commands it needs and receives their replies (`authgate.faces`); `RedisStore` sends
them with redis-py's sync client and `AsyncRedisStore` with its asyncio client, and
neither face has an operation of its own.  Every change that touches
several keys runs as one Lua script, so it is atomic.

Each user's keys share a hash tag of the user's own, ``{prefix:1a2b}``, so on Redis
Cluster no script crosses slots while users spread over the primaries (`logic`).
URLs: ``redis://``, ``rediss://``, ``unix://``, ``redis+cluster://``,
``redis+sentinel://`` (`settings`).
"""

from __future__ import annotations

try:
    import redis  # noqa: F401 - the extra's presence is checked here, once
except ImportError as _err:  # pragma: no cover - exercised only without the extra
    raise ImportError("the Redis store needs redis-py: pip install 'authgate[redis]'") from _err

from .faces import AsyncRedisStore, RedisStore, redis_client

__all__ = ["AsyncRedisStore", "RedisStore", "redis_client"]
