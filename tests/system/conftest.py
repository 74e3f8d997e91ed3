"""The system suites; the crash tier's tests that take ``project_database`` run on SQLite and on PostgreSQL."""

from kits.postgres import postgres, project_database  # noqa: F401  (the session's cluster; a database per test)
