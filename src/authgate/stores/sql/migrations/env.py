"""Alembic's environment for authgate's tables: online only, on the connection, prefix
and schema that `authgate.stores.sql.migrate` hands over in ``config.attributes``."""

from __future__ import annotations

from alembic import context

from authgate.stores.sql.migrations import _current
from authgate.stores.sql.schema import Tables

config = context.config
prefix: str = config.attributes["prefix"]
schema: str | None = config.attributes["schema"]
token = _current.set((prefix, schema))
try:
    context.configure(
        connection=config.attributes["connection"],
        target_metadata=Tables.build(prefix, schema).metadata,
        version_table=f"{prefix}alembic_version",
        version_table_schema=schema,
        transactional_ddl=None,  # the dialect's own answer (PostgreSQL: yes, MySQL: no)
    )
    with context.begin_transaction():
        context.run_migrations()
finally:
    _current.reset(token)
