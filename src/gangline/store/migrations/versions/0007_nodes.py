"""Build nodes: the nodes, their join tokens, the runs offered to them and their leases; which node ran a run.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_JSON = sa.JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("node_id", sa.Integer))
    op.create_table(
        "nodes",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(64), nullable=False, unique=True),
        sa.Column("credential", sa.String(64), nullable=False, unique=True),
        sa.Column("labels", _JSON, nullable=False),
        sa.Column("slots", _JSON, nullable=False),
        sa.Column("clis", _JSON, nullable=False),
        sa.Column("joined_at", sa.Float, nullable=False),
        sa.Column("seen_at", sa.Float, nullable=False),
        sa.Column("draining", sa.Boolean, nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "node_tokens",
        sa.Column("digest", sa.String(64), primary_key=True),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False),
        sa.Column("used_by", sa.Integer),
    )
    op.create_table(
        "offers",
        sa.Column("run_id", sa.String(64), primary_key=True),
        sa.Column("item_id", sa.Integer),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("cli", sa.String(16), nullable=False),
        sa.Column("labels", _JSON, nullable=False),
        sa.Column("node_id", sa.Integer),
        sa.Column("payload", _JSON, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("epoch", sa.Integer),
    )
    op.create_table(
        "leases",
        sa.Column("epoch", sa.Integer, primary_key=True),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("node_id", sa.Integer, nullable=False),
        sa.Column("granted_at", sa.Float, nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False),
        sa.Column("ended_at", sa.Float),
        sa.Column("end_reason", sa.Text),
        sqlite_autoincrement=True,
    )
    op.create_index("leases_by_run", "leases", ["run_id"])
    op.create_index("leases_by_node", "leases", ["node_id", "ended_at"])


def downgrade() -> None:
    op.drop_index("leases_by_node", "leases")
    op.drop_index("leases_by_run", "leases")
    op.drop_table("leases")
    op.drop_table("offers")
    op.drop_table("node_tokens")
    op.drop_table("nodes")
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("node_id")
