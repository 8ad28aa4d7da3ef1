"""The embedded default store (``sqlite:///path/to/authgate.db``).

One connection per thread, WAL journal, and every multi-row change inside
``BEGIN IMMEDIATE`` so writers from other threads and processes queue on SQLite's own
lock instead of interleaving.  Readers never block writers (WAL).
"""

from __future__ import annotations

import contextlib
import mmap
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

from ..errors import (
    NotFound,
    StoreError,
    StoreUnavailable,
    UserExists,
    UserNotFound,
    VersionConflict,
)
from ..faces import call_now, deferred, drive
from ..users import Group, User, utcnow
from . import _codec
from .base import Page, Session, Sweeper
from .cache import CACHE_TTL, SessionCache, read_through

__all__ = ["SQLiteStore"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    username TEXT PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    version INTEGER NOT NULL,
    record TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS groups (
    name TEXT PRIMARY KEY,
    record TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY,
    username TEXT NOT NULL,
    created_at REAL NOT NULL,
    expires_at REAL NOT NULL,
    record TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS sessions_by_user ON sessions (username, created_at);
CREATE INDEX IF NOT EXISTS sessions_by_expiry ON sessions (expires_at);
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
INSERT OR IGNORE INTO meta (key, value) VALUES ('epoch', 0);
CREATE TABLE IF NOT EXISTS counters (
    key TEXT PRIMARY KEY,
    value INTEGER NOT NULL,
    expires_at REAL NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS counters_by_expiry ON counters (expires_at);
"""


class SQLiteStore:
    """A `Store` in one SQLite file, safe across threads and processes."""

    def __init__(
        self,
        path: str | Path,
        *,
        url: str | None = None,
        timeout: float = 10.0,
        cache_ttl: float = CACHE_TTL,
    ) -> None:
        self.path = str(path)
        self.cache_ttl = cache_ttl
        self._cache = SessionCache(cache_ttl)
        self._shm: mmap.mmap | None = None
        self._shm_failed = False
        #: The last WAL-index header seen, and the epoch read just after it.
        self._seen: tuple[bytes, object] | None = None
        self.url = url or f"sqlite:///{self.path}"
        self._timeout = timeout
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._all_lock = threading.Lock()
        self.sweeper = Sweeper()
        with self._write() as db:
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    db.execute(statement)

    def __repr__(self) -> str:
        return f"SQLiteStore({self.path!r})"

    # -- connections ------------------------------------------------------------------

    def _enter_wal(self, conn: sqlite3.Connection) -> None:
        """Switch to the WAL journal, waiting out other processes doing the same.

        On a fresh file every worker of a new deployment gets here at once, and SQLite
        answers a journal-mode change it cannot make now with "database is locked" at
        once, without the busy handler: retried here, up to the store's timeout.
        """
        deadline = time.monotonic() + self._timeout
        pause = 0.005
        while True:
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as err:
                busy = "locked" in str(err) or "busy" in str(err)
                if not busy or time.monotonic() >= deadline:
                    raise
            time.sleep(pause)
            pause = min(pause * 2, 0.1)

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            try:
                conn = sqlite3.connect(
                    self.path,
                    timeout=self._timeout,
                    isolation_level=None,
                    check_same_thread=False,
                )
                self._enter_wal(conn)
                conn.execute("PRAGMA synchronous=NORMAL")
                conn.execute(f"PRAGMA busy_timeout={int(self._timeout * 1000)}")
            except sqlite3.Error as err:
                raise StoreUnavailable(
                    f"cannot open SQLite database {self.path!r}: {err}; check that the "
                    "directory exists and is writable"
                ) from err
            self._local.conn = conn
            with self._all_lock:
                self._all.append(conn)
        return conn

    @contextlib.contextmanager
    def _write(self, *, invalidates: bool = True) -> Iterator[sqlite3.Connection]:
        """A write transaction that takes SQLite's write lock at once.  Writes that
        can end a cached session check (`invalidates`: a user changed or deleted, a
        session revoked) bump the epoch in the same transaction; the others (a new user
        or session, a refresh, a touch, a group, a counter) cannot."""
        conn = self._conn()
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as err:
            raise StoreUnavailable(f"SQLite database {self.path!r} is busy: {err}") from err
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        else:
            if invalidates:
                # Every process's cached session checks compare against this epoch.
                conn.execute("UPDATE meta SET value = value + 1 WHERE key = 'epoch'")
            conn.execute("COMMIT")

    def _read(self, sql: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
        try:
            return self._conn().execute(sql, params).fetchall()
        except sqlite3.OperationalError as err:
            raise StoreUnavailable(f"SQLite read failed: {err}") from err

    # -- users ------------------------------------------------------------------------

    def get_user(self, username: str) -> User | None:
        rows = self._read("SELECT record FROM users WHERE username = ?", (username,))
        return _codec.user_from_json(str(rows[0][0])) if rows else None

    def get_user_by_id(self, user_id: str) -> User | None:
        rows = self._read("SELECT record FROM users WHERE id = ?", (user_id,))
        return _codec.user_from_json(str(rows[0][0])) if rows else None

    def list_users(self, after: str | None = None, limit: int = 100) -> Page:
        rows = self._read(
            "SELECT username, record FROM users WHERE username > ? ORDER BY username LIMIT ?",
            (after or "", limit + 1),
        )
        users = [_codec.user_from_json(str(record)) for _, record in rows[:limit]]
        more = len(rows) > limit
        return Page(users, users[-1].username if more and users else None)

    def create_user(self, user: User) -> User:
        try:
            with self._write(invalidates=False) as db:
                db.execute(
                    "INSERT INTO users (username, id, version, record) VALUES (?, ?, ?, ?)",
                    (user.username, user.id, user.version, _codec.user_to_json(user)),
                )
        except sqlite3.IntegrityError as err:
            raise UserExists() from err
        return user

    def update_user(self, user: User, expected_version: int) -> User:
        with self._write() as db:
            row = db.execute(
                "SELECT id, version FROM users WHERE username = ?", (user.username,)
            ).fetchone()
            if row is None or row[0] != user.id:
                raise UserNotFound()
            if row[1] != expected_version:
                raise VersionConflict()
            db.execute(
                "UPDATE users SET version = ?, record = ? WHERE username = ?",
                (user.version, _codec.user_to_json(user), user.username),
            )
        return user

    def delete_user(self, username: str, expected_version: int | None = None) -> None:
        with self._write() as db:
            row = db.execute("SELECT version FROM users WHERE username = ?", (username,)).fetchone()
            if row is None:
                raise UserNotFound()
            if expected_version is not None and row[0] != expected_version:
                raise VersionConflict()  # read and delete in one write transaction
            db.execute("DELETE FROM users WHERE username = ?", (username,))
            db.execute("DELETE FROM sessions WHERE username = ?", (username,))

    # -- groups -----------------------------------------------------------------------

    def get_group(self, name: str) -> Group | None:
        rows = self._read("SELECT record FROM groups WHERE name = ?", (name,))
        return _codec.group_from_json(str(rows[0][0])) if rows else None

    def list_groups(self) -> list[Group]:
        rows = self._read("SELECT record FROM groups ORDER BY name")
        return [_codec.group_from_json(str(row[0])) for row in rows]

    def put_group(self, group: Group) -> Group:
        with self._write(invalidates=False) as db:
            db.execute(
                "INSERT INTO groups (name, record) VALUES (?, ?) "
                "ON CONFLICT (name) DO UPDATE SET record = excluded.record",
                (group.name, _codec.group_to_json(group)),
            )
        return group

    def delete_group(self, name: str) -> None:
        with self._write(invalidates=False) as db:
            if db.execute("DELETE FROM groups WHERE name = ?", (name,)).rowcount == 0:
                raise NotFound("no such group")

    # -- sessions ---------------------------------------------------------------------

    def create_session(self, session: Session) -> Session:
        try:
            with self._write(invalidates=False) as db:
                db.execute(
                    "DELETE FROM sessions WHERE username = ? AND expires_at <= ?",
                    (session.username, time.time()),
                )
                self._sweep(db)
                db.execute(
                    "INSERT INTO sessions (id, username, created_at, expires_at, record) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (
                        session.id,
                        session.username,
                        _codec.timestamp(session.created_at),
                        _codec.timestamp(session.expires_at),
                        _codec.session_to_json(session),
                    ),
                )
        except sqlite3.IntegrityError as err:
            raise StoreError("a session with that id already exists") from err
        return session

    def get_session(self, session_id: str) -> Session | None:
        rows = self._read(
            "SELECT record FROM sessions WHERE id = ? AND expires_at > ?",
            (session_id, time.time()),
        )
        return _codec.session_from_json(str(rows[0][0])) if rows else None

    def peek_session_user(
        self, session_id: str, username: str
    ) -> tuple[Session | None, User | None] | None:
        """The cached answer when still valid, else None (no table read)."""
        if self.cache_ttl <= 0:
            return None
        return self._cache.get(session_id, username, self._epoch())

    def _epoch(self) -> object:
        """The ``epoch`` row, bumped in the same transaction by every write that can end
        a session check (in any process): the session cache's validity stamp.

        Read through the WAL-index header in the ``-shm`` file (SQLite's documented
        WAL-index format: ``iChange`` is incremented by every transaction, ``mxFrame``
        and the salts move with every commit), mapped into memory and compared in well
        under a microsecond.  While the header has not moved nothing was committed, and
        the epoch read last stands; when it has, the row is read again, once per commit.
        Most commits (a login, a ``last_seen`` touch, a counter) end nothing, so the
        cache survives them.  Without a ``-shm`` map the row is read on every check.
        """
        shm = self._shm_map()
        if shm is None:
            return self._read_epoch()
        header = shm[:48]
        seen = self._seen
        if seen is not None and seen[0] == header:
            return seen[1]
        # Read after the header: a commit between the two moves the header again, so the
        # pair is never trusted past it.
        epoch = self._read_epoch()
        self._seen = (header, epoch)
        return epoch

    def _read_epoch(self) -> object:
        return self._read("SELECT value FROM meta WHERE key = 'epoch'")[0][0]

    def _shm_map(self) -> mmap.mmap | None:
        if self._shm is None and not self._shm_failed:
            self._conn()  # an open connection keeps the -shm file alive
            try:
                # SQLite follows symlinks to the database file, and keeps its -shm there.
                with open(os.path.realpath(self.path) + "-shm", "rb") as fh:
                    self._shm = mmap.mmap(fh.fileno(), 136, access=mmap.ACCESS_READ)
            except (OSError, ValueError):
                self._shm_failed = True
        return self._shm

    def get_session_user(
        self, session_id: str, username: str
    ) -> tuple[Session | None, User | None]:
        """Served from the cache while the epoch (bumped by every write that can change
        a session check, in any process) stays the same; a cached answer holds only
        what the check reads (`SessionCache.put`)."""
        if self.cache_ttl <= 0:
            return self._session_user(session_id, username)
        read = deferred(self._session_user, session_id, username)
        return drive(read_through(self._cache, session_id, username, read, self._epoch()), call_now)

    def _session_user(self, session_id: str, username: str) -> tuple[Session | None, User | None]:
        rows = self._read(
            "SELECT (SELECT record FROM sessions WHERE id = ? AND expires_at > ?), "
            "(SELECT record FROM users WHERE username = ?)",
            (session_id, time.time(), username),
        )
        session_raw, user_raw = rows[0]
        session = _codec.session_from_json(str(session_raw)) if session_raw is not None else None
        user = _codec.user_from_json(str(user_raw)) if user_raw is not None else None
        return session, user

    def _replace_session(
        self, db: sqlite3.Connection, session_id: str, expected_hash: str | None, **changes: object
    ) -> bool:
        row = db.execute(
            "SELECT record FROM sessions WHERE id = ? AND expires_at > ?",
            (session_id, time.time()),
        ).fetchone()
        if row is None:
            return False
        session = _codec.session_from_json(row[0])
        if expected_hash is not None and session.refresh_hash != expected_hash:
            return False
        session = session.replace(**changes)
        db.execute(
            "UPDATE sessions SET expires_at = ?, record = ? WHERE id = ?",
            (_codec.timestamp(session.expires_at), _codec.session_to_json(session), session_id),
        )
        return True

    def touch_session(self, session_id: str, last_seen: datetime) -> bool:
        # One statement, the record's JSON edited in place by SQLite: no read of the
        # record into Python and back for what the check writes most often.
        with self._write(invalidates=False) as db:
            done = (
                db.execute(
                    # json(): the number as Python spells it, every digit kept
                    "UPDATE sessions SET record = json_set(record, '$.last_seen', json(?)) "
                    "WHERE id = ? AND expires_at > ?",
                    (repr(_codec.timestamp(last_seen)), session_id, time.time()),
                ).rowcount
                == 1
            )
        if done:
            self._cache.touch(session_id, last_seen)
        return done

    def rotate_refresh(
        self, session_id: str, expected_hash: str, new_hash: str, expires_at: datetime
    ) -> bool:
        with self._write(invalidates=False) as db:
            return self._replace_session(
                db,
                session_id,
                expected_hash,
                refresh_hash=new_hash,
                expires_at=expires_at,
                last_seen=utcnow(),
            )

    def revoke_session(self, session_id: str) -> bool:
        with self._write() as db:
            cursor = db.execute(
                "DELETE FROM sessions WHERE id = ? RETURNING expires_at", (session_id,)
            )
            rows = cursor.fetchall()
        return any(float(row[0]) > time.time() for row in rows)

    def list_sessions(self, username: str) -> list[Session]:
        rows = self._read(
            "SELECT record FROM sessions WHERE username = ? AND expires_at > ? "
            "ORDER BY created_at, id",
            (username, time.time()),
        )
        return [_codec.session_from_json(str(row[0])) for row in rows]

    def revoke_user_sessions(self, username: str, keep: str | None = None) -> int:
        with self._write() as db:
            now = time.time()
            rows = db.execute(
                "DELETE FROM sessions WHERE username = ? AND id IS NOT ? RETURNING expires_at",
                (username, keep),
            ).fetchall()
        return sum(1 for row in rows if float(row[0]) > now)

    # -- counters ---------------------------------------------------------------------

    def incr(self, key: str, ttl_seconds: float, by: int = 1) -> int:
        now = time.time()
        with self._write(invalidates=False) as db:
            row = db.execute(
                "INSERT INTO counters (key, value, expires_at) VALUES (?, MAX(?, 0), ?) "
                "ON CONFLICT (key) DO UPDATE SET "
                "value = CASE WHEN expires_at > ? THEN MAX(value + ?, 0) "
                "ELSE excluded.value END, "
                "expires_at = CASE WHEN expires_at > ? "
                "THEN expires_at ELSE excluded.expires_at END "
                "RETURNING value",
                (key, by, now + ttl_seconds, now, by, now),
            ).fetchone()
            self._sweep(db)
        return int(row[0])

    def get_counter(self, key: str) -> int:
        rows = self._read(
            "SELECT value FROM counters WHERE key = ? AND expires_at > ?", (key, time.time())
        )
        return int(str(rows[0][0])) if rows else 0

    def counter_ttl(self, key: str) -> float:
        rows = self._read("SELECT expires_at FROM counters WHERE key = ?", (key,))
        return max(0.0, float(str(rows[0][0])) - time.time()) if rows else 0.0

    def expire_counter(self, key: str, ttl_seconds: float) -> bool:
        now = time.time()
        with self._write(invalidates=False) as db:
            cursor = db.execute(
                "UPDATE counters SET expires_at = ? WHERE key = ? AND expires_at > ?",
                (now + ttl_seconds, key, now),
            )
            return cursor.rowcount > 0

    def reset_counter(self, key: str) -> None:
        with self._write(invalidates=False) as db:
            db.execute("DELETE FROM counters WHERE key = ?", (key,))

    def purge_expired(self) -> int:
        """Delete expired sessions and counters; return how many rows went.  Writes do
        this by themselves once a minute (`sweeper`)."""
        with self._write(invalidates=False) as db:
            return self._purge(db)

    def _sweep(self, db: sqlite3.Connection) -> None:
        if self.sweeper.due(time.time()):
            self._purge(db)

    @staticmethod
    def _purge(db: sqlite3.Connection) -> int:
        # Expired rows answer no session check, so deleting them invalidates nothing.
        now = time.time()
        gone: int = db.execute("DELETE FROM sessions WHERE expires_at <= ?", (now,)).rowcount
        gone += db.execute("DELETE FROM counters WHERE expires_at <= ?", (now,)).rowcount
        return gone

    def close(self) -> None:
        if self._shm is not None:
            self._shm.close()
            self._shm = None
        with self._all_lock:
            for conn in self._all:
                conn.close()
            self._all.clear()
        self._local = threading.local()
