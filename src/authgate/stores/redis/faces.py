"""The two faces of the Redis store: the same operations (`_Redis`), sent with
redis-py's sync client or its asyncio client, to one server, a cluster, or the
primary that Sentinel names."""

from __future__ import annotations

import asyncio
import time
from typing import Any, TypeVar

import redis
import redis.asyncio as aioredis
import redis.asyncio.cluster as aiocluster
import redis.asyncio.sentinel as aiosentinel
import redis.cluster
import redis.sentinel
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.exceptions import (
    ClusterDownError,
    OutOfMemoryError,
    ReadOnlyError,
    RedisError,
    SlotNotCoveredError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from ...errors import StoreError, StoreUnavailable
from ...faces import AsyncFace, SyncFace, adrive, drive
from .commands import _Cmd, _Pause, _Steps
from .layout import ensure_layout, layout_of
from .logic import _Redis
from .settings import CLUSTER, SENTINEL, RedisSettings, parse_redis_url

try:  # redis-py 8.2 names a cluster out of reach; before, it said RedisClusterException
    from redis.exceptions import RedisClusterUnreachableError as _ClusterUnreachable
except ImportError:  # pragma: no cover - redis-py older than 8.2 (Python 3.10 gets 8.1)
    from redis.exceptions import RedisClusterException as _ClusterUnreachable  # type: ignore[assignment]

T = TypeVar("T")

# (untyped in redis-py)
_SyncNode: Any = redis.cluster.ClusterNode
_AsyncNode: Any = aiocluster.ClusterNode


# Both faces' connections.  A lost connection (refused, reset, closed by the server) is
# retried three times within about 0.15 s, on a fresh connection: a pooled one left
# dead by a Redis restart reconnects instead of failing its next request (and one idle
# for over a second is PINGed before use).  A timeout is never retried: the command may
# have run, and a write sent twice could apply twice.  (redis-py's defaults differ by
# face: the sync client retries timeouts too, ten times; the asyncio one retries
# nothing, so every connection left over from an outage failed one request.)  The
# cluster client retries timeouts as well as lost connections, with no way to tell
# them apart, so on a cluster nothing is retried: a failover's few requests answer 503.
_RETRY: dict[str, Any] = {
    "backoff": ExponentialBackoff(cap=0.1, base=0.02),
    "retries": 3,
    "supported_errors": (RedisConnectionError,),
}
#: What says the store cannot answer now (503), rather than that it refused (500): a
#: lost server, a cluster without a primary for the slot, a Redis at its ``maxmemory``
#: (``noeviction``), a replica where a primary was expected.
_UNAVAILABLE = (
    RedisConnectionError,
    RedisTimeoutError,
    OutOfMemoryError,
    ReadOnlyError,
    ClusterDownError,
    TryAgainError,
    SlotNotCoveredError,
    _ClusterUnreachable,
)


#: Replies that redis-py leaves as a plain error but that say "not now": too few
#: replicas for ``min-replicas-to-write``, a script running too long, a loading or
#: leaderless server.
_BUSY_REPLIES = ("NOREPLICAS", "BUSY", "LOADING", "MASTERDOWN", "TRYAGAIN", "CLUSTERDOWN")


def _unreachable(settings: RedisSettings, err: Exception) -> StoreUnavailable:
    return StoreUnavailable(f"cannot reach Redis at {settings.where()}: {err}")


def _guarded(settings: RedisSettings, steps: _Steps[T]) -> _Steps[T]:
    """`steps`, with redis-py's failures told in the store's terms (the servers'
    addresses, never a password)."""
    try:
        return (yield from steps)
    except _UNAVAILABLE as err:
        raise _unreachable(settings, err) from err
    except RedisError as err:
        if str(err).startswith(_BUSY_REPLIES):
            raise _unreachable(settings, err) from err
        raise StoreError(f"Redis refused an operation: {err}") from err


def _acknowledged(settings: RedisSettings, reply: Any, acked: Any) -> Any:
    """A write's reply once its ``WAIT`` says enough replicas hold it; else the write's
    own error, or `StoreUnavailable` (it may not survive a failover)."""
    if isinstance(reply, Exception):
        raise reply
    if not isinstance(acked, int) or acked < settings.wait:
        raise StoreUnavailable(
            f"a write reached {acked} of the {settings.wait} replicas asked for (wait=) "
            f"within {settings.wait_timeout} s at {settings.where()}: it may not survive "
            "a failover"
        )
    return reply


class RedisStore(_Redis[Any], SyncFace):
    """The sync face of the Redis store (redis-py's `redis.Redis`, `RedisCluster`, or
    a Sentinel-managed client); it checks that the server answers at once
    (``check=False``: at the first operation)."""

    def __init__(
        self,
        url: str = "redis://localhost:6379/0",
        *,
        prefix: str | None = None,
        client: Any = None,
        check: bool = True,
    ) -> None:
        super().__init__(url, prefix=prefix, client=client)
        self._wait = ("WAIT", self.settings.wait, max(1, int(self.settings.wait_timeout * 1000)))
        if check:
            self.ping()

    @staticmethod
    def _connect(settings: RedisSettings) -> Any:
        if settings.topology == CLUSTER:
            try:  # (it reads the cluster's slots at once)
                return redis.cluster.RedisCluster(
                    startup_nodes=[_SyncNode(h, p) for h, p in settings.nodes],
                    retry=Retry(NoBackoff(), 0),
                    **settings.client_options(),
                )
            except _UNAVAILABLE as err:
                raise _unreachable(settings, err) from err
        if settings.topology == SENTINEL:
            sentinels = redis.sentinel.Sentinel(
                list(settings.nodes), sentinel_kwargs=settings.sentinel_client_options()
            )
            return sentinels.master_for(
                settings.master, retry=Retry(**_RETRY), **settings.client_options()
            )
        return redis.Redis.from_url(
            settings.url, retry=Retry(**_RETRY), **settings.client_options()
        )

    def _send(self, step: _Cmd | _Pause) -> Any:
        if type(step) is _Pause:
            time.sleep(step.seconds)
            return None
        assert type(step) is _Cmd
        if step.route and self.settings.topology == CLUSTER:
            node = self._client.get_node_from_key(step.route)
            return node.redis_connection.execute_command(*step.args)
        if step.write and self.settings.wait:
            pipe = self._client.pipeline(transaction=False)
            pipe.execute_command(*step.args)
            pipe.execute_command(*self._wait)
            return _acknowledged(self.settings, *(pipe.execute(raise_on_error=False)))
        return self._command(*step.args)

    def _drive(self, steps: _Steps[T]) -> T:
        return drive(_guarded(self.settings, self._steps(steps)), self._send)

    def close(self) -> None:
        """Stop the invalidation thread and release the connections."""
        self._stop_invalidator()
        self._client.close()


def redis_client(url: str) -> Any:
    """A sync redis-py client for any Redis store URL (one server, a cluster, the
    primary Sentinel names), its authgate parameters (``prefix``...) taken off: for an
    app that keeps data of its own next to authgate's."""
    return RedisStore._connect(parse_redis_url(url))


def layout_version(store: RedisStore) -> str | None:
    """The key layout `store` holds (None when it holds nothing yet), read without
    upgrading it: what `authgate db current` says."""
    return drive(_guarded(store.settings, layout_of(store.keys)), store._send)


def upgrade_layout(store: RedisStore) -> str | None:
    """Bring `store`'s key layout to this version's, whatever its ``migrate``
    parameter says (`authgate db upgrade`); returns the layout it found."""
    found = drive(_guarded(store.settings, ensure_layout(store.keys, migrate=True)), store._send)
    store._laid_out = True
    return found


class AsyncRedisStore(_Redis[Any], AsyncFace):
    """The async face of the Redis store (redis-py's asyncio clients)."""

    def __init__(
        self,
        url: str = "redis://localhost:6379/0",
        *,
        prefix: str | None = None,
        client: Any = None,
    ) -> None:
        super().__init__(url, prefix=prefix, client=client)
        self._wait = ("WAIT", self.settings.wait, max(1, int(self.settings.wait_timeout * 1000)))

    @staticmethod
    def _connect(settings: RedisSettings) -> Any:
        if settings.topology == CLUSTER:
            return aiocluster.RedisCluster(
                startup_nodes=[_AsyncNode(h, p) for h, p in settings.nodes],
                retry=AsyncRetry(NoBackoff(), 0),
                **settings.client_options(),
            )
        if settings.topology == SENTINEL:
            sentinels = aiosentinel.Sentinel(
                list(settings.nodes), sentinel_kwargs=settings.sentinel_client_options()
            )
            return sentinels.master_for(
                settings.master, retry=AsyncRetry(**_RETRY), **settings.client_options()
            )
        return aioredis.Redis.from_url(
            settings.url, retry=AsyncRetry(**_RETRY), **settings.client_options()
        )

    async def _send(self, step: _Cmd | _Pause) -> Any:
        if type(step) is _Pause:
            await asyncio.sleep(step.seconds)
            return None
        assert type(step) is _Cmd
        if self.settings.topology == CLUSTER:
            # Learn the slots before sending (under the client's lock; at once when known):
            # redis-py 8.1, sent many commands at once before it knows them, drops
            # connections that others are reading ("Connection closed by server").
            await self._client.initialize()
        if step.route and self.settings.topology == CLUSTER:
            node = self._client.get_node_from_key(step.route)
            return await node.execute_command(*step.args)
        if step.write and self.settings.wait:
            pipe = self._client.pipeline(transaction=False)
            pipe.execute_command(*step.args)
            pipe.execute_command(*self._wait)
            return _acknowledged(self.settings, *(await pipe.execute(raise_on_error=False)))
        return await self._command(*step.args)

    async def _drive(self, steps: _Steps[T]) -> T:
        return await adrive(_guarded(self.settings, self._steps(steps)), self._send)

    async def close(self) -> None:
        """Stop the invalidation thread and release the connections."""
        self._stop_invalidator()
        await self._client.aclose()
