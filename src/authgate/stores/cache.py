"""A read cache for the per-request session check, kept honest by invalidation.

A stateful `Gate` reads the token's session and user on every request.  Across
processes that read is a network round trip (Redis) or a file read (SQLite); the
answer rarely changes.  `SessionCache` keeps recent answers and drops them as soon as
the backend says something changed:

- Redis: every change to a user or a session publishes the username on a channel; a
  subscriber thread evicts that user's entries.  The cache answers only while that
  thread has *heard* the channel recently (`heard`: a heartbeat on the subscription
  came back, so every change published before it was delivered): a lost connection,
  or a silent one, turns the cache off within `deaf_after` seconds, and every read
  goes to Redis until the feed is back.
- SQLite: an ``epoch`` row, bumped in the same transaction by every write that can end
  a session check, validates the whole cache; it is read again only when the WAL-index
  header shows a commit (see `SQLiteStore._epoch`).

Entries also expire after ``ttl`` seconds whatever happens: the bound on staleness
for a change nobody announces (a hand edit of the backend).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Generator, Hashable
from datetime import datetime
from typing import Any, TypeVar

from ..caches import LRU, SESSION_CHECKS
from ..users import User
from .base import Session

__all__ = ["CACHE_TTL", "SessionCache", "read_through"]

#: Seconds a cached session check lives at most, by default.  What can end an answer
#: ends it at once (the Redis feed, the SQLite epoch); this bounds only a change nobody
#: announces, such as a record edited by hand.
CACHE_TTL = 60.0

Entry = tuple[Session, User, float]
Answer = tuple[Session | None, User | None]
Op = TypeVar("Op")


class SessionCache:
    """(session, user) answers by session id, evicted by username or wholesale."""

    def __init__(
        self,
        ttl: float = CACHE_TTL,
        max_entries: int = SESSION_CHECKS.bound,
        deaf_after: float | None = None,
    ) -> None:
        self.ttl = ttl
        self.enabled = True
        #: With a feed: answer only while it was heard within this many seconds.
        self.deaf_after = deaf_after
        self._heard_at = -math.inf
        self._entries: LRU[str, Entry] = LRU(SESSION_CHECKS, max_entries)
        self._by_user: dict[str, set[str]] = {}
        self._stamp: Hashable = None
        self._lock = threading.Lock()
        #: Bumped by every eviction: an answer read before one is not cached after it.
        self.generation = 0

    def get(self, session_id: str, username: str, stamp: Hashable = None) -> Entry | None:
        """The cached answer, or None (absent, stale, or the cache is off)."""
        if not self.enabled:
            return None
        now = time.monotonic()
        if self.deaf_after is not None and now - self._heard_at > self.deaf_after:
            return None
        if stamp is not None and stamp != self._stamp:
            self.clear(stamp)
            return None
        entry = self._entries.get(session_id)
        if entry is None:
            return None
        session, user, cached_at = entry
        if user.username != username or now - cached_at > self.ttl:
            return None
        if session.is_expired():
            return None
        return entry

    def put(self, session: Session, user: User, generation: int) -> None:
        """Remember an answer read from the backend, unless something was evicted since
        the read began (`generation` is what `generation` was then)."""
        if not self.enabled or generation != self.generation:
            return
        with self._lock:
            if generation != self.generation:
                return
            evicted = self._entries.put(session.id, (session, user, time.monotonic()))
            if evicted is not None:  # the least recently used answer made room
                self._unindex(evicted[1][1].username, evicted[0])
            self._by_user.setdefault(user.username, set()).add(session.id)

    def touch(self, session_id: str, last_seen: datetime) -> None:
        """Record this process's own ``last_seen`` write in the cached session."""
        with self._lock:
            entry = self._entries.pop(session_id)
            if entry is not None:
                session = entry[0].replace(last_seen=last_seen)
                self._entries.put(session_id, (session, entry[1], entry[2]))

    def evict_session(self, session_id: str) -> None:
        """Forget one session."""
        with self._lock:
            self.generation += 1
            entry = self._entries.pop(session_id)
            if entry is not None:
                self._unindex(entry[1].username, session_id)

    def _unindex(self, username: str, session_id: str) -> None:
        """Drop `session_id` from its user's index, and the user once none is left."""
        ids = self._by_user.get(username)
        if ids is not None:
            ids.discard(session_id)
            if not ids:
                del self._by_user[username]

    def evict_user(self, username: str) -> None:
        """Forget everything about one user (their record or a session changed)."""
        with self._lock:
            self.generation += 1
            for session_id in self._by_user.pop(username, ()):
                self._entries.pop(session_id)

    def clear(self, stamp: Hashable = None) -> None:
        """Forget everything; `stamp` becomes the validity stamp of what comes next."""
        with self._lock:
            self.generation += 1
            self._entries.invalidate()
            self._by_user.clear()
            self._stamp = stamp

    def heard(self, since: float) -> None:
        """The feed has delivered every change published before `since` (a
        `time.monotonic` reading): answers stand for `deaf_after` seconds from it."""
        self._heard_at = max(self._heard_at, since)

    def disable(self) -> None:
        """Stop answering until `enable` (the invalidation feed is down)."""
        self.enabled = False
        self._heard_at = -math.inf
        self.clear()

    def enable(self, heard_since: float | None = None) -> None:
        """Answer again, starting empty (a feed passes when it began listening)."""
        self.clear()
        if heard_since is not None:
            self.heard(heard_since)
        self.enabled = True


def read_through(
    cache: SessionCache | None,
    session_id: str,
    username: str,
    read: Generator[Op, Any, Answer],
    stamp: Hashable = None,
) -> Generator[Op, Any, Answer]:
    """The session check through `cache`, for every store that caches: the cached
    answer while it is valid (`stamp` as in `SessionCache.get`), else the steps of
    `read`, whose live answer is remembered unless something was evicted meanwhile."""
    if cache is None:
        return (yield from read)
    hit = cache.get(session_id, username, stamp)
    if hit is not None:
        read.close()
        return hit[0], hit[1]
    generation = cache.generation
    session, user = yield from read
    if session is not None and user is not None:
        cache.put(session, user, generation)
    return session, user
