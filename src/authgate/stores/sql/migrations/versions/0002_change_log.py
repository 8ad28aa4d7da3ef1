"""The change log that tells every process which users' session checks changed, for
databases without a notification channel (MySQL, MariaDB; PostgreSQL uses NOTIFY):
``epoch`` (one row, bumped by each such change) and ``changes`` (who, at which epoch).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from authgate.stores.sql.migrations import names
from authgate.stores.sql.schema import UTCDateTime, exact_string

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    p, schema = names()
    op.create_table(
        f"{p}changes",
        sa.Column("epoch", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("username", exact_string(64), nullable=False),
        sa.Column("at", UTCDateTime, nullable=False),
        schema=schema,
    )
    epoch = op.create_table(
        f"{p}epoch",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("value", sa.BigInteger, nullable=False),
        schema=schema,
    )
    op.bulk_insert(epoch, [{"id": 1, "value": 0}])


def downgrade() -> None:
    p, schema = names()
    op.drop_table(f"{p}epoch", schema=schema)
    op.drop_table(f"{p}changes", schema=schema)
