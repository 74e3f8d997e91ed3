"""Initial schema: items, criteria, dependencies, events, runs, gate results.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    _items()
    _events()
    _runs()
    _gate_results()


def _items() -> None:
    op.create_table(
        "items",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("slug", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("priority", sa.Integer, nullable=False),
        sa.Column("pinned_agent", sa.String(64)),
        sa.Column("qa_mode", sa.String(16)),
        sa.Column("stage", sa.String(16), nullable=False),
        sa.Column("hold", sa.String(16)),
        sa.Column("hold_reason", sa.Text),
        sa.Column("frozen", sa.Boolean, nullable=False),
        sa.Column("retries", sa.Integer, nullable=False),
        sa.Column("merge_attempts", sa.Integer, nullable=False),
        sa.Column("session_id", sa.String(128)),
        sa.Column("parked_until", sa.Float),
        sa.Column("start_after", sa.Float),
        sa.Column("archive_at", sa.Float),
        sa.Column("merged_commit", sa.String(64)),
        sa.Column("merged_tip", sa.String(64)),
        sa.Column("feedback", sa.Text),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "criteria",
        sa.Column("item_id", sa.Integer, sa.ForeignKey("items.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("position", sa.Integer, primary_key=True),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("checked", sa.Boolean, nullable=False),
    )
    op.create_table(
        "dependencies",
        sa.Column("item_id", sa.Integer, sa.ForeignKey("items.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("depends_on", sa.Integer, sa.ForeignKey("items.id"), primary_key=True),
    )


def _events() -> None:
    op.create_table(
        "events",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("item_id", sa.Integer),
        sa.Column("run_id", sa.String(64)),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("trigger", sa.String(32)),
        sa.Column("from_stage", sa.String(16)),
        sa.Column("from_hold", sa.String(16)),
        sa.Column("to_stage", sa.String(16)),
        sa.Column("to_hold", sa.String(16)),
        sa.Column("reason", sa.Text),
        sa.Column("data", sa.Text),
        sqlite_autoincrement=True,
    )
    op.create_index("events_by_item", "events", ["item_id", "id"])


def _runs() -> None:
    op.create_table(
        "runs",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("item_id", sa.Integer, nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("profile", sa.String(64), nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("workspace", sa.Text, nullable=False),
        sa.Column("log_path", sa.Text, nullable=False),
        sa.Column("resumed_session", sa.String(128)),
        sa.Column("session_id", sa.String(128)),
        sa.Column("pid", sa.Integer),
        sa.Column("pgid", sa.Integer),
        sa.Column("start_ticks", sa.Integer),
        sa.Column("started_at", sa.Float, nullable=False),
        sa.Column("ended_at", sa.Float),
        sa.Column("outcome", sa.String(16)),
        sa.Column("reason", sa.Text),
        sa.Column("input_tokens", sa.Integer, nullable=False),
        sa.Column("output_tokens", sa.Integer, nullable=False),
        sa.Column("cache_read_tokens", sa.Integer, nullable=False),
        sa.Column("cache_write_tokens", sa.Integer, nullable=False),
        sa.Column("cost_usd", sa.Float, nullable=False),
        sa.Column("day", sa.String(10), nullable=False),
    )
    op.create_index("runs_by_item", "runs", ["item_id"])
    op.create_index(
        "one_live_run_per_item",
        "runs",
        ["item_id"],
        unique=True,
        sqlite_where=sa.text("ended_at IS NULL"),
        postgresql_where=sa.text("ended_at IS NULL"),
    )


def _gate_results() -> None:
    op.create_table(
        "gate_results",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("item_id", sa.Integer, nullable=False),
        sa.Column("run_id", sa.String(64)),
        sa.Column("context", sa.String(16), nullable=False),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("command", sa.Text, nullable=False),
        sa.Column("exit_code", sa.Integer),
        sa.Column("timed_out", sa.Boolean, nullable=False),
        sa.Column("duration_s", sa.Float, nullable=False),
        sa.Column("output", sa.Text, nullable=False),
        sa.Column("truncated", sa.Boolean, nullable=False),
    )
    op.create_index("gate_results_by_item", "gate_results", ["item_id", "id"])


def downgrade() -> None:
    for table in ("gate_results", "runs", "events", "dependencies", "criteria", "items"):
        op.drop_table(table)
