"""Create and upgrade authgate's tables with the Alembic migrations shipped in the
package (``authgate db upgrade``, ``authgate db current``; a store opened with
``migrate`` on does the same at start).

Processes that start together (``gunicorn -w 4`` on a fresh database) take turns: the
upgrade runs under a database lock (``pg_advisory_lock`` on PostgreSQL, ``GET_LOCK``
on MySQL/MariaDB), and whoever gets it second finds the tables at head.
"""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from ...errors import ConfigError, StoreUnavailable

__all__ = ["current", "head", "upgrade", "upgrade_if_behind"]

_HERE = Path(__file__).parent / "migrations"
#: Seconds a process waits for another one's upgrade before giving up.
LOCK_TIMEOUT = 120


def _config(connection: sa.Connection, prefix: str, schema: str | None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(_HERE))
    config.attributes.update(connection=connection, prefix=prefix, schema=schema)
    return config


@cache
def head() -> str:
    """The newest revision shipped with this authgate."""
    found = ScriptDirectory(str(_HERE)).get_current_head()
    assert found is not None  # the package ships at least one revision
    return found


def current(engine: sa.Engine, prefix: str = "", schema: str | None = None) -> str | None:
    """The revision authgate's tables are at, None when they were never created."""
    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"version_table": f"{prefix}alembic_version", "version_table_schema": schema}
        )
        return context.get_current_revision()


def upgrade(
    engine: sa.Engine, revision: str = "head", prefix: str = "", schema: str | None = None
) -> None:
    """Bring authgate's tables to `revision` (``head``: the newest), under the lock
    that keeps two processes from migrating at once."""
    with engine.connect() as conn, _migration_lock(conn, prefix, schema):
        if schema is not None and conn.dialect.name == "postgresql":
            conn.execute(sa.schema.CreateSchema(schema, if_not_exists=True))
        command.upgrade(_config(conn, prefix, schema), revision)
        conn.commit()


def upgrade_if_behind(engine: sa.Engine, prefix: str = "", schema: str | None = None) -> None:
    """What a store does at start with ``migrate`` on: nothing when the tables are at
    head (one read), else `upgrade`.  A database ahead of this authgate (a newer
    version migrated it) is left alone, with a `ConfigError`."""
    at = current(engine, prefix, schema)
    if at == head():
        return
    if at is not None and at not in _known():
        raise ConfigError(
            f"authgate's tables are at revision {at!r}, which this version of authgate does "
            f"not know (its newest is {head()!r}): upgrade authgate"
        )
    upgrade(engine, "head", prefix, schema)


@cache
def _known() -> frozenset[str]:
    return frozenset(s.revision for s in ScriptDirectory(str(_HERE)).walk_revisions())


class _migration_lock:
    """A lock held in the database while this connection migrates."""

    def __init__(self, conn: sa.Connection, prefix: str, schema: str | None) -> None:
        self.conn = conn
        name = f"authgate-migrate:{schema or ''}:{prefix}"
        self.name = name[:64]
        self.key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)

    def __enter__(self) -> None:
        if self.conn.dialect.name == "postgresql":
            self.conn.exec_driver_sql(f"SET lock_timeout = '{LOCK_TIMEOUT}s'")
            self.conn.execute(sa.select(sa.func.pg_advisory_lock(self.key)))
        else:
            got = self.conn.execute(sa.select(sa.func.get_lock(self.name, LOCK_TIMEOUT))).scalar()
            if got != 1:
                raise StoreUnavailable("another process is migrating authgate's tables")
        self.conn.commit()

    def __exit__(self, *exc: object) -> None:
        if self.conn.invalidated or self.conn.closed:
            return
        self.conn.rollback()
        if self.conn.dialect.name == "postgresql":
            self.conn.execute(sa.select(sa.func.pg_advisory_unlock(self.key)))
        else:
            self.conn.execute(sa.select(sa.func.release_lock(self.name)))
        self.conn.commit()
