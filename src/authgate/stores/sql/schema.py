"""authgate's tables in a SQL database, described once for SQLAlchemy Core: what the
store reads and writes, and what the Alembic migrations create.

Every name takes the store's optional table prefix (``authgate_`` gives
``authgate_users``...) and lives in its optional schema (PostgreSQL).  Columns that
are compared or ordered (usernames, ids, counter keys) compare code point by code
point on every database: ``C`` collation on PostgreSQL, ``utf8mb4_bin`` on
MySQL/MariaDB, whose default collations fold case and accents and would make
``müller`` and ``muller`` one key.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql, postgresql
from sqlalchemy.engine import Dialect

__all__ = ["Tables", "UTCDateTime", "exact_string", "json_type"]


def exact_string(length: int) -> sa.types.TypeEngine[str]:
    """A string compared byte for byte (see the module docstring)."""
    return (
        sa.String(length)
        .with_variant(sa.String(length, collation="C"), "postgresql")
        .with_variant(mysql.VARCHAR(length, charset="utf8mb4", collation="utf8mb4_bin"), "mysql")
        .with_variant(mysql.VARCHAR(length, charset="utf8mb4", collation="utf8mb4_bin"), "mariadb")
    )


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """An aware UTC datetime, kept to the microsecond: ``timestamp with time zone`` on
    PostgreSQL, ``DATETIME(6)`` holding UTC on MySQL/MariaDB (which have no zone-aware
    type, and whose plain ``DATETIME`` drops the fraction)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> sa.types.TypeEngine[Any]:
        if dialect.name in ("mysql", "mariadb"):
            return dialect.type_descriptor(mysql.DATETIME(fsp=6))
        return dialect.type_descriptor(sa.DateTime(timezone=True))

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("authgate stores only timezone-aware datetimes")
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name in ("mysql", "mariadb") else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


def json_type() -> sa.types.TypeEngine[Any]:
    """A JSON column: ``jsonb`` on PostgreSQL, ``JSON`` elsewhere."""
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


@dataclass(frozen=True)
class Tables:
    """authgate's tables under one prefix and schema."""

    metadata: sa.MetaData
    users: sa.Table
    groups: sa.Table
    sessions: sa.Table
    counters: sa.Table
    changes: sa.Table
    epoch: sa.Table
    user_extras: sa.Table
    prefix: str
    schema: str | None

    @classmethod
    def build(cls, prefix: str = "", schema: str | None = None) -> Tables:
        """The tables named ``<prefix>users``... in `schema` (None: the default one)."""
        md = sa.MetaData(schema=schema)
        p = prefix
        users = sa.Table(
            f"{p}users",
            md,
            sa.Column("id", exact_string(64), primary_key=True),
            sa.Column("username", exact_string(64), nullable=False),
            sa.Column("version", sa.Integer, nullable=False),
            sa.Column("enabled", sa.Boolean, nullable=False),
            sa.Column("roles", json_type(), nullable=False),
            sa.Column("groups", json_type(), nullable=False),
            sa.Column("permissions", json_type(), nullable=False),
            sa.Column("email", sa.String(320), nullable=False),
            sa.Column("email_verified", sa.Boolean, nullable=False, server_default=sa.false()),
            sa.Column("first_name", sa.Text, nullable=False),
            sa.Column("last_name", sa.Text, nullable=False),
            sa.Column("display_name", sa.Text, nullable=False),
            sa.Column("created_at", UTCDateTime, nullable=False),
            sa.Column("updated_at", UTCDateTime, nullable=False),
            sa.Column("password_hash", sa.Text, nullable=False),
            sa.Column("scram_credentials", sa.Text, nullable=False),
            sa.Column("factors", sa.Text),  # NULL: none (written before 0005)
            sa.UniqueConstraint("username", name=f"{p}users_username_key"),
        )
        groups = sa.Table(
            f"{p}groups",
            md,
            sa.Column("name", exact_string(64), primary_key=True),
            sa.Column("permissions", json_type(), nullable=False),
            sa.Column("description", sa.Text, nullable=False),
        )
        sessions = sa.Table(
            f"{p}sessions",
            md,
            sa.Column("id", exact_string(64), primary_key=True),
            sa.Column("username", exact_string(64), nullable=False),
            sa.Column("kind", sa.String(16), nullable=False),
            sa.Column("created_at", UTCDateTime, nullable=False),
            sa.Column("expires_at", UTCDateTime, nullable=False),
            sa.Column("last_seen", UTCDateTime, nullable=False),
            sa.Column("refresh_hash", sa.String(128), nullable=False),
            sa.Column("client_ip", sa.Text, nullable=False),
            sa.Column("user_agent", sa.Text, nullable=False),
            sa.Column("data", json_type(), nullable=False),
            sa.Index(f"{p}sessions_by_user", "username", "created_at"),
            sa.Index(f"{p}sessions_by_expiry", "expires_at"),
        )
        counters = sa.Table(
            f"{p}counters",
            md,
            sa.Column("key", exact_string(255), primary_key=True),
            sa.Column("value", sa.BigInteger, nullable=False),
            sa.Column("expires_at", UTCDateTime, nullable=False),
            sa.Index(f"{p}counters_by_expiry", "expires_at"),
        )
        changes = sa.Table(
            f"{p}changes",
            md,
            sa.Column("epoch", sa.BigInteger, primary_key=True, autoincrement=False),
            sa.Column("username", exact_string(64), nullable=False),
            sa.Column("at", UTCDateTime, nullable=False),
        )
        epoch = sa.Table(
            f"{p}epoch",
            md,
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
            sa.Column("value", sa.BigInteger, nullable=False),
        )
        # What an app's own users table (`usertable.UserTable`) lacks, per user; a NULL
        # is "the app's table has that column".
        user_extras = sa.Table(
            f"{p}user_extras",
            md,
            sa.Column("user_id", sa.String(64), primary_key=True),
            sa.Column("version", sa.Integer, nullable=False),
            sa.Column("roles", json_type(), nullable=False),
            sa.Column("groups", json_type(), nullable=False),
            sa.Column("permissions", json_type(), nullable=False),
            sa.Column("email", sa.String(320)),
            sa.Column("email_verified", sa.Boolean),
            sa.Column("first_name", sa.Text),
            sa.Column("last_name", sa.Text),
            sa.Column("display_name", sa.Text),
            sa.Column("created_at", UTCDateTime),
            sa.Column("updated_at", UTCDateTime),
            sa.Column("password_hash", sa.Text),
            sa.Column("enabled", sa.Boolean),
            sa.Column("scram_credentials", sa.Text, nullable=False),
            sa.Column("factors", sa.Text),  # NULL: none (written before 0005)
        )
        return cls(
            md, users, groups, sessions, counters, changes, epoch, user_extras, prefix, schema
        )
