"""Keep your users table: authgate on tables shaped like fastapi-users' and
Flask-Security's, holding users (and hashes) those libraries wrote, on PostgreSQL and
MariaDB."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import bcrypt
import pytest
import sqlalchemy as sa

from authgate.errors import BadCredentials, ConfigError, UserExists, VersionConflict
from authgate.gate import Gate
from authgate.stores.sql import SQLStore, UserTable, parse_sql_url
from authgate.stores.sql.faces import migration_engine
from authgate.stores.sql.schema import Tables
from authgate.testing import cheap_hasher
from conftest import SECRET


@dataclass
class Database:
    """A store URL (with its own prefix) and an engine on the same database."""

    url: str
    engine: sa.Engine
    family: str


@pytest.fixture(params=["postgres", "mariadb"])
def database(
    request: pytest.FixtureRequest, make_store_url: Callable[[str], str]
) -> Iterator[Database]:
    url = make_store_url(request.param)
    engine = migration_engine(parse_sql_url(url))
    yield Database(url, engine, request.param)
    engine.dispose()


def _bcrypt(password: str) -> str:
    """What fastapi-users (pwdlib's BcryptHasher) and passlib store: a plain $2b$ hash."""
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()


# -- fastapi-users ----------------------------------------------------------------------


def _fastapi_users_table(db: Database) -> sa.Table:
    """``SQLAlchemyBaseUserTableUUID`` as fastapi-users-db-sqlalchemy declares it: a GUID
    (UUID on PostgreSQL, CHAR(36) elsewhere) and five columns."""
    guid: Any = sa.Uuid() if db.family == "postgres" else sa.CHAR(36)
    table = sa.Table(
        f"user_{uuid.uuid4().hex[:8]}",
        sa.MetaData(),
        sa.Column("id", guid, primary_key=True),
        sa.Column("email", sa.String(320), unique=True, index=True, nullable=False),
        sa.Column("hashed_password", sa.String(1024), nullable=False),
        sa.Column("is_active", sa.Boolean, nullable=False, default=True),
        sa.Column("is_superuser", sa.Boolean, nullable=False, default=False),
        sa.Column("is_verified", sa.Boolean, nullable=False, default=False),
    )
    table.create(db.engine)
    return table


def _fastapi_user(db: Database, table: sa.Table, email: str, password: str, **flags: bool) -> str:
    new_id = uuid.uuid4()
    row = {
        "id": new_id if db.family == "postgres" else str(new_id),
        "email": email,
        "hashed_password": _bcrypt(password),
        "is_active": flags.get("active", True),
        "is_superuser": flags.get("superuser", False),
        "is_verified": flags.get("verified", True),
    }
    with db.engine.begin() as conn:
        conn.execute(table.insert().values(row))
    return str(new_id)


def _extras(db: Database) -> sa.Table:
    """authgate's ``user_extras`` table beside the app's."""
    return Tables.build(parse_sql_url(db.url).prefix).user_extras


def _gate(db: Database, users: UserTable) -> Gate:
    return Gate(store=SQLStore(db.url, users=users), hasher=cheap_hasher(), secret_key=SECRET)


def test_fastapi_users_log_in_unchanged_and_leave_with_argon2id(db_fastapi: Any) -> None:
    db, table, gate, ids = db_fastapi
    pair = gate.login("alice@example.com", "alice's old password")
    me = gate.authenticate(pair.access_token)
    assert (me.username, me.user_id, me.roles) == ("alice@example.com", ids["alice"], set())
    admin = gate.authenticate(gate.login("Root@Example.com", "root password!").access_token)
    assert admin.roles == {"admin"}  # is_superuser is the admin role
    with db.engine.connect() as conn:
        stored = dict(conn.execute(sa.select(table.c.email, table.c.hashed_password)).all())
    assert stored["Alice@Example.com"].startswith("$argon2id$")  # rehashed at login
    assert stored["bob@example.com"].startswith("$2b$")  # untouched: not logged in
    assert gate.login("alice@example.com", "alice's old password")  # still her password
    with pytest.raises(BadCredentials):
        gate.login("alice@example.com", "wrong")


@pytest.fixture
def db_fastapi(database: Database) -> Iterator[tuple[Database, sa.Table, Gate, dict[str, str]]]:
    table = _fastapi_users_table(database)
    ids = {
        "alice": _fastapi_user(database, table, "Alice@Example.com", "alice's old password"),
        "bob": _fastapi_user(database, table, "bob@example.com", "bob's password"),
        "root": _fastapi_user(
            database, table, "root@example.com", "root password!", superuser=True
        ),
        "gone": _fastapi_user(database, table, "gone@example.com", "gone password", active=False),
        "new": _fastapi_user(database, table, "new@example.com", "new password", verified=False),
    }
    gate = _gate(database, UserTable.fastapi_users(table.name))
    yield database, table, gate, ids
    gate.close()


def test_an_inactive_user_is_refused_like_a_wrong_password(db_fastapi: Any) -> None:
    _, _, gate, _ = db_fastapi
    with pytest.raises(BadCredentials):
        gate.login("gone@example.com", "gone password")


def test_unverified_users_are_refused_only_when_verification_is_required(
    db_fastapi: Any,
) -> None:
    db, table, gate, _ = db_fastapi
    assert gate.login("new@example.com", "new password")
    strict = _gate(db, UserTable.fastapi_users(table.name, require_verified=True))
    with pytest.raises(BadCredentials):
        strict.login("new@example.com", "new password")
    assert strict.login("bob@example.com", "bob's password")
    strict.close()


def test_changes_through_authgate_land_in_the_apps_columns(db_fastapi: Any) -> None:
    db, table, gate, _ = db_fastapi
    bob = gate.store.get_user("bob@example.com")
    assert bob is not None and bob.version == 1
    made_admin = gate.update_user("bob@example.com", roles=["admin", "operator"], enabled=False)
    assert made_admin.version == 2
    with db.engine.connect() as conn:
        row = conn.execute(sa.select(table).where(table.c.email == "bob@example.com")).one()
    assert (row.is_superuser, row.is_active) == (True, False)
    again = gate.store.get_user("bob@example.com")
    assert again is not None
    assert (again.roles, again.enabled, again.version) == ({"admin", "operator"}, False, 2)
    with pytest.raises(VersionConflict):
        gate.store.update_user(again.changed(roles=["viewer"]), 1)


def test_email_verified_without_a_column_is_false_then_kept_in_authgates_extras(
    db_fastapi: Any,
) -> None:
    db, table, gate, ids = db_fastapi
    bob = gate.store.get_user("bob@example.com")
    assert bob is not None and bob.email_verified is False  # is_verified is not mapped
    gate.store.update_user(bob.changed(email_verified=True), bob.version)
    again = gate.store.get_user("bob@example.com")
    assert again is not None and again.email_verified is True
    extras = _extras(db)
    with db.engine.connect() as conn:
        kept = conn.execute(
            sa.select(extras.c.email_verified).where(extras.c.user_id == ids["bob"])
        ).scalar_one()
        row = conn.execute(sa.select(table).where(table.c.email == "bob@example.com")).one()
    assert kept is True
    assert row.is_verified is True  # the app's own flag, untouched (it was true already)


def test_email_verified_mapped_to_a_column_reads_and_writes_it(db_fastapi: Any) -> None:
    db, table, _, ids = db_fastapi
    spec = dataclasses.replace(UserTable.fastapi_users(table.name), email_verified="is_verified")
    gate = _gate(db, spec)
    new = gate.store.get_user("new@example.com")
    bob = gate.store.get_user("bob@example.com")
    assert new is not None and bob is not None
    assert (new.email_verified, bob.email_verified) == (False, True)
    gate.store.update_user(new.changed(email_verified=True), new.version)
    gate.store.update_user(bob.changed(email_verified=False), bob.version)
    extras = _extras(db)
    with db.engine.connect() as conn:
        flags = dict(conn.execute(sa.select(table.c.email, table.c.is_verified)).all())
        kept = conn.execute(
            sa.select(extras.c.email_verified).where(extras.c.user_id == ids["bob"])
        ).scalar_one()
    assert (flags["new@example.com"], flags["bob@example.com"]) == (True, False)
    assert kept is None  # the app's column holds it
    verified = gate.store.get_user("new@example.com")
    assert verified is not None and verified.email_verified is True
    gate.close()


def test_users_created_through_authgate_are_rows_the_app_can_read(db_fastapi: Any) -> None:
    db, table, gate, _ = db_fastapi
    made = gate.create_user("carol@example.com", "carol's password", roles=["operator"])
    uuid.UUID(made.id)  # the table's own id form
    with db.engine.connect() as conn:
        row = conn.execute(sa.select(table).where(table.c.email == "carol@example.com")).one()
    assert str(row.id) == made.id
    assert row.hashed_password.startswith("$argon2id$")
    assert (row.is_active, row.is_superuser, row.is_verified) == (True, False, False)
    assert gate.authenticate(gate.login("CAROL@example.com", "carol's password").access_token)
    with pytest.raises(UserExists):
        gate.create_user("Carol@Example.com", "another password")
    gate.delete_user("carol@example.com")
    with db.engine.connect() as conn:
        assert (
            conn.execute(sa.select(table).where(table.c.email == "carol@example.com")).first()
            is None
        )


def test_pages_of_mapped_users_cover_every_login_once(db_fastapi: Any) -> None:
    _, _, gate, _ = db_fastapi
    seen: list[str] = []
    after = None
    while True:
        page = gate.store.list_users(after=after, limit=2)
        seen.extend(u.username for u in page.items)
        if page.next_after is None:
            break
        after = page.next_after
    assert seen == sorted(
        [
            "alice@example.com",
            "bob@example.com",
            "gone@example.com",
            "new@example.com",
            "root@example.com",
        ]
    )


# -- Flask-Security -----------------------------------------------------------------------


def _flask_security_tables(db: Database) -> tuple[sa.Table, sa.Table, sa.Table]:
    """Flask-Security's ``fsqla_v3`` user, role and roles_users tables (the columns
    authgate meets; the two-factor and unified sign-in ones are nullable)."""
    md = sa.MetaData()
    tag = uuid.uuid4().hex[:8]
    user = sa.Table(
        f"user_{tag}",
        md,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("email", sa.String(255), unique=True, nullable=False),
        sa.Column("username", sa.String(255), unique=True, nullable=True),
        sa.Column("password", sa.String(255), nullable=True),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("fs_uniquifier", sa.String(64), unique=True, nullable=False),
        sa.Column("confirmed_at", sa.DateTime),
        sa.Column("last_login_at", sa.DateTime),
        sa.Column("login_count", sa.Integer),
        sa.Column("tf_primary_method", sa.String(64)),
        sa.Column("create_datetime", sa.DateTime, nullable=False, server_default=sa.func.now()),
        sa.Column("update_datetime", sa.DateTime, nullable=False, server_default=sa.func.now()),
    )
    role = sa.Table(
        f"role_{tag}",
        md,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(80), unique=True, nullable=False),
        sa.Column("description", sa.String(255)),
        sa.Column("permissions", sa.Text),
        sa.Column("update_datetime", sa.DateTime, nullable=False, server_default=sa.func.now()),
    )
    link = sa.Table(
        f"roles_users_{tag}",
        md,
        sa.Column("user_id", sa.Integer, sa.ForeignKey(user.c.id)),
        sa.Column("role_id", sa.Integer, sa.ForeignKey(role.c.id)),
    )
    md.create_all(db.engine)
    return user, role, link


def _key(result: Any) -> Any:
    key = result.inserted_primary_key
    assert key is not None
    return key[0]


def test_flask_security_users_and_their_roles_log_in(database: Database) -> None:
    db = database
    user, role, link = _flask_security_tables(db)
    from argon2 import PasswordHasher

    other_params = PasswordHasher(time_cost=2, memory_cost=1024, parallelism=2)
    with db.engine.begin() as conn:
        admin_id = _key(conn.execute(role.insert().values(name="admin")))
        conn.execute(role.insert().values(name="operator"))
        fred = _key(
            conn.execute(
                user.insert().values(
                    email="fred@example.com", password=other_params.hash("fred's password"),
                    active=True, fs_uniquifier=uuid.uuid4().hex,
                )
            )
        )  # fmt: skip
        conn.execute(link.insert().values(user_id=fred, role_id=admin_id))
    spec = UserTable.flask_security(user.name, role_table=role.name, link=link.name)
    gate = _gate(db, spec)
    me = gate.authenticate(gate.login("fred@example.com", "fred's password").access_token)
    assert (me.user_id, set(me.roles)) == (str(fred), {"admin"})
    # A role that Flask-Security's table lacks is made there; the link rows follow.
    gate.create_user("root@example.com", "root's password", roles=["admin"])
    gate.update_user("fred@example.com", roles=["operator", "viewer"])
    with db.engine.connect() as conn:
        names = conn.execute(
            sa.select(role.c.name)
            .select_from(link.join(role, role.c.id == link.c.role_id))
            .where(link.c.user_id == fred)
        ).scalars()
        assert sorted(names) == ["operator", "viewer"]
    made = gate.create_user("gina@example.com", "gina's password", roles=["operator"])
    with db.engine.connect() as conn:
        row = conn.execute(sa.select(user).where(user.c.id == int(made.id))).one()
    assert row.active and len(row.fs_uniquifier) == 32 and row.password.startswith("$argon2id$")
    gate.close()


def test_a_mapping_onto_a_missing_table_or_column_is_a_config_error(database: Database) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        SQLStore(database.url, users=UserTable("no_such_table"))
    table = _fastapi_users_table(database)
    with pytest.raises(ConfigError, match="no column 'active'"):
        SQLStore(
            database.url,
            users=UserTable(
                table.name, username="email", password_hash="hashed_password", enabled="active"
            ),
        )
    with pytest.raises(ConfigError, match="preset"):
        SQLStore(database.url, users="nonsense")
