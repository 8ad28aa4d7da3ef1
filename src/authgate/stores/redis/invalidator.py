"""The thread that keeps a process's session cache honest: it listens on the change
channel and evicts what changed, and turns the cache off while it is not listening."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import redis
from redis.exceptions import RedisError

from ..cache import SessionCache

T = TypeVar("T")


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
