"""The pipeline's tier runs on both databases: every test here once on SQLite and once on PostgreSQL."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _on_both_databases(project_database: str | None) -> None:
    """Each test in two: its projects' state in SQLite, then in PostgreSQL."""
