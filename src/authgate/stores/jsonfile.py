"""A store in plain JSON files (``json:///path/to/dir``), as PlantDB keeps its users.

One file per kind of record (``users.json``, ``groups.json``, ``sessions.json``,
``counters.json``) in one directory.  Every change:

- holds an exclusive ``fcntl`` lock on ``.authgate.lock`` (readers hold a shared one), so
  two processes never interleave a read-modify-write;
- writes a temporary file in the same directory, flushes and ``fsync``\\ s it, then
  ``os.replace``\\ s the old one and ``fsync``\\ s the directory: a crash leaves either the
  old file or the new one, never half of one.

Fine for small deployments and for files people like to read; every call reads the file
it needs, so it is slower than SQLite.  POSIX only (``fcntl``).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from ..errors import (
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

__all__ = ["JSONFileStore"]

_FILES = ("users", "groups", "sessions", "counters")


class JSONFileStore:
    """A `Store` in a directory of JSON files, safe across threads and processes."""

    def __init__(self, directory: str | Path, *, url: str | None = None) -> None:
        self.directory = Path(directory)
        self.url = url or f"json:///{self.directory}"
        self._thread_lock = threading.RLock()
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._lock_path = self.directory / ".authgate.lock"
            self._lock_path.touch(exist_ok=True)
        except OSError as err:
            raise StoreUnavailable(
                f"cannot use {self.directory} for the JSON store: {err}"
            ) from err

    def __repr__(self) -> str:
        return f"JSONFileStore({str(self.directory)!r})"

    # -- files --------------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self, exclusive: bool) -> Iterator[None]:
        with self._thread_lock, open(self._lock_path, "rb") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _load(self, name: str) -> dict[str, Any]:
        path = self.directory / f"{name}.json"
        try:
            with open(path, encoding="utf-8") as fh:
                data = json.load(fh)
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as err:
            raise StoreError(f"the JSON store file {path} cannot be read: {err}") from err
        if not isinstance(data, dict):
            raise StoreError(f"the JSON store file {path} does not hold an object")
        return data

    def _save(self, name: str, data: dict[str, Any]) -> None:
        """Write atomically: temporary file, fsync, os.replace, fsync the directory."""
        path = self.directory / f"{name}.json"
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=self.directory)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(data, fh, indent=1, sort_keys=True)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        dir_fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    @contextlib.contextmanager
    def _change(self, *names: str) -> Iterator[list[dict[str, Any]]]:
        """Load `names` under the exclusive lock; save the ones the block changed."""
        with self._locked(exclusive=True):
            loaded = [self._load(name) for name in names]
            before = [json.dumps(d, sort_keys=True) for d in loaded]
            yield loaded
            for name, data, old in zip(names, loaded, before, strict=True):
                if json.dumps(data, sort_keys=True) != old:
                    self._save(name, data)

    def _read(self, name: str) -> dict[str, Any]:
        with self._locked(exclusive=False):
            return self._load(name)

    # -- users --------------------------------------------------------------------------

    @staticmethod
    def _user(raw: Any) -> User:
        return _codec.user_from_json(json.dumps(raw))

    @staticmethod
    def _raw(user: User) -> Any:
        return json.loads(_codec.user_to_json(user))

    def get_user(self, username: str) -> User | None:
        raw = self._read("users").get(username)
        return self._user(raw) if raw is not None else None

    def get_user_by_id(self, user_id: str) -> User | None:
        for raw in self._read("users").values():
            if raw.get("id") == user_id:
                return self._user(raw)
        return None

    def list_users(self, after: str | None = None, limit: int = 100) -> Page:
        users = self._read("users")
        names = sorted(name for name in users if after is None or name > after)
        chosen = names[:limit]
        more = len(names) > limit
        return Page([self._user(users[n]) for n in chosen], chosen[-1] if more and chosen else None)

    def create_user(self, user: User) -> User:
        with self._change("users") as (users,):
            if user.username in users:
                raise UserExists()
            users[user.username] = self._raw(user)
        return user

    def update_user(self, user: User, expected_version: int) -> User:
        with self._change("users") as (users,):
            current = users.get(user.username)
            if current is None or current.get("id") != user.id:
                raise UserNotFound()
            if current.get("version") != expected_version:
                raise VersionConflict()
            users[user.username] = self._raw(user)
        return user

    def delete_user(self, username: str, expected_version: int | None = None) -> None:
        with self._change("users", "sessions") as (users, sessions):
            current = users.get(username)
            if current is None:
                raise UserNotFound()
            if expected_version is not None and current.get("version") != expected_version:
                raise VersionConflict()
            del users[username]
            for sid in [sid for sid, s in sessions.items() if s.get("username") == username]:
                del sessions[sid]

    # -- groups -------------------------------------------------------------------------

    def get_group(self, name: str) -> Group | None:
        raw = self._read("groups").get(name)
        return _codec.group_from_json(json.dumps(raw)) if raw is not None else None

    def list_groups(self) -> list[Group]:
        groups = self._read("groups")
        return [_codec.group_from_json(json.dumps(groups[name])) for name in sorted(groups)]

    def put_group(self, group: Group) -> Group:
        with self._change("groups") as (groups,):
            groups[group.name] = json.loads(_codec.group_to_json(group))
        return group

    def delete_group(self, name: str) -> None:
        with self._change("groups") as (groups,):
            if groups.pop(name, None) is None:
                raise NotFound("no such group")

    # -- sessions -----------------------------------------------------------------------

    @staticmethod
    def _session(raw: Any) -> Session:
        return _codec.session_from_json(json.dumps(raw))

    @staticmethod
    def _live(raw: Any, now: float) -> bool:
        return float(raw.get("expires_at", 0)) > now

    def create_session(self, session: Session) -> Session:
        now = time.time()
        with self._change("sessions") as (sessions,):
            for sid in [sid for sid, s in sessions.items() if not self._live(s, now)]:
                del sessions[sid]  # sweep the expired ones while the file is open
            sessions[session.id] = json.loads(_codec.session_to_json(session))
        return session

    def get_session(self, session_id: str) -> Session | None:
        raw = self._read("sessions").get(session_id)
        if raw is None or not self._live(raw, time.time()):
            return None
        return self._session(raw)

    def get_session_user(
        self, session_id: str, username: str
    ) -> tuple[Session | None, User | None]:
        with self._locked(exclusive=False):
            raw_session = self._load("sessions").get(session_id)
            raw_user = self._load("users").get(username)
        session = (
            self._session(raw_session)
            if raw_session is not None and self._live(raw_session, time.time())
            else None
        )
        return session, (self._user(raw_user) if raw_user is not None else None)

    def _update_session(self, session_id: str, check: str | None, **changes: Any) -> bool:
        with self._change("sessions") as (sessions,):
            raw = sessions.get(session_id)
            if raw is None or not self._live(raw, time.time()):
                return False
            session = self._session(raw)
            if check is not None and session.refresh_hash != check:
                return False
            sessions[session_id] = json.loads(_codec.session_to_json(session.replace(**changes)))
            return True

    def touch_session(self, session_id: str, last_seen: datetime) -> bool:
        return self._update_session(session_id, None, last_seen=last_seen)

    def rotate_refresh(
        self, session_id: str, expected_hash: str, new_hash: str, expires_at: datetime
    ) -> bool:
        return self._update_session(
            session_id,
            expected_hash,
            refresh_hash=new_hash,
            expires_at=expires_at,
            last_seen=utcnow(),
        )

    def revoke_session(self, session_id: str) -> bool:
        with self._change("sessions") as (sessions,):
            raw = sessions.pop(session_id, None)
        return raw is not None and self._live(raw, time.time())

    def list_sessions(self, username: str) -> list[Session]:
        now = time.time()
        found = [
            self._session(raw)
            for raw in self._read("sessions").values()
            if raw.get("username") == username and self._live(raw, now)
        ]
        return sorted(found, key=lambda s: (s.created_at, s.id))

    def revoke_user_sessions(self, username: str, keep: str | None = None) -> int:
        now = time.time()
        with self._change("sessions") as (sessions,):
            doomed = [
                sid for sid, s in sessions.items() if s.get("username") == username and sid != keep
            ]
            live = sum(1 for sid in doomed if self._live(sessions[sid], now))
            for sid in doomed:
                del sessions[sid]
        return live

    # -- counters -----------------------------------------------------------------------

    def incr(self, key: str, ttl_seconds: float, by: int = 1) -> int:
        now = time.time()
        with self._change("counters") as (counters,):
            value, expires = counters.get(key, (0, 0.0))
            if expires <= now:
                value, expires = 0, now + ttl_seconds
            value = max(0, int(value) + by)
            counters[key] = (value, expires)
            for stale in [k for k, (_, exp) in counters.items() if exp <= now]:
                del counters[stale]
        return value

    def get_counter(self, key: str) -> int:
        value, expires = self._read("counters").get(key, (0, 0.0))
        return int(value) if expires > time.time() else 0

    def counter_ttl(self, key: str) -> float:
        _, expires = self._read("counters").get(key, (0, 0.0))
        return max(0.0, float(expires) - time.time())

    def expire_counter(self, key: str, ttl_seconds: float) -> bool:
        now = time.time()
        with self._change("counters") as (counters,):
            value, expires = counters.get(key, (0, 0.0))
            if expires <= now:
                return False
            counters[key] = (value, now + ttl_seconds)
            return True

    def reset_counter(self, key: str) -> None:
        with self._change("counters") as (counters,):
            counters.pop(key, None)

    def purge_expired(self) -> int:
        """Drop expired sessions and counters; return how many went.  Every session write
        and counter increment already sweeps its file."""
        now = time.time()
        with self._change("sessions", "counters") as (sessions, counters):
            stale = [sid for sid, s in sessions.items() if not self._live(s, now)]
            for sid in stale:
                del sessions[sid]
            old = [k for k, (_, exp) in counters.items() if exp <= now]
            for key in old:
                del counters[key]
        return len(stale) + len(old)

    def close(self) -> None:
        """Nothing to release: files are opened per call."""
