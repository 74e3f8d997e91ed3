"""The schema's migrations (Alembic): one per revision in ``versions/``, each one transaction."""

HEAD_REVISION = "0008"  # the latest revision; tests/store/test_store.py checks it against versions/
