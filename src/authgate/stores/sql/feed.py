"""The threads that keep a process's session cache honest on a SQL database: they hear
which users' session checks changed, evict those, and turn the cache off while they
cannot hear.

- PostgreSQL (`NotifyFeed`): ``LISTEN`` on the store's channel; every change that can
  end a check sends ``pg_notify(channel, username)`` inside its own transaction, so the
  notice arrives when, and only if, the change commits.  A heartbeat (a NOTIFY the
  thread sends itself on a private channel) comes back after every notice committed
  before it: PostgreSQL delivers notices in commit order.
- MySQL and MariaDB (`PollFeed`) have no notification channel: the thread reads the
  ``epoch`` row every `POLL_INTERVAL` seconds and, when it moved, the usernames logged
  in ``changes`` since.  A revocation is seen within one interval.

While a feed is not heard from (before its first answer, after a connection error,
and when no heartbeat or poll has come back for `DEAF_AFTER` seconds) the cache
answers nothing, and every check reads the database.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import uuid
from typing import Any

import sqlalchemy as sa

from ..cache import SessionCache
from .schema import Tables

__all__ = ["DEAF_AFTER", "HEARTBEAT", "POLL_INTERVAL", "NotifyFeed", "PollFeed"]

#: Seconds between heartbeats (PostgreSQL).
HEARTBEAT = 0.5
#: Seconds between reads of the change log (MySQL, MariaDB): how stale an answer may be.
POLL_INTERVAL = 0.02
#: The cache answers while the feed was last heard at most this long ago.
DEAF_AFTER = 2.0
_log = logging.getLogger("authgate.store")


def _lost_database(exc: Exception) -> bool:
    """Is `exc` the database or the network failing (as opposed to a bug)?"""
    if isinstance(exc, (sa.exc.SQLAlchemyError, OSError, TimeoutError)):
        return True
    return type(exc).__module__.split(".")[0] in ("psycopg", "pymysql")


class _Feed(threading.Thread):
    """A daemon thread that follows a database's changes into a `SessionCache`,
    reconnecting with a growing pause (0.1 s doubling to 5 s) after each failure."""

    def __init__(self, engine: sa.Engine, cache: SessionCache) -> None:
        super().__init__(name=f"authgate-sql-{type(self).__name__}", daemon=True)
        self.engine = engine
        self.cache = cache
        self.stopping = threading.Event()
        self.backoff = 0.1
        cache.disable()

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                self._follow()
            except Exception as exc:  # never stop following
                if not _lost_database(exc):  # a fault of ours
                    _log.warning("the session cache's feed failed (%s)", type(exc).__name__)
                self.cache.disable()
                self.stopping.wait(self.backoff)
                self.backoff = min(self.backoff * 2, 5.0)
        self.engine.dispose()

    def _follow(self) -> None:
        raise NotImplementedError

    def _connected(self) -> None:
        self.backoff = 0.1

    def stop(self) -> None:
        """Ask the thread to end (it does within a heartbeat or a poll)."""
        self.stopping.set()


class NotifyFeed(_Feed):
    """PostgreSQL: ``LISTEN`` for changed usernames, with heartbeats."""

    def __init__(self, engine: sa.Engine, cache: SessionCache, channel: str) -> None:
        super().__init__(engine, cache)
        self.channel = channel
        self.beats = f"authgate_beat_{uuid.uuid4().hex[:24]}"

    def _follow(self) -> None:
        raw = self.engine.raw_connection()
        try:
            conn: Any = raw.driver_connection  # a psycopg connection
            conn.autocommit = True
            from psycopg import sql

            for name in (self.channel, self.beats):
                conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(name)))
            self.cache.enable(heard_since=time.monotonic())
            self._connected()
            self._listen(conn)
        finally:
            with contextlib.suppress(Exception):
                raw.invalidate()

    def _listen(self, conn: Any) -> None:
        sent: float | None = None  # when the unanswered heartbeat went out
        due = time.monotonic() + HEARTBEAT
        while not self.stopping.is_set():
            now = time.monotonic()
            if sent is None and now >= due:
                sent = now
                conn.execute("SELECT pg_notify(%s, '')", (self.beats,))
            elif sent is not None and now - sent > DEAF_AFTER:
                raise TimeoutError("no heartbeat came back")
            until = due if sent is None else sent + DEAF_AFTER
            wait = min(HEARTBEAT, max(until - now, 0.01))
            for note in conn.notifies(timeout=wait, stop_after=1):
                if note.channel == self.beats:
                    if sent is not None:
                        self.cache.heard(sent)
                        due, sent = sent + HEARTBEAT, None
                else:
                    self.cache.evict_user(note.payload)


class PollFeed(_Feed):
    """MySQL/MariaDB: read the epoch row, and the change log when it moved."""

    def __init__(self, engine: sa.Engine, cache: SessionCache, tables: Tables) -> None:
        super().__init__(engine, cache)
        epoch, changes = tables.epoch, tables.changes
        self._epoch = sa.select(epoch.c.value).where(epoch.c.id == 1)
        self._changed = (
            sa.select(changes.c.epoch, changes.c.username)
            .where(changes.c.epoch > sa.bindparam("seen"))
            .where(changes.c.epoch <= sa.bindparam("now"))
        )

    def _follow(self) -> None:
        with self.engine.connect() as conn:
            conn = conn.execution_options(isolation_level="AUTOCOMMIT")
            asked = time.monotonic()
            seen = int(conn.execute(self._epoch).scalar_one())
            self.cache.enable(heard_since=asked)
            self._connected()
            while not self.stopping.wait(POLL_INTERVAL):
                asked = time.monotonic()
                now = int(conn.execute(self._epoch).scalar_one())
                if now != seen:
                    rows = conn.execute(self._changed, {"seen": seen, "now": now}).all()
                    if len(rows) != now - seen:  # trimmed, or the epoch went back
                        self.cache.clear()
                    for row in rows:
                        self.cache.evict_user(row.username)
                    seen = now
                self.cache.heard(asked)
