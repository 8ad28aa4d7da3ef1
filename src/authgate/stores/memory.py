"""The in-process store (``memory://``): for tests and throwaway demos.

Everything lives in dicts behind one lock, so it is exact across threads; it is
private to one process by nature.
"""

from __future__ import annotations

import bisect
import threading
import time
from datetime import datetime

from ..errors import NotFound, UserExists, UserNotFound, VersionConflict
from ..users import Group, User, utcnow
from .base import Page, Session, Sweeper

__all__ = ["MemoryStore"]


class MemoryStore:
    """A `Store` kept in process memory."""

    def __init__(self, url: str = "memory://") -> None:
        self.url = url
        self._lock = threading.RLock()
        self._users: dict[str, User] = {}
        self._by_id: dict[str, str] = {}
        self._names: list[str] = []
        self._groups: dict[str, Group] = {}
        self._sessions: dict[str, Session] = {}
        self._user_sessions: dict[str, set[str]] = {}
        self._counters: dict[str, tuple[int, float]] = {}
        self.sweeper = Sweeper()

    def __repr__(self) -> str:
        return f"MemoryStore({len(self._users)} users)"

    # -- users ------------------------------------------------------------------------

    def get_user(self, username: str) -> User | None:
        return self._users.get(username)

    def get_user_by_id(self, user_id: str) -> User | None:
        with self._lock:
            name = self._by_id.get(user_id)
            return self._users.get(name) if name is not None else None

    def list_users(self, after: str | None = None, limit: int = 100) -> Page:
        with self._lock:
            start = bisect.bisect_right(self._names, after) if after is not None else 0
            names = self._names[start : start + limit]
            more = start + limit < len(self._names)
            items = [self._users[name] for name in names]
        return Page(items, names[-1] if more and names else None)

    def create_user(self, user: User) -> User:
        with self._lock:
            if user.username in self._users:
                raise UserExists()
            self._users[user.username] = user
            self._by_id[user.id] = user.username
            bisect.insort(self._names, user.username)
        return user

    def update_user(self, user: User, expected_version: int) -> User:
        with self._lock:
            current = self._users.get(user.username)
            if current is None or current.id != user.id:
                raise UserNotFound()
            if current.version != expected_version:
                raise VersionConflict()
            self._users[user.username] = user
        return user

    def delete_user(self, username: str, expected_version: int | None = None) -> None:
        with self._lock:
            user = self._users.get(username)
            if user is None:
                raise UserNotFound()
            if expected_version is not None and user.version != expected_version:
                raise VersionConflict()
            del self._users[username]
            self._by_id.pop(user.id, None)
            del self._names[bisect.bisect_left(self._names, username)]
            for sid in self._user_sessions.pop(username, set()):
                self._sessions.pop(sid, None)

    # -- groups -----------------------------------------------------------------------

    def get_group(self, name: str) -> Group | None:
        return self._groups.get(name)

    def list_groups(self) -> list[Group]:
        with self._lock:
            return [self._groups[name] for name in sorted(self._groups)]

    def put_group(self, group: Group) -> Group:
        with self._lock:
            self._groups[group.name] = group
        return group

    def delete_group(self, name: str) -> None:
        with self._lock:
            if self._groups.pop(name, None) is None:
                raise NotFound("no such group")

    # -- sessions ---------------------------------------------------------------------

    def create_session(self, session: Session) -> Session:
        with self._lock:
            self._sweep()
            self._sessions[session.id] = session
            self._user_sessions.setdefault(session.username, set()).add(session.id)
        return session

    def get_session(self, session_id: str) -> Session | None:
        session = self._sessions.get(session_id)
        if session is None:
            return None
        if session.is_expired():
            self.revoke_session(session_id)
            return None
        return session

    def get_session_user(
        self, session_id: str, username: str
    ) -> tuple[Session | None, User | None]:
        return self.get_session(session_id), self._users.get(username)

    def peek_session_user(
        self, session_id: str, username: str
    ) -> tuple[Session | None, User | None] | None:
        """The session check answered from memory: always possible here."""
        return self.get_session_user(session_id, username)

    def touch_session(self, session_id: str, last_seen: datetime) -> bool:
        with self._lock:
            session = self.get_session(session_id)
            if session is None:
                return False
            self._sessions[session_id] = session.replace(last_seen=last_seen)
            return True

    def rotate_refresh(
        self, session_id: str, expected_hash: str, new_hash: str, expires_at: datetime
    ) -> bool:
        with self._lock:
            session = self.get_session(session_id)
            if session is None or session.refresh_hash != expected_hash:
                return False
            self._sessions[session_id] = session.replace(
                refresh_hash=new_hash, expires_at=expires_at, last_seen=utcnow()
            )
            return True

    def revoke_session(self, session_id: str) -> bool:
        with self._lock:
            session = self._sessions.pop(session_id, None)
            if session is None:
                return False
            mine = self._user_sessions.get(session.username)
            if mine is not None:
                mine.discard(session_id)
                if not mine:
                    del self._user_sessions[session.username]
            return True

    def list_sessions(self, username: str) -> list[Session]:
        with self._lock:
            ids = list(self._user_sessions.get(username, ()))
            sessions = [s for s in map(self.get_session, ids) if s is not None]
        return sorted(sessions, key=lambda s: (s.created_at, s.id))

    def revoke_user_sessions(self, username: str, keep: str | None = None) -> int:
        with self._lock:
            ids = [sid for sid in self._user_sessions.get(username, ()) if sid != keep]
            return sum(self.revoke_session(sid) for sid in ids)

    # -- counters ---------------------------------------------------------------------

    def incr(self, key: str, ttl_seconds: float, by: int = 1) -> int:
        now = time.time()
        with self._lock:
            self._sweep()
            value, expires = self._counters.get(key, (0, 0.0))
            if expires <= now:
                value, expires = 0, now + ttl_seconds
            value = max(0, value + by)
            self._counters[key] = (value, expires)
            return value

    def get_counter(self, key: str) -> int:
        value, expires = self._counters.get(key, (0, 0.0))
        return value if expires > time.time() else 0

    def counter_ttl(self, key: str) -> float:
        _, expires = self._counters.get(key, (0, 0.0))
        return max(0.0, expires - time.time())

    def expire_counter(self, key: str, ttl_seconds: float) -> bool:
        now = time.time()
        with self._lock:
            value, expires = self._counters.get(key, (0, 0.0))
            if expires <= now:
                return False
            self._counters[key] = (value, now + ttl_seconds)
            return True

    def reset_counter(self, key: str) -> None:
        with self._lock:
            self._counters.pop(key, None)

    def purge_expired(self) -> int:
        """Drop expired sessions and counters; return how many went.  Writes do this by
        themselves once a minute (`sweeper`)."""
        now = time.time()
        with self._lock:
            stale = [sid for sid, s in self._sessions.items() if s.expires_at.timestamp() <= now]
            for sid in stale:
                self.revoke_session(sid)
            counters = [key for key, (_, exp) in self._counters.items() if exp <= now]
            for key in counters:
                del self._counters[key]
        return len(stale) + len(counters)

    def _sweep(self) -> None:
        if self.sweeper.due(time.time()):
            self.purge_expired()

    def close(self) -> None:
        """Nothing to release."""
