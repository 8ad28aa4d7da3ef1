"""Keep your users table: authgate's user mapped onto a table the application already
has (fastapi-users' ``user``, Flask-Security's ``user``/``role``/``roles_users``, or
your own), so its users log in through authgate without a migration of their rows.

`UserTable` names which of the app's columns hold the login name, the id, the
password hash, the enabled flag and so on, and where roles (and groups) come from: a
column, or a join table.  What the app's schema lacks (a version for optimistic
concurrency, groups, direct grants, SCRAM credentials...) authgate keeps in its own
``<prefix>user_extras`` table, one row per user, made on the user's first change
through authgate; a user without one is at version 1.
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from ...errors import ConfigError, StoreError, UserExists, UserNotFound, VersionConflict
from ...faces import Steps
from ...users import User, normalize_username
from ..base import Page
from .schema import Tables

__all__ = ["PRESETS", "Joined", "UserTable", "user_table"]

#: ``created_at`` / ``updated_at`` of a user whose table keeps no such column and who
#: has no extras row yet: unknown, shown as the epoch.
UNKNOWN_TIME = datetime.fromtimestamp(0, timezone.utc)

#: The `User` fields a `UserTable` may map to a column of the app's table.
_FIELDS = (
    "password_hash",
    "enabled",
    "email",
    "email_verified",
    "first_name",
    "last_name",
    "display_name",
    "created_at",
    "updated_at",
)


@dataclass(frozen=True)
class Joined:
    """Names (of roles or groups) from join tables: ``link`` pairs a user's id with a
    row of ``table``, whose ``name`` column is the name.  Flask-Security's roles are
    ``Joined("roles_users", table="role")``."""

    link: str
    table: str
    link_user: str = "user_id"
    link_target: str = "role_id"
    id: str = "id"
    name: str = "name"
    #: Values for the columns of a new row of `table` (a name authgate grants that the
    #: table lacks): a value, or a callable making one.
    defaults: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class UserTable:
    """Where authgate finds users in the app's own table (see the module docstring).

    Column names are the app's; None means "the table has no such column", and the
    value lives in authgate's extras table instead.  ``username`` is the login column
    (a username or an email), compared case-insensitively (``lower()``) unless
    ``case_sensitive``; its values must be valid authgate usernames to log in.
    """

    table: str
    id: str = "id"
    username: str = "username"
    password_hash: str | None = "password_hash"
    enabled: str | None = None
    #: A boolean column: true grants `superuser_role` (and granting it sets the flag).
    superuser: str | None = None
    superuser_role: str = "admin"
    #: A boolean column: with `require_verified`, an unverified user is disabled.
    verified: str | None = None
    require_verified: bool = False
    email: str | None = None
    #: A boolean column: has the user shown they receive mail at ``email``?
    email_verified: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    display_name: str | None = None
    created_at: str | None = None
    updated_at: str | None = None
    #: A column listing role names (a JSON array, or text separated by commas), or
    #: join tables (`Joined`); None: roles live in authgate's extras table.
    roles: str | Joined | None = None
    groups: str | Joined | None = None
    schema: str | None = None
    case_sensitive: bool = False
    #: Values for columns authgate does not fill when it creates a user (a value, or a
    #: callable making one): Flask-Security's ``fs_uniquifier``, say.
    defaults: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def fastapi_users(cls, table: str = "user", *, require_verified: bool = False) -> UserTable:
        """fastapi-users' table (``SQLAlchemyBaseUserTableUUID``): a UUID ``id``,
        ``email`` as the login name, ``hashed_password``, ``is_active``,
        ``is_superuser`` (the admin role) and ``is_verified``."""
        return cls(
            table,
            username="email",
            email="email",
            password_hash="hashed_password",  # noqa: S106 - a column name
            enabled="is_active",
            superuser="is_superuser",
            verified="is_verified",
            require_verified=require_verified,
            defaults={"is_verified": False},
        )

    @classmethod
    def flask_security(
        cls,
        table: str = "user",
        *,
        username: str = "email",
        role_table: str = "role",
        link: str = "roles_users",
    ) -> UserTable:
        """Flask-Security's tables (``fsqla`` models): ``user`` with ``email`` (or
        ``username``) as the login name, ``password``, ``active``, a generated
        ``fs_uniquifier``; roles by name through ``roles_users`` and ``role``."""
        return cls(
            table,
            username=username,
            email="email",
            password_hash="password",  # noqa: S106 - a column name
            enabled="active",
            roles=Joined(link, role_table),
            defaults={"fs_uniquifier": lambda: uuid.uuid4().hex},
        )


#: The schemas users actually have, by the name a store URL gives (``?users=...``).
PRESETS: dict[str, Callable[[], UserTable]] = {
    "fastapi-users": UserTable.fastapi_users,
    "flask-security": UserTable.flask_security,
}


def user_table(spec: UserTable | str) -> UserTable:
    """`spec` as a `UserTable`: itself, a preset (``fastapi-users``,
    ``flask-security``), or ``package.module:attribute`` naming one."""
    if isinstance(spec, UserTable):
        return spec
    if spec in PRESETS:
        return PRESETS[spec]()
    module, sep, attribute = spec.partition(":")
    if not sep:
        raise ConfigError(
            f"users={spec!r}: name a preset ({', '.join(PRESETS)}) or a UserTable as "
            "package.module:attribute"
        )
    import importlib

    try:
        found = getattr(importlib.import_module(module), attribute)
    except (ImportError, AttributeError) as err:
        raise ConfigError(f"users={spec!r}: cannot import it ({err})") from err
    if not isinstance(found, UserTable):
        raise ConfigError(f"users={spec!r} is a {type(found).__name__}, not a UserTable")
    return found


def _value(default: Any) -> Any:
    return default() if callable(default) else default


def _names(raw: Any) -> frozenset[str]:
    """Role or group names from a column: a JSON array, or text split on commas."""
    if raw is None:
        return frozenset()
    if isinstance(raw, str):
        text = raw.strip()
        if text.startswith("["):
            try:
                raw = json.loads(text)
            except ValueError:
                return frozenset()
        else:
            return frozenset(part.strip() for part in text.split(",") if part.strip())
    if isinstance(raw, (list, tuple, set, frozenset)):
        return frozenset(str(name) for name in raw)
    return frozenset()


@dataclass
class _JoinedTables:
    spec: Joined
    link: sa.Table
    table: sa.Table


class MappedUsers:
    """The user operations of the SQL store on an app's table (no I/O here: each
    yields the store's `Run` steps through `run`)."""

    def __init__(
        self,
        spec: UserTable,
        engine: sa.Engine,
        tables: Tables,
        run: Callable[..., Steps[Any]],
        transaction: Callable[..., Steps[Any]],
        announce: Callable[[str], Steps[None]],
    ) -> None:
        self.spec = spec
        self._run = run
        self._transaction = transaction
        self._announce = announce
        self.extras = tables.user_extras
        md = sa.MetaData(schema=spec.schema)
        try:
            self.app = sa.Table(spec.table, md, autoload_with=engine)
            self.roles = self._joined(spec.roles, md, engine)
            self.groups = self._joined(spec.groups, md, engine)
        except sa_exc.NoSuchTableError as err:
            raise ConfigError(f"the users table maps onto {err}, which does not exist") from err
        for name in self._mapped_columns():
            if name not in self.app.c:
                raise ConfigError(f"the users table {spec.table!r} has no column {name!r}")
        a, x = self.app, self.extras
        self.id_type = a.c[spec.id].type.python_type if spec.id in a.c else str
        login = a.c[spec.username]
        self.login = login if spec.case_sensitive else sa.func.lower(login)
        key = sa.cast(a.c[spec.id], sa.String(64))
        self.joined = a.outerjoin(x, x.c.user_id == key)
        self.select = sa.select(a, *(c.label("x_" + c.name) for c in x.c)).select_from(self.joined)

    def _mapped_columns(self) -> list[str]:
        spec = self.spec
        names = [spec.id, spec.username, *(getattr(spec, f) for f in _FIELDS)]
        names += [spec.superuser, spec.verified, *spec.defaults]
        names += [n for n in (spec.roles, spec.groups) if isinstance(n, str)]
        return [n for n in names if n]

    @staticmethod
    def _joined(spec: str | Joined | None, md: sa.MetaData, engine: sa.Engine) -> Any:
        if not isinstance(spec, Joined):
            return None
        link = sa.Table(spec.link, md, autoload_with=engine)
        table = sa.Table(spec.table, md, autoload_with=engine)
        return _JoinedTables(spec, link, table)

    # -- reading ----------------------------------------------------------------------

    def _new_id(self, user_id: str) -> Any:
        """The id of a user authgate creates: its own, in the column's type."""
        if self.id_type is uuid.UUID:
            try:
                return uuid.UUID(user_id)
            except ValueError:
                return uuid.uuid4()
        return user_id

    def _app_id(self, user_id: str) -> Any:
        """A `User.id` (text) as the app's id column holds it."""
        if self.id_type is uuid.UUID:
            return uuid.UUID(user_id)
        if self.id_type is int:
            return int(user_id)
        return user_id

    def _names_of(
        self, joined: _JoinedTables | None, ids: Sequence[Any]
    ) -> Steps[dict[str, set[str]]]:
        """Names joined to each of the app ids `ids` (by their text)."""
        out: dict[str, set[str]] = {}
        if joined is None or not ids:
            return out
        link, table, spec = joined.link, joined.table, joined.spec
        query = (
            sa.select(link.c[spec.link_user], table.c[spec.name])
            .select_from(link.join(table, table.c[spec.id] == link.c[spec.link_target]))
            .where(link.c[spec.link_user].in_(list(ids)))
        )
        done = yield from self._run(query)
        for owner, name in done.rows:
            out.setdefault(str(owner), set()).add(str(name))
        return out

    def _users(self, rows: Sequence[Any]) -> Steps[list[User]]:
        ids = [row._mapping[self.spec.id] for row in rows]
        roles = yield from self._names_of(self.roles, ids)
        groups = yield from self._names_of(self.groups, ids)
        users = []
        for row in rows:
            user = self._user(row._mapping, roles, groups)
            if user is not None:
                users.append(user)
        return users

    def _user(
        self, row: Mapping[Any, Any], roles: dict[str, set[str]], groups: dict[str, set[str]]
    ) -> User | None:
        spec = self.spec
        try:
            username = normalize_username(str(row[spec.username]))
        except Exception:  # a login name authgate cannot take: nobody can log in as it
            return None
        user_id = str(row[spec.id])

        def pick(name: str, default: Any) -> Any:
            column = getattr(spec, name)
            if column is not None:
                return row[column]
            extra = row["x_" + name]
            return default if extra is None else extra

        held = set(row["x_roles"] or ())
        if isinstance(spec.roles, str):
            held |= _names(row[spec.roles])
        held |= roles.get(user_id, set())
        if spec.superuser is not None:
            held.discard(spec.superuser_role)
            if row[spec.superuser]:
                held.add(spec.superuser_role)
        member = set(row["x_groups"] or ())
        if isinstance(spec.groups, str):
            member |= _names(row[spec.groups])
        member |= groups.get(user_id, set())
        enabled = bool(pick("enabled", True))
        if spec.require_verified and spec.verified is not None and not row[spec.verified]:
            enabled = False
        created = pick("created_at", UNKNOWN_TIME)
        updated = pick("updated_at", created)
        try:
            return User(
                username=username,
                id=user_id,
                roles=frozenset(held),
                groups=frozenset(member),
                permissions=frozenset(row["x_permissions"] or ()),
                enabled=enabled,
                email=pick("email", "") or "",
                email_verified=bool(pick("email_verified", False)),
                first_name=pick("first_name", "") or "",
                last_name=pick("last_name", "") or "",
                display_name=pick("display_name", "") or "",
                created_at=_aware(created),
                updated_at=_aware(updated),
                version=int(row["x_version"] or 1),
                password_hash=pick("password_hash", "") or "",
                scram_credentials=row["x_scram_credentials"] or "",
                factors=row["x_factors"] or "",
            )
        except (TypeError, ValueError) as err:
            raise StoreError("a stored user record is corrupt") from err

    def get(self, username: str) -> Steps[User | None]:
        done = yield from self._run(self.select.where(self.login == username))
        users = yield from self._users(done.rows)
        return next((u for u in users if u.username == username), None)

    def get_by_id(self, user_id: str) -> Steps[User | None]:
        try:
            key = self._app_id(user_id)
        except ValueError:
            return None
        done = yield from self._run(self.select.where(self.app.c[self.spec.id] == key))
        users = yield from self._users(done.rows)
        return users[0] if users else None

    def page(self, after: str | None, limit: int) -> Steps[Page]:
        query = self.select.where(self.login > (after or "")).order_by(self.login).limit(limit + 1)
        done = yield from self._run(query)
        more = len(done.rows) > limit
        users = yield from self._users(done.rows[:limit])
        last = done.rows[limit - 1]._mapping[self.spec.username] if more and limit else None
        following = None
        if last is not None:
            following = str(last) if self.spec.case_sensitive else str(last).lower()
        return Page(users, following)

    # -- writing ----------------------------------------------------------------------

    def _app_values(self, user: User, *, creating: bool = False) -> dict[str, Any]:
        """The app's columns for `user`.  The login column is written only when the user
        is made: a username never changes, and the app's own spelling of it
        (``Alice@Example.com``) stays as it is."""
        spec = self.spec
        values: dict[str, Any] = {spec.username: user.username} if creating else {}
        for name in _FIELDS:
            column = getattr(spec, name)
            if column is not None and column != spec.username:  # the login name wins
                value = getattr(user, name)
                if name in ("created_at", "updated_at") and value is not None:
                    value = self._naive_if_needed(column, value)
                values[column] = value
        if spec.superuser is not None:
            values[spec.superuser] = spec.superuser_role in user.roles
        if isinstance(spec.roles, str):
            values[spec.roles] = ",".join(sorted(self._own_roles(user)))
        if isinstance(spec.groups, str):
            values[spec.groups] = ",".join(sorted(user.groups))
        return values

    def _naive_if_needed(self, column: str, value: datetime) -> datetime:
        kind = self.app.c[column].type
        if isinstance(kind, sa.DateTime) and not kind.timezone:
            return value.astimezone(timezone.utc).replace(tzinfo=None)
        return value

    def _own_roles(self, user: User) -> set[str]:
        """The roles stored as roles (the superuser role rides on its flag)."""
        roles = set(user.roles)
        if self.spec.superuser is not None:
            roles.discard(self.spec.superuser_role)
        return roles

    def _extra_values(self, user: User, app_id: str) -> dict[str, Any]:
        spec = self.spec
        roles = self._own_roles(user) if spec.roles is None else set()
        kept = {  # the fields the app's table has no column for
            name: getattr(user, name) if getattr(spec, name) is None else None for name in _FIELDS
        }
        return {
            "user_id": app_id,
            "version": user.version,
            "roles": sorted(roles),
            "groups": sorted(user.groups) if spec.groups is None else [],
            "permissions": sorted(user.permissions),
            **kept,
            "scram_credentials": user.scram_credentials,
            "factors": user.factors,
        }

    def _set_joined(
        self, joined: _JoinedTables | None, app_id: Any, names: set[str]
    ) -> Steps[None]:
        if joined is None:
            return
        link, table, spec = joined.link, joined.table, joined.spec
        yield from self._run(sa.delete(link).where(link.c[spec.link_user] == app_id))
        if not names:
            return
        done = yield from self._run(
            sa.select(table.c[spec.id], table.c[spec.name]).where(table.c[spec.name].in_(names))
        )
        ids = {name: row_id for row_id, name in done.rows}
        for name in sorted(names - set(ids)):
            values = {spec.name: name, **{k: _value(v) for k, v in spec.defaults.items()}}
            made = yield from self._run(sa.insert(table).values(values))
            ids[name] = made.key
        yield from self._run(
            sa.insert(link),
            [{spec.link_user: app_id, spec.link_target: ids[name]} for name in sorted(names)],
        )

    def create(self, user: User) -> Steps[User]:
        spec = self.spec

        def body() -> Steps[User]:
            taken = yield from self._run(
                sa.select(self.app.c[spec.id]).where(self.login == user.username)
            )
            if taken.rows:
                raise UserExists()
            values = {
                **{k: _value(v) for k, v in spec.defaults.items()},
                **self._app_values(user, creating=True),
            }
            app_id: Any
            if self.id_type is int:  # the database numbers its users
                made = yield from self._run(sa.insert(self.app).values(values))
                app_id = made.key
            else:
                app_id = self._new_id(user.id)
                yield from self._run(sa.insert(self.app).values({spec.id: app_id, **values}))
            saved = dataclasses.replace(user, id=str(app_id))
            yield from self._run(
                sa.insert(self.extras).values(self._extra_values(saved, str(app_id)))
            )
            yield from self._set_joined(
                self.roles, app_id, self._own_roles(saved) if spec.roles is not None else set()
            )
            yield from self._set_joined(self.groups, app_id, set(saved.groups))
            return saved

        try:
            created: User = yield from self._transaction(body)
        except sa_exc.IntegrityError as err:
            raise UserExists() from err
        return created

    def update(self, user: User, expected_version: int) -> Steps[User]:
        """Steps of a compare-and-set of the version, run in the store's transaction."""
        spec, x = self.spec, self.extras

        def body() -> Steps[User]:
            app_id = self._app_id(user.id)
            found = yield from self._run(
                sa.select(self.app.c[spec.id])
                .where(self.app.c[spec.id] == app_id)
                .where(self.login == user.username)
                .with_for_update()
            )
            if not found.rows:
                raise UserNotFound()
            extras = self._extra_values(user, user.id)
            bumped = yield from self._run(
                sa.update(x)
                .where(x.c.user_id == sa.bindparam("w_user"))
                .where(x.c.version == sa.bindparam("w_version")),
                {
                    **{k: v for k, v in extras.items() if k != "user_id"},
                    "w_user": user.id,
                    "w_version": expected_version,
                },
            )
            if bumped.rowcount != 1:
                present = yield from self._run(sa.select(x.c.version).where(x.c.user_id == user.id))
                if present.rows or expected_version != 1:
                    raise VersionConflict()
                yield from self._run(sa.insert(x).values(extras))  # a unique clash: a race lost
            yield from self._run(
                sa.update(self.app)
                .where(self.app.c[spec.id] == app_id)
                .values(self._app_values(user))
            )
            yield from self._set_joined(
                self.roles, app_id, self._own_roles(user) if spec.roles is not None else set()
            )
            yield from self._set_joined(self.groups, app_id, set(user.groups))
            yield from self._announce(user.username)
            return user

        try:  # inside the store's transaction
            updated: User = yield from body()
        except sa_exc.IntegrityError as err:
            raise VersionConflict() from err
        return updated

    def delete(
        self, username: str, expected_version: int | None, sessions: sa.Table
    ) -> Steps[None]:
        """Steps of a delete (its links, extras and sessions too), run in the store's
        transaction."""
        spec, x = self.spec, self.extras

        def body() -> Steps[None]:
            found = yield from self._run(
                sa.select(self.app.c[spec.id]).where(self.login == username).with_for_update()
            )
            if not found.rows:
                raise UserNotFound()
            app_id = found.rows[0][0]
            held = yield from self._run(
                sa.select(x.c.version).where(x.c.user_id == str(app_id)).with_for_update()
            )
            version = held.rows[0][0] if held.rows else 1
            if expected_version is not None and version != expected_version:
                raise VersionConflict()
            for joined in (self.roles, self.groups):
                if joined is not None:
                    link = joined.link
                    yield from self._run(
                        sa.delete(link).where(link.c[joined.spec.link_user] == app_id)
                    )
            yield from self._run(sa.delete(x).where(x.c.user_id == str(app_id)))
            yield from self._run(sa.delete(self.app).where(self.app.c[spec.id] == app_id))
            yield from self._run(sa.delete(sessions).where(sessions.c.username == username))
            yield from self._announce(username)

        try:  # inside the store's transaction
            yield from body()
        except sa_exc.IntegrityError as err:
            raise StoreError(
                "the user is still referred to by other rows of the application's database"
            ) from err


def _aware(value: Any) -> datetime:
    if not isinstance(value, datetime):
        return UNKNOWN_TIME
    return (
        value.replace(tzinfo=timezone.utc)
        if value.tzinfo is None
        else value.astimezone(timezone.utc)
    )
