"""``user_extras``: what an application's own users table lacks (a version, groups,
direct grants, SCRAM credentials...), one row per user, for stores that map authgate's
users onto that table (`authgate.stores.sql.UserTable`).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from authgate.stores.sql.migrations import names
from authgate.stores.sql.schema import UTCDateTime, json_type

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    p, schema = names()
    op.create_table(
        f"{p}user_extras",
        sa.Column("user_id", sa.String(64), primary_key=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("roles", json_type(), nullable=False),
        sa.Column("groups", json_type(), nullable=False),
        sa.Column("permissions", json_type(), nullable=False),
        sa.Column("email", sa.String(320)),
        sa.Column("first_name", sa.Text),
        sa.Column("last_name", sa.Text),
        sa.Column("display_name", sa.Text),
        sa.Column("created_at", UTCDateTime),
        sa.Column("updated_at", UTCDateTime),
        sa.Column("password_hash", sa.Text),
        sa.Column("enabled", sa.Boolean),
        sa.Column("scram_credentials", sa.Text, nullable=False),
        schema=schema,
    )


def downgrade() -> None:
    p, schema = names()
    op.drop_table(f"{p}user_extras", schema=schema)
