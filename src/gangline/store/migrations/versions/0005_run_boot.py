"""Runs record the machine boot their process belongs to: a database shared by machines holds pids of each.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("boot_id", sa.String(36)))


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("boot_id")
