"""Signing in to the board: one-time login links exchanged for a session cookie, as notebook servers do.

``serve`` and ``demo`` print a link (``/login?code=…``); ``gangline login`` asks the server for
another. Opening one sets ``gangline_session`` (HttpOnly, so no script reads it; SameSite=Strict,
so no other site's page sends it) and sends the browser to the board; the code then no longer
works. Sessions live as long as the server: after a restart, sign in again.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

SESSION_COOKIE = "gangline_session"
LOGIN_PATH = "/login"


def _digest(value: str) -> bytes:
    return hashlib.sha256(value.encode("utf-8", "replace")).digest()


class Logins:
    """The server's unused login codes and live sessions, kept as digests only."""

    def __init__(self) -> None:
        self._codes: set[bytes] = set()
        self._sessions: set[bytes] = set()

    def new_code(self) -> str:
        code = secrets.token_urlsafe(24)
        self._codes.add(_digest(code))
        return code

    def redeem(self, code: str) -> str | None:
        """A new session for a code not used before; None for a used, wrong or missing one."""
        digest = _digest(code)
        if not any(hmac.compare_digest(digest, known) for known in self._codes):
            return None
        self._codes.discard(digest)
        session = secrets.token_urlsafe(32)
        self._sessions.add(_digest(session))
        return session

    def is_session(self, value: str | None) -> bool:
        if not value:
            return False
        digest = _digest(value)
        return any(hmac.compare_digest(digest, known) for known in self._sessions)
