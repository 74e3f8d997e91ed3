"""The schema at the newest revision, on either database: Alembic's migrations, applied when a store opens."""

from __future__ import annotations

from sqlalchemy import Engine, inspect, text

from gangline.store.migrations import HEAD_REVISION

# Two servers opening one PostgreSQL database at once must not both migrate it: the first takes
# this transaction-level advisory lock, the second waits for it and then finds nothing to do.
_MIGRATION_LOCK = 0x67616E67  # "gang"


def migrate(engine: Engine) -> None:
    """Bring the schema to the latest revision (Alembic), in one transaction.

    A database already at the latest revision is only read: Alembic is not even imported, so a
    command that just reads starts fast.
    """
    if revision(engine) == HEAD_REVISION:
        return
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", "gangline.store:migrations")
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})
        config.attributes["connection"] = conn
        command.upgrade(config, "head")


def revision(engine: Engine) -> str | None:
    """The schema revision the database is at (None: an empty database)."""
    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return None
        return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
