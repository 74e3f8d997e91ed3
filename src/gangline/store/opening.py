"""Which store a database URL names, opened: SQLite's file (the default) or a shared PostgreSQL."""

from __future__ import annotations

import time
from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from gangline.core.databases import check_url
from gangline.core.errors import ConfigError
from gangline.core.types import Clock
from gangline.store.sqlite import open_sqlite
from gangline.store.store import Store


def open_store(url: str, clock: Clock = time.time, *, patient: bool = False) -> Store:
    """Open (creating or migrating) the store at ``url``; ``patient``: see ``open_sqlite`` (SQLite only)."""
    backend, database = check_url(url)
    if backend == "sqlite":
        return open_sqlite(Path(database), clock, patient=patient)
    _need_psycopg()
    from gangline.store.postgres import open_postgres  # psycopg is an extra: loaded only when named

    return open_postgres(url, clock)


def probe_store(url: str) -> str:
    """What the store at ``url`` is, read without creating or migrating anything (``gangline doctor``)."""
    backend, database = check_url(url)
    if backend == "sqlite":
        path = Path(database)
        return f"SQLite {path}" + ("" if path.exists() else " (made at the first start)")
    _need_psycopg()
    from gangline.store.postgres import probe_postgres

    return probe_postgres(url)


def _need_psycopg() -> None:
    try:
        import psycopg  # noqa: F401  (only to say clearly that it is missing)
    except ImportError:
        message = "names PostgreSQL, which needs psycopg, and it is not installed: pip install 'gangline[postgres]'"
        raise ConfigError("database_url", message) from None


def shown_url(url: str) -> str:
    """The URL as it may be shown and logged: without its password."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "(not a database URL)"
