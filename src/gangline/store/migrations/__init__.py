"""Alembic migrations for gangline's state database (applied by ``store.migrate``)."""
