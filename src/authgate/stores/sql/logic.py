"""Every operation of the SQL store, defined once as the statements it runs (`_SQL`);
the faces (`SQLStore`, `AsyncSQLStore`) run them with SQLAlchemy's sync or asyncio
engine.

Connections are in the driver's autocommit mode: a read is one round trip, and so is
a write done in one statement (``INSERT ... ON CONFLICT``, ``UPDATE ... WHERE version
= ...``), which the database makes atomic by itself.  Writes of several statements run
between explicit ``BEGIN`` and ``COMMIT`` steps (`_SQL._transaction`), retried whole
when the database ends them for a deadlock or a serialization failure.  Nothing is
ever read into Python, decided, and written back outside a transaction that holds
the row.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import mysql as mysql_dialect
from sqlalchemy.dialects import postgresql as pg_dialect

from ...errors import NotFound, StoreError, UserExists, UserNotFound, VersionConflict
from ...faces import Steps, operation
from ...users import Group, Session, User, utcnow
from ..base import Page, Sweeper
from ..cache import SessionCache, read_through
from .schema import Tables

if TYPE_CHECKING:
    from .usertable import MappedUsers

__all__ = ["Begin", "Done", "Rollback", "Run"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Run:
    """Run one statement; the result is a `Done`."""

    statement: sa.Executable
    params: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None


@dataclass(frozen=True, slots=True)
class Done:
    """What a statement gave: its rows (read at once) and how many rows it matched."""

    rows: Sequence[Any]  # rows of SQLAlchemy (`sa.Row`): by position, or by name in `_mapping`
    rowcount: int
    #: The primary key an insert of one row made (a number the database chose).
    key: Any = None


@dataclass(frozen=True, slots=True)
class Begin:
    """Start a transaction on the operation's connection."""


@dataclass(frozen=True, slots=True)
class Commit:
    """Commit the transaction."""


@dataclass(frozen=True, slots=True)
class Rollback:
    """Roll the transaction back."""


#: How many times a transaction the database ended (deadlock, serialization failure)
#: is run again from the start.
RETRIES = 5

_PG_RETRYABLE = frozenset({"40001", "40P01"})  # serialization_failure, deadlock_detected
_MYSQL_RETRYABLE = frozenset({1213, 1205})  # deadlock, lock wait timeout


def retryable(err: BaseException) -> bool:
    """Did the database end the transaction so that running it again may succeed?"""
    if not isinstance(err, sa_exc.DBAPIError) or err.connection_invalidated:
        return False
    orig = err.orig
    code = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    if code in _PG_RETRYABLE:
        return True
    args: tuple[Any, ...] = getattr(orig, "args", ())
    return bool(args) and args[0] in _MYSQL_RETRYABLE


def _run(statement: sa.Executable, params: Mapping[str, Any] | None = None) -> Steps[Done]:
    done: Done = yield Run(statement, params)
    return done


def _user_values(user: User) -> dict[str, Any]:
    return {
        "id": user.id,
        "username": user.username,
        "version": user.version,
        "enabled": user.enabled,
        "roles": sorted(user.roles),
        "groups": sorted(user.groups),
        "permissions": sorted(user.permissions),
        "email": user.email,
        "email_verified": user.email_verified,
        "first_name": user.first_name,
        "last_name": user.last_name,
        "display_name": user.display_name,
        "created_at": user.created_at,
        "updated_at": user.updated_at,
        "password_hash": user.password_hash,
        "scram_credentials": user.scram_credentials,
        "factors": user.factors,
    }


def _user_from(row: Mapping[Any, Any], prefix: str = "") -> User:
    try:
        return User(
            username=row[prefix + "username"],
            id=row[prefix + "id"],
            roles=frozenset(row[prefix + "roles"]),
            groups=frozenset(row[prefix + "groups"]),
            permissions=frozenset(row[prefix + "permissions"]),
            enabled=bool(row[prefix + "enabled"]),
            email=row[prefix + "email"],
            email_verified=bool(row[prefix + "email_verified"]),
            first_name=row[prefix + "first_name"],
            last_name=row[prefix + "last_name"],
            display_name=row[prefix + "display_name"],
            created_at=row[prefix + "created_at"],
            updated_at=row[prefix + "updated_at"],
            version=int(row[prefix + "version"]),
            password_hash=row[prefix + "password_hash"],
            scram_credentials=row[prefix + "scram_credentials"],
            factors=row[prefix + "factors"] or "",
        )
    except (KeyError, TypeError, ValueError) as err:
        raise StoreError("a stored user record is corrupt") from err


def _session_values(session: Session) -> dict[str, Any]:
    return {
        "id": session.id,
        "username": session.username,
        "kind": session.kind,
        "created_at": session.created_at,
        "expires_at": session.expires_at,
        "last_seen": session.last_seen,
        "refresh_hash": session.refresh_hash,
        "client_ip": session.client_ip,
        "user_agent": session.user_agent,
        "data": dict(session.data),
    }


def _session_from(row: Mapping[Any, Any], prefix: str = "") -> Session:
    try:
        return Session(
            id=row[prefix + "id"],
            username=row[prefix + "username"],
            kind=row[prefix + "kind"],
            created_at=row[prefix + "created_at"],
            expires_at=row[prefix + "expires_at"],
            last_seen=row[prefix + "last_seen"],
            refresh_hash=row[prefix + "refresh_hash"],
            client_ip=row[prefix + "client_ip"],
            user_agent=row[prefix + "user_agent"],
            data=dict(row[prefix + "data"]),
        )
    except (KeyError, TypeError, ValueError) as err:
        raise StoreError("a stored session record is corrupt") from err


def _group_from(row: Mapping[Any, Any]) -> Group:
    return Group(row["name"], frozenset(row["permissions"]), row["description"])


class _Statements:
    """Every statement the store runs, built once with bound parameters (SQLAlchemy
    then compiles each once per engine).  `family` is ``"postgresql"`` or ``"mysql"``
    (MariaDB included); where the two differ (``ON CONFLICT`` or ``ON DUPLICATE KEY``,
    ``RETURNING`` or a locking read), both are here."""

    def __init__(self, t: Tables, family: str) -> None:
        b = sa.bindparam
        u, s, g, c, e = t.users, t.sessions, t.groups, t.counters, t.epoch
        self.user_by_name = sa.select(u).where(u.c.username == b("username"))
        self.user_by_id = sa.select(u).where(u.c.id == b("id"))
        self.users_after = (
            sa.select(u).where(u.c.username > b("after")).order_by(u.c.username).limit(b("limit"))
        )
        self.insert_user = sa.insert(u)
        # Keys that name no column (w_...) stay in the WHERE clause; the rest are SET.
        self.update_user = (
            sa.update(u)
            .where(u.c.username == b("w_username"))
            .where(u.c.id == b("w_id"))
            .where(u.c.version == b("w_version"))
        )
        self.version_of = sa.select(u.c.id, u.c.version).where(u.c.username == b("username"))
        self.delete_user = sa.delete(u).where(u.c.username == b("username"))
        self.delete_user_at = self.delete_user.where(u.c.version == b("version"))
        self.delete_user_sessions = sa.delete(s).where(s.c.username == b("username"))

        live = s.c.expires_at > b("now")
        self.session_by_id = sa.select(s).where(s.c.id == b("id")).where(live)
        self.insert_session = sa.insert(s)
        self.drop_expired_of = (
            sa.delete(s).where(s.c.username == b("username")).where(s.c.expires_at <= b("now"))
        )
        # Update statements name their parameters apart from the columns (SQLAlchemy
        # keeps column names for the SET clause).
        live_at = s.c.expires_at > b("at")
        self.touch = (
            sa.update(s).where(s.c.id == b("sid")).where(live_at).values(last_seen=b("seen"))
        )
        self.rotate = (
            sa.update(s)
            .where(s.c.id == b("sid"))
            .where(s.c.refresh_hash == b("expected"))
            .where(live_at)
            .values(refresh_hash=b("new_hash"), expires_at=b("until"), last_seen=b("seen"))
        )
        self.sessions_of = (
            sa.select(s)
            .where(s.c.username == b("username"))
            .where(live)
            .order_by(s.c.created_at, s.c.id)
        )
        # The check in one round trip: a one-row table left-joined to the session and
        # to the user, so that either may be missing.
        one = sa.select(sa.literal(1).label("one")).subquery("one")
        self.session_user = sa.select(
            *(col.label("s_" + col.name) for col in s.c),
            *(col.label("u_" + col.name) for col in u.c),
        ).select_from(
            one.outerjoin(s, sa.and_(s.c.id == b("id"), live)).outerjoin(
                u, u.c.username == b("username")
            )
        )
        self.delete_session = sa.delete(s).where(s.c.id == b("id"))
        self.lock_session = (
            sa.select(s.c.username, s.c.expires_at).where(s.c.id == b("id")).with_for_update()
        )
        keep = b("keep", type_=s.c.id.type)
        others = sa.or_(keep.is_(None), s.c.id != keep)
        self.delete_sessions_of = sa.delete(s).where(s.c.username == b("username")).where(others)
        self.lock_sessions_of = (
            sa.select(s.c.expires_at)
            .where(s.c.username == b("username"))
            .where(others)
            .with_for_update()
        )

        self.group = sa.select(g).where(g.c.name == b("name"))
        self.groups = sa.select(g).order_by(g.c.name)
        self.delete_group = sa.delete(g).where(g.c.name == b("name"))

        self.counter = (
            sa.select(c.c.value).where(c.c.key == b("key")).where(c.c.expires_at > b("now"))
        )
        self.counter_expiry = sa.select(c.c.expires_at).where(c.c.key == b("key"))
        self.expire_counter = (
            sa.update(c)
            .where(c.c.key == b("name"))
            .where(c.c.expires_at > b("at"))
            .values(expires_at=b("until"))
        )
        self.reset_counter = sa.delete(c).where(c.c.key == b("key"))
        self.locked_counter = sa.select(c.c.value).where(c.c.key == b("key")).with_for_update()

        self.purge_sessions = sa.delete(s).where(s.c.expires_at <= b("now"))
        self.purge_counters = sa.delete(c).where(c.c.expires_at <= b("now"))
        self.purge_changes = sa.delete(t.changes).where(t.changes.c.at <= b("before"))
        self.bump_epoch = sa.update(e).where(e.c.id == 1).values(value=e.c.value + 1)
        self.epoch = sa.select(e.c.value).where(e.c.id == 1)
        self.log_change = sa.insert(t.changes)

        self.incr: sa.Executable
        self.put_group: sa.Executable
        fresh = c.c.expires_at > b("now")
        # `by` is one, or -1 to give a reservation back; a counter never goes below zero.
        by = b("by", type_=sa.Integer())
        first = sa.func.greatest(by, 0)
        added = sa.func.greatest(c.c.value + by, 0)
        if family == "postgresql":
            pg_counter = pg_dialect.insert(c).values(
                key=b("key"), value=first, expires_at=b("expires_at")
            )
            self.incr = pg_counter.on_conflict_do_update(
                index_elements=[c.c.key],
                set_={
                    "value": sa.case((fresh, added), else_=first),
                    "expires_at": sa.case(
                        (fresh, c.c.expires_at), else_=pg_counter.excluded.expires_at
                    ),
                },
            ).returning(c.c.value)
            pg_group = pg_dialect.insert(g)
            self.put_group = pg_group.on_conflict_do_update(
                index_elements=[g.c.name],
                set_={
                    "permissions": pg_group.excluded.permissions,
                    "description": pg_group.excluded.description,
                },
            )
            text = sa.String()
            self.notify = sa.select(
                sa.func.pg_notify(b("channel", type_=text), b("username", type_=text))
            )
            self.delete_session_returning = self.delete_session.returning(
                s.c.username, s.c.expires_at
            )
            self.delete_sessions_of_returning = self.delete_sessions_of.returning(s.c.expires_at)
        else:
            my_counter = mysql_dialect.insert(c).values(
                key=b("key"), value=first, expires_at=b("expires_at")
            )
            # MySQL assigns left to right, each assignment seeing the ones before it:
            # the value first, while expires_at still holds the old window.
            self.incr = my_counter.on_duplicate_key_update(
                [
                    ("value", sa.case((fresh, added), else_=first)),
                    (
                        "expires_at",
                        sa.case((fresh, c.c.expires_at), else_=my_counter.inserted.expires_at),
                    ),
                ]
            )
            my_group = mysql_dialect.insert(g)
            self.put_group = my_group.on_duplicate_key_update(
                permissions=my_group.inserted.permissions,
                description=my_group.inserted.description,
            )


class _SQL:
    """Every operation of the SQL store, as the statements it runs (no I/O here).

    Each is a plain method made an operation by assignment in the faces' module.  The
    session check is served from a `SessionCache` (`read_through`) that the faces
    switch on with a change feed (`stores.sql.feed`); every change this process makes
    evicts what it changed at once.
    """

    #: The per-process session-check cache (None: off), set by the face.
    _cache: SessionCache | None = None
    #: Users in the app's own table (`usertable.UserTable`), set by the face; None:
    #: in authgate's.
    mapped: MappedUsers | None = None

    def __init__(self, tables: Tables, family: str, channel: str) -> None:
        self.tables = tables
        self.family = family
        #: PostgreSQL: the NOTIFY channel every change that can end a check is sent on.
        self.channel = channel
        self.sweeper = Sweeper()
        self.q = _Statements(tables, family)

    # -- transactions and announcements ----------------------------------------------

    def _transaction(self, body: Callable[[], Steps[T]]) -> Steps[T]:
        """`body`'s statements in one transaction, run again from the start (up to
        `RETRIES` times) when the database ends it for a deadlock or a serialization
        failure; any other failure rolls it back and goes up."""
        attempt = 0
        while True:
            yield Begin()
            try:
                result = yield from body()
            except BaseException as err:
                yield Rollback()
                attempt += 1
                if attempt < RETRIES and retryable(err):
                    continue
                raise
            yield Commit()
            return result

    def _announce(self, username: str) -> Steps[None]:
        """Tell every process that `username`'s session checks may have changed, inside
        the transaction of the change: delivered when (and only if) it commits.

        PostgreSQL: ``pg_notify`` on the store's channel.  MySQL/MariaDB have no such
        channel: the change is logged under the next epoch, which each process's
        poller reads (`stores.sql.feed`); bumping the epoch row first queues the
        writers on its lock, so epochs commit in order and the poller never skips
        one that commits late."""
        if self.family == "postgresql":
            yield from _run(self.q.notify, {"channel": self.channel, "username": username})
            return
        yield from _run(self.q.bump_epoch)
        epoch = (yield from _run(self.q.epoch)).rows[0][0]
        yield from _run(self.q.log_change, {"epoch": epoch, "username": username, "at": utcnow()})

    def _evict(self, *, username: str = "", session_id: str = "") -> None:
        """Forget this process's cached answers about what a change touched, at once
        (whatever the change's outcome: a lost connection may still have applied it)."""
        if self._cache is not None:
            if username:
                self._cache.evict_user(username)
            if session_id:
                self._cache.evict_session(session_id)

    def _sweep(self) -> Steps[None]:
        """Delete expired sessions, counters and old change-log rows, at most once a
        minute per process (`Sweeper`)."""
        if not self.sweeper.due(time.time()):
            return
        now = utcnow()
        yield from _run(self.q.purge_sessions, {"now": now})
        yield from _run(self.q.purge_counters, {"now": now})
        if self.family != "postgresql":
            yield from _run(self.q.purge_changes, {"before": now - timedelta(minutes=5)})

    # -- users ------------------------------------------------------------------------

    def _get_user(self, username: str) -> Steps[User | None]:
        if self.mapped is not None:
            return (yield from self.mapped.get(username))
        done = yield from _run(self.q.user_by_name, {"username": username})
        return _user_from(done.rows[0]._mapping) if done.rows else None

    get_user = operation(_get_user)

    def _get_user_by_id(self, user_id: str) -> Steps[User | None]:
        if self.mapped is not None:
            return (yield from self.mapped.get_by_id(user_id))
        done = yield from _run(self.q.user_by_id, {"id": user_id})
        return _user_from(done.rows[0]._mapping) if done.rows else None

    get_user_by_id = operation(_get_user_by_id)

    def _list_users(self, after: str | None = None, limit: int = 100) -> Steps[Page]:
        if self.mapped is not None:
            return (yield from self.mapped.page(after, limit))
        done = yield from _run(self.q.users_after, {"after": after or "", "limit": limit + 1})
        users = [_user_from(row._mapping) for row in done.rows[:limit]]
        more = len(done.rows) > limit
        return Page(users, users[-1].username if more and users else None)

    list_users = operation(_list_users)

    def _create_user(self, user: User) -> Steps[User]:
        if self.mapped is not None:
            return (yield from self.mapped.create(user))
        try:
            yield from _run(self.q.insert_user, _user_values(user))
        except sa_exc.IntegrityError as err:
            raise UserExists() from err
        return user

    create_user = operation(_create_user)

    def _update_user(self, user: User, expected_version: int) -> Steps[User]:
        try:
            return (yield from self._transaction(lambda: self._update_tx(user, expected_version)))
        finally:
            self._evict(username=user.username)

    update_user = operation(_update_user)

    def _update_tx(self, user: User, expected_version: int) -> Steps[User]:
        if self.mapped is not None:
            return (yield from self.mapped.update(user, expected_version))
        where = {"w_username": user.username, "w_id": user.id, "w_version": expected_version}
        values = _user_values(user)
        del values["id"], values["username"]
        done = yield from _run(self.q.update_user, {**values, **where})
        if done.rowcount != 1:
            found = yield from _run(self.q.version_of, {"username": user.username})
            if not found.rows or found.rows[0][0] != user.id:
                raise UserNotFound()
            raise VersionConflict()
        yield from self._announce(user.username)
        return user

    def _delete_user(self, username: str, expected_version: int | None = None) -> Steps[None]:
        try:
            yield from self._transaction(lambda: self._delete_user_tx(username, expected_version))
        finally:
            self._evict(username=username)

    delete_user = operation(_delete_user)

    def _delete_user_tx(self, username: str, expected_version: int | None) -> Steps[None]:
        if self.mapped is not None:
            return (yield from self.mapped.delete(username, expected_version, self.tables.sessions))
        if expected_version is None:
            done = yield from _run(self.q.delete_user, {"username": username})
        else:
            params = {"username": username, "version": expected_version}
            done = yield from _run(self.q.delete_user_at, params)
        if done.rowcount != 1:
            found = yield from _run(self.q.version_of, {"username": username})
            if found.rows:
                raise VersionConflict()  # decided and deleted in one statement
            raise UserNotFound()
        yield from _run(self.q.delete_user_sessions, {"username": username})
        yield from self._announce(username)

    # -- groups -----------------------------------------------------------------------

    def _get_group(self, name: str) -> Steps[Group | None]:
        done = yield from _run(self.q.group, {"name": name})
        return _group_from(done.rows[0]._mapping) if done.rows else None

    get_group = operation(_get_group)

    def _list_groups(self) -> Steps[list[Group]]:
        done = yield from _run(self.q.groups)
        return [_group_from(row._mapping) for row in done.rows]

    list_groups = operation(_list_groups)

    def _put_group(self, group: Group) -> Steps[Group]:
        values = {
            "name": group.name,
            "permissions": sorted(group.permissions),
            "description": group.description,
        }
        yield from _run(self.q.put_group, values)
        return group

    put_group = operation(_put_group)

    def _delete_group(self, name: str) -> Steps[None]:
        done = yield from _run(self.q.delete_group, {"name": name})
        if done.rowcount == 0:
            raise NotFound("no such group")

    delete_group = operation(_delete_group)

    # -- sessions ---------------------------------------------------------------------

    def _create_session(self, session: Session) -> Steps[Session]:
        def body() -> Steps[None]:
            yield from _run(self.q.drop_expired_of, {"username": session.username, "now": utcnow()})
            yield from self._sweep()
            yield from _run(self.q.insert_session, _session_values(session))

        try:
            yield from self._transaction(body)
        except sa_exc.IntegrityError as err:
            raise StoreError("a session with that id already exists") from err
        return session

    create_session = operation(_create_session)

    def _get_session(self, session_id: str) -> Steps[Session | None]:
        done = yield from _run(self.q.session_by_id, {"id": session_id, "now": utcnow()})
        return _session_from(done.rows[0]._mapping) if done.rows else None

    get_session = operation(_get_session)

    def _get_session_user(
        self, session_id: str, username: str
    ) -> Steps[tuple[Session | None, User | None]]:
        return read_through(
            self._session_cache(), session_id, username, self._session_user(session_id, username)
        )

    get_session_user = operation(_get_session_user)

    def _session_cache(self) -> SessionCache | None:
        return self._cache

    def _session_user(
        self, session_id: str, username: str
    ) -> Steps[tuple[Session | None, User | None]]:
        if self.mapped is not None:
            session = yield from self._get_session(session_id)
            return session, (yield from self.mapped.get(username))
        done = yield from _run(
            self.q.session_user, {"id": session_id, "username": username, "now": utcnow()}
        )
        row = done.rows[0]._mapping
        session = _session_from(row, "s_") if row["s_id"] is not None else None
        user = _user_from(row, "u_") if row["u_id"] is not None else None
        return session, user

    def _touch_session(self, session_id: str, last_seen: datetime) -> Steps[bool]:
        done = yield from _run(self.q.touch, {"sid": session_id, "seen": last_seen, "at": utcnow()})
        if self._cache is not None and done.rowcount == 1:
            self._cache.touch(session_id, last_seen)
        return done.rowcount == 1

    touch_session = operation(_touch_session)

    def _rotate_refresh(
        self, session_id: str, expected_hash: str, new_hash: str, expires_at: datetime
    ) -> Steps[bool]:
        now = utcnow()
        params = {
            "sid": session_id,
            "expected": expected_hash,
            "new_hash": new_hash,
            "until": expires_at,
            "seen": now,
            "at": now,
        }
        done = yield from _run(self.q.rotate, params)
        return done.rowcount == 1

    rotate_refresh = operation(_rotate_refresh)

    def _revoke_session(self, session_id: str) -> Steps[bool]:
        try:
            return (yield from self._transaction(lambda: self._revoke_session_tx(session_id)))
        finally:
            self._evict(session_id=session_id)

    revoke_session = operation(_revoke_session)

    def _revoke_session_tx(self, session_id: str) -> Steps[bool]:
        if self.family == "postgresql":
            done = yield from _run(self.q.delete_session_returning, {"id": session_id})
        else:
            done = yield from _run(self.q.lock_session, {"id": session_id})
            yield from _run(self.q.delete_session, {"id": session_id})
        if not done.rows:
            return False
        username, expires_at = done.rows[0]
        yield from self._announce(username)
        return bool(expires_at > utcnow())

    def _list_sessions(self, username: str) -> Steps[list[Session]]:
        done = yield from _run(self.q.sessions_of, {"username": username, "now": utcnow()})
        return [_session_from(row._mapping) for row in done.rows]

    list_sessions = operation(_list_sessions)

    def _revoke_user_sessions(self, username: str, keep: str | None = None) -> Steps[int]:
        try:
            return (yield from self._transaction(lambda: self._revoke_all_tx(username, keep)))
        finally:
            self._evict(username=username)

    revoke_user_sessions = operation(_revoke_user_sessions)

    def _revoke_all_tx(self, username: str, keep: str | None) -> Steps[int]:
        params = {"username": username, "keep": keep}
        if self.family == "postgresql":
            done = yield from _run(self.q.delete_sessions_of_returning, params)
        else:
            done = yield from _run(self.q.lock_sessions_of, params)
            yield from _run(self.q.delete_sessions_of, params)
        if done.rows:
            yield from self._announce(username)
        now = utcnow()
        return sum(1 for row in done.rows if row[0] > now)

    # -- counters ---------------------------------------------------------------------

    def _incr(self, key: str, ttl_seconds: float, by: int = 1) -> Steps[int]:
        now = utcnow()
        params = {
            "key": key,
            "now": now,
            "expires_at": now + timedelta(seconds=ttl_seconds),
            "by": int(by),
        }
        if self.family == "postgresql":
            done = yield from _run(self.q.incr, params)
            value = int(done.rows[0][0])
        else:
            # The upsert holds the row's lock until the commit: the read sees this
            # transaction's own count, not one another process made since.
            def body() -> Steps[int]:
                yield from _run(self.q.incr, params)
                locked = yield from _run(self.q.locked_counter, {"key": key})
                return int(locked.rows[0][0])

            value = yield from self._transaction(body)
        yield from self._sweep()
        return value

    incr = operation(_incr)

    def _get_counter(self, key: str) -> Steps[int]:
        done = yield from _run(self.q.counter, {"key": key, "now": utcnow()})
        return int(done.rows[0][0]) if done.rows else 0

    get_counter = operation(_get_counter)

    def _counter_ttl(self, key: str) -> Steps[float]:
        done = yield from _run(self.q.counter_expiry, {"key": key})
        if not done.rows:
            return 0.0
        expires_at: datetime = done.rows[0][0]
        return max(0.0, (expires_at - utcnow()).total_seconds())

    counter_ttl = operation(_counter_ttl)

    def _expire_counter(self, key: str, ttl_seconds: float) -> Steps[bool]:
        now = utcnow()
        params = {"name": key, "at": now, "until": now + timedelta(seconds=ttl_seconds)}
        done = yield from _run(self.q.expire_counter, params)
        return done.rowcount > 0

    expire_counter = operation(_expire_counter)

    def _reset_counter(self, key: str) -> Steps[None]:
        yield from _run(self.q.reset_counter, {"key": key})

    reset_counter = operation(_reset_counter)

    def _purge_expired(self) -> Steps[int]:
        now = utcnow()
        gone = (yield from _run(self.q.purge_sessions, {"now": now})).rowcount
        gone += (yield from _run(self.q.purge_counters, {"now": now})).rowcount
        return gone

    purge_expired = operation(_purge_expired)
