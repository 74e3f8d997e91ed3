"""The only code that speaks SQL: compare-and-set writes with their event rows, and the reads."""

from gangline.store.migrate import migrate
from gangline.store.opening import open_store, shown_url
from gangline.store.sqlite import open_sqlite
from gangline.store.store import Store

__all__ = ["Store", "migrate", "open_sqlite", "open_store", "shown_url"]
