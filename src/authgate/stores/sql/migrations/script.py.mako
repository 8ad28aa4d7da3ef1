"""${message}

Revision ID: ${up_revision}
Revises: ${down_revision | comma,n}
Create Date: ${create_date}
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from authgate.stores.sql.migrations import names
from authgate.stores.sql.schema import UTCDateTime, exact_string

revision = ${repr(up_revision)}
down_revision = ${repr(down_revision)}
branch_labels = None
depends_on = None


def upgrade() -> None:
    prefix, schema = names()
    ${upgrades if upgrades else "pass"}


def downgrade() -> None:
    prefix, schema = names()
    ${downgrades if downgrades else "pass"}
