"""Permission rules saved by "always allow".

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "permission_rules",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("tool", sa.String(200), nullable=False),
        sa.Column("pattern", sa.Text),
        sa.Column("decision", sa.String(8), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sqlite_autoincrement=True,
    )


def downgrade() -> None:
    op.drop_table("permission_rules")
