"""authgate's tables: users, groups, sessions (login sessions with their refresh token,
API keys and SCRAM handshakes, told apart by ``kind``) and counters (lock-outs).

Revision ID: 0001
Revises:
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from authgate.stores.sql.migrations import names
from authgate.stores.sql.schema import UTCDateTime, exact_string, json_type

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    p, schema = names()
    op.create_table(
        f"{p}users",
        sa.Column("id", exact_string(64), primary_key=True),
        sa.Column("username", exact_string(64), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("enabled", sa.Boolean, nullable=False),
        sa.Column("roles", json_type(), nullable=False),
        sa.Column("groups", json_type(), nullable=False),
        sa.Column("permissions", json_type(), nullable=False),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("first_name", sa.Text, nullable=False),
        sa.Column("last_name", sa.Text, nullable=False),
        sa.Column("display_name", sa.Text, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.Column("password_hash", sa.Text, nullable=False),
        sa.Column("scram_credentials", sa.Text, nullable=False),
        sa.UniqueConstraint("username", name=f"{p}users_username_key"),
        schema=schema,
    )
    op.create_table(
        f"{p}groups",
        sa.Column("name", exact_string(64), primary_key=True),
        sa.Column("permissions", json_type(), nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        schema=schema,
    )
    op.create_table(
        f"{p}sessions",
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
        schema=schema,
    )
    op.create_index(
        f"{p}sessions_by_user", f"{p}sessions", ["username", "created_at"], schema=schema
    )
    op.create_index(f"{p}sessions_by_expiry", f"{p}sessions", ["expires_at"], schema=schema)
    op.create_table(
        f"{p}counters",
        sa.Column("key", exact_string(255), primary_key=True),
        sa.Column("value", sa.BigInteger, nullable=False),
        sa.Column("expires_at", UTCDateTime, nullable=False),
        schema=schema,
    )
    op.create_index(f"{p}counters_by_expiry", f"{p}counters", ["expires_at"], schema=schema)


def downgrade() -> None:
    p, schema = names()
    for table in ("counters", "sessions", "groups", "users"):
        op.drop_table(f"{p}{table}", schema=schema)
