"""``factors``: a user's second factors (`authgate.factors.Factors`, JSON, their
secrets sealed), in authgate's own ``users`` table and in ``user_extras`` (an
application's own users table never holds them).  NULL for every user until they enrol.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from authgate.stores.sql.migrations import names

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    p, schema = names()
    op.add_column(f"{p}users", sa.Column("factors", sa.Text), schema=schema)
    op.add_column(f"{p}user_extras", sa.Column("factors", sa.Text), schema=schema)


def downgrade() -> None:
    p, schema = names()
    op.drop_column(f"{p}user_extras", "factors", schema=schema)
    op.drop_column(f"{p}users", "factors", schema=schema)
