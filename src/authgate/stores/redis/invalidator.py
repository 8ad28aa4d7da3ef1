"""The thread that keeps a process's session cache honest: it listens on the change
channel and evicts what changed, and turns the cache off while it is not listening."""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import redis
import redis.cluster
import redis.sentinel
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from redis.retry import Retry

from ..cache import SessionCache
from .settings import CLUSTER, SENTINEL, RedisSettings

T = TypeVar("T")

#: Seconds between heartbeats: a PING on the subscription, whose answer arrives after
#: every message published before it (one connection keeps its order).
HEARTBEAT = 0.5
#: The cache answers while the last heartbeat answered was sent at most this long ago;
#: a heartbeat unanswered this long counts as a lost connection.
DEAF_AFTER = 2.0
_BEAT = "authgate-heartbeat"
_log = logging.getLogger("authgate.store")


def listener_client(settings: RedisSettings) -> redis.Redis:
    """A client for the subscription to the change channel: the one server, the
    primary Sentinel names now, or any node of a cluster (a change published on one
    node of a cluster reaches subscribers on every node)."""
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
        return client
    if settings.topology == CLUSTER:
        node_class: Any = redis.cluster.ClusterNode  # (untyped in redis-py)
        cluster: Any = redis.cluster.RedisCluster(
            startup_nodes=[node_class(host, port) for host, port in settings.nodes],
            retry=Retry(NoBackoff(), 0),
            **settings.client_options(),
        )
        try:
            node = cluster.get_random_node()
        finally:
            cluster.close()
        return redis.Redis(host=node.host, port=node.port, **options)
    return redis.Redis.from_url(settings.url, **options)


class _Invalidator(threading.Thread):
    """Listens on the change channel and evicts what changed from a `SessionCache`.

    The cache is on only while the subscription is confirmed and heard: before the
    first confirmation, from a connection error until the next one, and whenever no
    heartbeat has come back for `DEAF_AFTER` seconds (a connection gone silent without
    an error), every session check goes to Redis.
    """

    def __init__(
        self, connect: Callable[[], redis.Redis], channel: str, cache: SessionCache
    ) -> None:
        super().__init__(name="authgate-redis-invalidator", daemon=True)
        #: Makes the subscription's client (each attempt gets a new one: after a
        #: failover, Sentinel's new primary or another node of a cluster).
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
            pubsub: Any = None
            try:
                client = self.connect()
                subscribe: Callable[[], Any] = client.pubsub  # untyped in redis-py
                pubsub = subscribe()
                pubsub.subscribe(self.channel)
                self._listen(pubsub)
            except Exception as exc:  # never stop listening
                if not isinstance(exc, (RedisError, OSError, ValueError)):  # a fault of ours
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

    def _listen(self, pubsub: Any) -> None:
        """Evict what the channel announces and send heartbeats, until stopped; a
        `TimeoutError` when the subscription or a heartbeat goes unanswered."""
        # When the unanswered heartbeat went out: first the subscription, which is
        # answered (confirmed) the same way; then when the next one goes out.
        sent: float | None = time.monotonic()
        due = math.inf
        while not self.stopping.is_set():
            now = time.monotonic()
            if sent is None and now >= due:
                pubsub.ping(_BEAT)
                sent = now
            elif sent is not None and now - sent > DEAF_AFTER:
                raise TimeoutError("no heartbeat came back")
            until = due if sent is None else sent + DEAF_AFTER
            message = pubsub.get_message(timeout=min(HEARTBEAT, max(until - now, 0.01)))
            if message is None:
                continue
            if message["type"] == "subscribe":
                connection = pubsub.connection
                self.server = f"{connection.host}:{connection.port}"
                self.cache.enable(heard_since=time.monotonic())
                self.backoff = 0.1
                due, sent = time.monotonic() + HEARTBEAT, None
            elif message["type"] == "message":
                self.cache.evict_user(message["data"])
            elif message["type"] == "pong" and message["data"] == _BEAT and sent is not None:
                self.cache.heard(sent)
                due, sent = sent + HEARTBEAT, None

    def stop(self) -> None:
        self.stopping.set()
