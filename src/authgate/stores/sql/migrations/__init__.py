"""authgate's Alembic migrations: the history of its tables in a SQL database.

Run by `authgate.stores.sql.migrate` (``authgate db upgrade``), never by an app's own
Alembic set-up: the revisions build their table names from the store's prefix and
schema (`names`), and their version is kept in ``<prefix>alembic_version``, apart from
the app's ``alembic_version``.
"""

from __future__ import annotations

from contextvars import ContextVar

__all__ = ["names"]

#: (prefix, schema) of the migration being run.
_current: ContextVar[tuple[str, str | None]] = ContextVar("authgate_migration_names")


def names() -> tuple[str, str | None]:
    """The table prefix and schema of the store being migrated."""
    return _current.get()
