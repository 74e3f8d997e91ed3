"""Fixtures for the chat tests: one real Synapse homeserver per session (see kits/synapse.py)."""

from kits.synapse import synapse  # noqa: F401  (the session-scoped homeserver fixture)
