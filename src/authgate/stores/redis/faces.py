"""The two faces of the Redis store: the same operations (`_Redis`), sent with
redis-py's sync client or its asyncio client."""

from __future__ import annotations

from typing import Any, TypeVar
from urllib.parse import urlsplit

import redis
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from ...errors import (
    StoreError,
    StoreUnavailable,
)
from ...faces import AsyncFace, SyncFace, adrive, drive
from .commands import _Steps
from .logic import _Redis

T = TypeVar("T")


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
