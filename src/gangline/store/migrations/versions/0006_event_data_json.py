"""An event's data as JSON on every database: jsonb on PostgreSQL (SQLite keeps its text, now typed JSON).

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_JSON = sa.JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("events") as batch:
        batch.alter_column("data", existing_type=sa.Text, type_=_JSON, postgresql_using="data::jsonb")


def downgrade() -> None:
    with op.batch_alter_table("events") as batch:
        batch.alter_column("data", existing_type=_JSON, type_=sa.Text, postgresql_using="data::text")
