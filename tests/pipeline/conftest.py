"""The pipeline's tier runs on both databases: every test here once on SQLite and once on PostgreSQL."""

from __future__ import annotations

import pytest

from kits.postgres import postgres, project_database  # noqa: F401  (the session's cluster; a database per test)


@pytest.fixture(autouse=True)
def _on_both_databases(project_database: str | None) -> None:  # noqa: F811
    """Each test in two: its projects' state in SQLite, then in PostgreSQL."""
