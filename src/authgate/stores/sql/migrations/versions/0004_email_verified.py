"""``email_verified``: has the user shown they receive mail at their address?  False
for every user until then, in authgate's own ``users`` table and in ``user_extras``
(for an application's own users table without such a column).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from authgate.stores.sql.migrations import names

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    p, schema = names()
    op.add_column(
        f"{p}users",
        sa.Column("email_verified", sa.Boolean, nullable=False, server_default=sa.false()),
        schema=schema,
    )
    # NULL, as for the other fields there: the app's table has the column (or, for a
    # user written before this revision, not verified).
    op.add_column(f"{p}user_extras", sa.Column("email_verified", sa.Boolean), schema=schema)


def downgrade() -> None:
    p, schema = names()
    op.drop_column(f"{p}user_extras", "email_verified", schema=schema)
    op.drop_column(f"{p}users", "email_verified", schema=schema)
