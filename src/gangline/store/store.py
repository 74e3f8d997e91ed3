"""The one source of truth: items, transitions, runs, gate results, the ledger, messages, chat's rows and build
nodes, in SQL.

Every change of an item's state is compare-and-set against the state the caller expects and
appends an event row in the same transaction. The queries are portable SQLAlchemy Core; only
``sqlite.open_sqlite`` knows it is talking to SQLite. Each table's reads and writes live in a
module of their own; ``Store`` is all of them.
"""

from __future__ import annotations

from gangline.store.chat import Chat
from gangline.store.items import Items
from gangline.store.ledger import Ledger
from gangline.store.messages import Messages
from gangline.store.nodes import Nodes
from gangline.store.runs import Runs
from gangline.store.transitions import Transitions


class Store(Items, Transitions, Runs, Ledger, Chat, Nodes, Messages):
    """Reads and compare-and-set writes of gangline's state, each in one short transaction."""
