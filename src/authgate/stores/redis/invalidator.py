"""The thread that keeps a process's session cache honest: it listens on the change
channel and evicts what changed, and turns the cache off while it is not listening."""

from __future__ import annotations

import contextlib
import logging
import math
import secrets
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import redis
import redis.cluster
import redis.sentinel
from redis.backoff import NoBackoff
from redis.exceptions import RedisClusterException, RedisError
from redis.retry import Retry

from ..cache import SessionCache
from .settings import CLUSTER, SENTINEL, RedisSettings

T = TypeVar("T")

#: Seconds between heartbeats.  A heartbeat proves that every change published before
#: it has arrived: on one server (or Sentinel's primary) a PING on the subscription,
#: whose answer comes after what the same connection carried before it; on a cluster a
#: PUBLISH through every primary to a channel of this listener's own, since a change
#: made on another primary reaches the subscription's node over the cluster bus.
HEARTBEAT = 0.5
#: The cache answers while the last heartbeat answered was sent at most this long ago;
#: a heartbeat unanswered this long counts as a lost connection.
DEAF_AFTER = 2.0
_BEAT = "authgate-heartbeat"
_log = logging.getLogger("authgate.store")
#: Failures of the connection or the topology, not of authgate (not worth a warning).
_EXPECTED = (RedisError, RedisClusterException, OSError, ValueError)


class _Heartbeat:
    """A PING through the subscription itself (one server; Sentinel's primary, which
    must also still be the primary the sentinels name)."""

    def __init__(self, is_current: Callable[[Any], bool] | None = None) -> None:
        self.is_current = is_current

    def channels(self) -> tuple[str, ...]:
        return ()

    def send(self, pubsub: Any, sent: float) -> None:
        if self.is_current is not None and not self.is_current(pubsub):
            raise ConnectionError("the subscription's server is no longer the primary")
        pubsub.ping(_BEAT)

    def answered(self, message: dict[str, Any]) -> bool:
        return bool(message["type"] == "pong" and message["data"] == _BEAT)

    def close(self) -> None:
        pass


class _ClusterHeartbeat(_Heartbeat):
    """A PUBLISH through every primary of the cluster to this listener's own channel:
    answered once each has come back through the subscription."""

    def __init__(self, cluster: Any, channel: str) -> None:
        super().__init__()
        self.cluster = cluster
        self.channel = f"{channel}:beat:{secrets.token_hex(8)}"
        self.waiting: set[str] = set()

    def channels(self) -> tuple[str, ...]:
        return (self.channel,)

    def send(self, pubsub: Any, sent: float) -> None:
        primaries = self.cluster.get_primaries()
        self.waiting = {node.name for node in primaries}
        for node in primaries:
            node.redis_connection.publish(self.channel, node.name)

    def answered(self, message: dict[str, Any]) -> bool:
        if message["type"] != "message" or message["channel"] != self.channel:
            return False
        self.waiting.discard(message["data"])
        return not self.waiting

    def close(self) -> None:
        self.cluster.close()


def listener(settings: RedisSettings, channel: str) -> tuple[redis.Redis, _Heartbeat]:
    """A client for the subscription to the change channel, and how to prove it hears:
    the one server; the primary Sentinel names now (checked at every heartbeat); any
    node of a cluster (a change published on one node reaches subscribers on every
    node), with a heartbeat through every primary."""
    options = {
        **settings.client_options(),
        # redis-py misreads a PING's answer on a RESP3 subscription
        "protocol": 2,
        "health_check_interval": 5,
        # A lost subscription must surface at once (the cache goes off), not be
        # retried on the same server inside redis-py.
        "retry": Retry(NoBackoff(), 0),
    }
    if settings.topology == SENTINEL:
        sentinels = redis.sentinel.Sentinel(
            list(settings.nodes), sentinel_kwargs=settings.sentinel_client_options()
        )
        client: redis.Redis = sentinels.master_for(settings.master, **options)

        def is_current(pubsub: Any) -> bool:
            where = (pubsub.connection.host, pubsub.connection.port)
            return bool(sentinels.discover_master(settings.master) == where)

        return client, _Heartbeat(is_current)
    if settings.topology == CLUSTER:
        node_class: Any = redis.cluster.ClusterNode  # (untyped in redis-py)
        cluster: Any = redis.cluster.RedisCluster(
            startup_nodes=[node_class(host, port) for host, port in settings.nodes],
            retry=Retry(NoBackoff(), 0),
            **settings.client_options(),
        )
        try:
            node = cluster.get_random_node()
            return redis.Redis(host=node.host, port=node.port, **options), _ClusterHeartbeat(
                cluster, channel
            )
        except BaseException:
            cluster.close()
            raise
    return redis.Redis.from_url(settings.url, **options), _Heartbeat()


class _Invalidator(threading.Thread):
    """Listens on the change channel and evicts what changed from a `SessionCache`.

    The cache is on only while the subscription is confirmed and heard: before the
    first confirmation, from a connection error until the next one, and whenever no
    heartbeat has come back for `DEAF_AFTER` seconds (a connection gone silent without
    an error, a cluster bus that lost a message, a primary the sentinels replaced),
    every session check goes to Redis.
    """

    def __init__(
        self,
        connect: Callable[[], tuple[redis.Redis, _Heartbeat]],
        channel: str,
        cache: SessionCache,
    ) -> None:
        super().__init__(name="authgate-redis-invalidator", daemon=True)
        #: Makes the subscription's client and heartbeat (each attempt gets new ones:
        #: after a failover, Sentinel's new primary or another node of a cluster).
        self.connect = connect
        self.channel = channel
        self.cache = cache
        self.stopping = threading.Event()
        #: Seconds to wait before reconnecting: doubles per failure, up to 5.
        self.backoff = 0.1
        #: ``host:port`` of the server the subscription was last confirmed on.
        self.server = ""
        cache.disable()

    def run(self) -> None:
        while not self.stopping.is_set():
            client: redis.Redis | None = None
            beat: _Heartbeat | None = None
            pubsub: Any = None
            try:
                client, beat = self.connect()
                subscribe: Callable[[], Any] = client.pubsub  # untyped in redis-py
                pubsub = subscribe()
                pubsub.subscribe(self.channel, *beat.channels())
                self._listen(pubsub, beat)
            except Exception as exc:  # never stop listening
                if not isinstance(exc, _EXPECTED):  # a fault of ours
                    _log.warning("the session cache's listener failed (%s)", type(exc).__name__)
                self.cache.disable()
                self.stopping.wait(self.backoff)
                self.backoff = min(self.backoff * 2, 5.0)
            finally:
                with contextlib.suppress(Exception):
                    if pubsub is not None:
                        pubsub.close()
                    if client is not None:
                        client.close()
                    if beat is not None:
                        beat.close()

    def _listen(self, pubsub: Any, beat: _Heartbeat) -> None:
        """Evict what the channel announces and send heartbeats, until stopped; a
        `TimeoutError` when the subscription or a heartbeat goes unanswered."""
        # When the unanswered heartbeat went out: first the subscriptions, which are
        # answered (confirmed) the same way; then when the next one goes out.
        sent: float | None = time.monotonic()
        due = math.inf
        confirming = 1 + len(beat.channels())
        while not self.stopping.is_set():
            now = time.monotonic()
            if sent is None and now >= due:
                beat.send(pubsub, now)
                sent = now
            elif sent is not None and now - sent > DEAF_AFTER:
                raise TimeoutError("no heartbeat came back")
            until = due if sent is None else sent + DEAF_AFTER
            message = pubsub.get_message(timeout=min(HEARTBEAT, max(until - now, 0.01)))
            if message is None:
                continue
            if message["type"] == "subscribe":
                confirming -= 1
                if confirming == 0:  # every channel confirmed: hearing from now on
                    connection = pubsub.connection
                    self.server = f"{connection.host}:{connection.port}"
                    self.cache.enable(heard_since=time.monotonic())
                    self.backoff = 0.1
                    due, sent = time.monotonic() + HEARTBEAT, None
            elif message["type"] == "message" and message["channel"] == self.channel:
                self.cache.evict_user(message["data"])
            elif sent is not None and beat.answered(message):
                self.cache.heard(sent)
                due, sent = sent + HEARTBEAT, None

    def stop(self) -> None:
        self.stopping.set()
