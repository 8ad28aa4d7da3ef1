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

What a cached answer costs.  The cache keeps only what the check reads: the session
without its refresh hash, client address, user agent, data and creation time, and
one record per user, shared by all of its cached sessions, without its password hash
and SCRAM credentials and with role, group and permission sets shared among users.
A hit hands out these cut-down records (a miss, the whole ones it read).  Measured
with tracemalloc (CPython 3.11, SQLite, sessions and users as logins leave them, each
checked once; ``tests/test_session_cache.py`` fails above 500 bytes a session at 10
sessions per user):

===================  =================  ==============  ==========================
sessions per user    bytes per session  bytes per user  50,000 sessions (the bound)
===================  =================  ==============  ==========================
10                   456 (was 2,708)    4,556           22 MiB (was 129 MiB)
1                    1,148 (was 2,888)  1,148           55 MiB (was 138 MiB)
===================  =================  ==============  ==========================

That is some 380 bytes a session (the session, its id, two datetimes, its LRU slot:
60 to 110 bytes depending on how full the table is) and some 770 a user.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import threading
import time
from collections.abc import Generator, Hashable
from datetime import datetime, timezone
from typing import Any, TypeVar

from ..caches import LRU, SESSION_CHECKS
from ..users import User
from .base import Session

__all__ = ["CACHE_TTL", "SessionCache", "read_through"]

#: Seconds a cached session check lives at most, by default.  What can end an answer
#: ends it at once (the Redis feed, the SQLite epoch); this bounds only a change nobody
#: announces, such as a record edited by hand.
CACHE_TTL = 60.0

Answer = tuple[Session | None, User | None]
Hit = tuple[Session, User]
Op = TypeVar("Op")

#: The creation time of every cached session (the check never reads it).
_NOT_KEPT = datetime.fromtimestamp(0, timezone.utc)

#: With a feed thread, a check hands it the GIL at least this often (seconds).
YIELD_EVERY = 0.0005

#: At most this many distinct role, group and permission sets are shared per cache.
_SHARED_SETS = 1024


class _Held:
    """What the cached sessions of one username share: the user record, when it was
    read, and the tag that marks a session as cached with this record."""

    __slots__ = ("sessions", "since", "tag", "user")

    def __init__(self, user: User, since: float) -> None:
        self.user = user
        self.since = since
        #: The ``data`` of every session cached with this record, compared by identity:
        #: a session whose ``data`` is not its user's current tag was cached before the
        #: user was evicted or read again, and answers nothing.
        self.tag: dict[str, str] = {}
        #: Entries carrying the tag: the record goes with the last of them.
        self.sessions = 0


class SessionCache:
    """(session, user) answers by session id, evicted by username or wholesale.

    An entry is the session alone, cut down to what the check reads (see `put`); the
    user record of each username, and when it was read, are held once for all its
    sessions.  Evicting a user drops that record, which ends its sessions' answers at
    once; their entries stay in the LRU, answering nothing, until read again or pushed
    out (no per-user index of session ids to keep).
    """

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
        self._yield_at = 0.0
        self._entries: LRU[str, Session] = LRU(SESSION_CHECKS, max_entries)
        self._users: dict[str, _Held] = {}
        self._sets: dict[frozenset[str], frozenset[str]] = {}
        self._stamp: Hashable = None
        self._lock = threading.Lock()
        #: Bumped by every eviction: an answer read before one is not cached after it.
        self.generation = 0

    def get(self, session_id: str, username: str, stamp: Hashable = None) -> Hit | None:
        """The cached answer, or None (absent, stale, or the cache is off)."""
        if not self.enabled:
            return None
        now = time.monotonic()
        if self.deaf_after is not None:
            if now - self._heard_at > self.deaf_after:
                return None
            if now >= self._yield_at:
                # Hand the GIL to the feed's thread, which may hold an eviction: a busy
                # checking thread would otherwise keep it waiting a whole switch
                # interval (5 ms) per wake-up.
                self._yield_at = now + YIELD_EVERY
                time.sleep(0)
        if stamp is not None and stamp != self._stamp:
            self.clear(stamp)
            return None
        session = self._entries.get(session_id)
        if session is None:
            return None
        held = self._users.get(username)
        if (
            held is None
            or session.data is not held.tag
            or now - held.since > self.ttl
            or session.is_expired()
        ):
            self._entries.unanswered()  # the store answers: a miss, for the counters
            return None
        return session, held.user

    def put(self, session: Session, user: User, generation: int) -> None:
        """Remember an answer read from the backend, unless something was evicted since
        the read began (`generation` is what `generation` was then).

        Only what the check reads is kept: the session without its refresh hash,
        client address, user agent, data and creation time; the user without its
        password hash and SCRAM credentials, and as the record already held for the
        name when equal to it.  An unequal one means one of the two reads is the older:
        every answer for the name is forgotten before this one is kept.  A session of
        someone else than `user` is not kept (the check refuses it anyway)."""
        name = user.username
        if session.username != name or not self.enabled or generation != self.generation:
            return
        if self._entries.bound <= 0:
            return
        with self._lock:
            if generation != self.generation:
                return
            self._forget_session(session.id)
            now = time.monotonic()
            kept = self._kept_user(user)
            held = self._users.get(name)
            if held is not None and held.user != kept:
                self._forget_user(name)
                held = None
            if held is None or now - held.since > self.ttl:
                held = self._users[name] = _Held(held.user if held else kept, now)
            held.sessions += 1
            evicted = self._entries.put(
                session.id,
                Session(
                    id=session.id,
                    username=held.user.username,
                    expires_at=session.expires_at,
                    created_at=_NOT_KEPT,
                    last_seen=session.last_seen,
                    kind=sys.intern(session.kind),
                    data=held.tag,
                ),
            )
            if evicted is not None:  # the least recently used answer made room
                self._release(evicted[1])

    def _kept_user(self, user: User) -> User:
        """`user` as the cache keeps it: no secrets, and its role, group and permission
        sets the equal ones already held (a few distinct sets serve many users)."""
        return dataclasses.replace(
            user,
            roles=self._shared(user.roles),
            groups=self._shared(user.groups),
            permissions=self._shared(user.permissions),
            password_hash="",
            scram_credentials="",
            factors="",
        )

    def _shared(self, names: frozenset[str]) -> frozenset[str]:
        found = self._sets.get(names)
        if found is not None:
            return found
        if len(self._sets) < _SHARED_SETS:
            self._sets[names] = names
        return names

    def _live(self, session: Session) -> bool:
        """Was `session` cached with its user's current record?"""
        held = self._users.get(session.username)
        return held is not None and session.data is held.tag

    def _release(self, session: Session) -> None:
        """An entry is gone: the user's record goes with the last of its sessions."""
        held = self._users.get(session.username)
        if held is not None and session.data is held.tag:
            held.sessions -= 1
            if not held.sessions:
                del self._users[session.username]

    def _forget_session(self, session_id: str) -> None:
        gone = self._entries.pop(session_id)
        if gone is not None:
            self._release(gone)

    def touch(self, session_id: str, last_seen: datetime) -> None:
        """Record this process's own ``last_seen`` write in the cached session."""
        with self._lock:
            session = self._entries.pop(session_id)
            if session is not None and self._live(session):
                self._entries.put(session_id, session.replace(last_seen=last_seen))

    def evict_session(self, session_id: str) -> None:
        """Forget one session."""
        with self._lock:
            self.generation += 1
            self._forget_session(session_id)

    def evict_user(self, username: str) -> None:
        """Forget everything about one user (their record or a session changed)."""
        with self._lock:
            self._forget_user(username)

    def _forget_user(self, username: str) -> None:
        """`evict_user` under the lock: the record goes, and its sessions' entries no
        longer match any."""
        self.generation += 1
        self._users.pop(username, None)

    def clear(self, stamp: Hashable = None) -> None:
        """Forget everything; `stamp` becomes the validity stamp of what comes next."""
        with self._lock:
            self.generation += 1
            self._entries.invalidate()
            self._users.clear()
            self._sets.clear()
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
    answer while it is valid (`stamp` as in `SessionCache.get`; only what the check
    reads, see `SessionCache.put`), else the steps of `read`, whose live answer is
    remembered unless something was evicted meanwhile, and returned whole."""
    if cache is None:
        return (yield from read)
    hit = cache.get(session_id, username, stamp)
    if hit is not None:
        read.close()
        return hit
    generation = cache.generation
    session, user = yield from read
    if session is not None and user is not None:
        cache.put(session, user, generation)
    return session, user
