"""The only code that speaks SQL: compare-and-set writes with their event rows, and the reads."""

from gangline.store.sqlite import migrate, open_sqlite
from gangline.store.store import Store

__all__ = ["Store", "migrate", "open_sqlite"]
