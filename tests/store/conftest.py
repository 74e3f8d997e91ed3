"""The store's tier runs on both databases: each test that takes ``database_url`` runs on SQLite and on PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest

from kits.postgres import Cluster


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A new, empty database of each kind: SQLite's file, or a database of the session's PostgreSQL cluster."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'state.db'}"
    cluster: Cluster = request.getfixturevalue("postgres")
    return cluster.database()
