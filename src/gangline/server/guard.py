"""Who may talk to the server: the person's credential (a bearer or the board's session), or, opted out, loopback.

With a token (the project's secret, or one from the environment) every request but OPEN_PATHS,
the login link's landing and the board's static files carries it as ``Authorization: Bearer``
(the CLI, scripts, MCP clients) or the session cookie a login link set (the board). A write
with the cookie must also come from this origin (CSRF; the cookie is SameSite=Strict too).
"""

from __future__ import annotations

import hmac
import ipaddress
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.requests import cookie_parser
from starlette.types import ASGIApp, Receive, Scope, Send

from gangline.core.problems import ErrorDetail
from gangline.server.errors import error_response
from gangline.server.login import LOGIN_PATH, SESSION_COOKIE, Logins
from gangline.server.ui import is_ui_path

# /health: probes (systemd, a load balancer, the CLI looking for a server) carry no secret.
# /mcp: checks its own bearer, which is either a run's token or the server token.
OPEN_PATHS = frozenset({"/health", "/mcp"})
# Build nodes' calls: each checks the node's own credential (server.nodes).
NODE_PATHS = "/node/"
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
NEEDS_CREDENTIAL = (
    "this server needs the person's credential: Authorization: Bearer <the project's secret, .gangline/secret, "
    "which the gangline CLI sends by itself>, or, in a browser, sign in through the login link gangline serve "
    "printed (`gangline login` makes a new one)"
)


class Guard:
    """With a token: every request but OPEN_PATHS, the login landing and the board's files carries
    ``Authorization: Bearer <token>`` or a live session cookie (then writes must be same-origin).

    Without one (``--no-auth``, loopback only): the Host must be a loopback name, so a page that rebinds its
    DNS name to 127.0.0.1 is refused, and a write from a browser must come from this origin,
    so another site's form cannot POST to the server (CSRF).
    """

    def __init__(self, app: ASGIApp, token: str | None, logins: Logins | None = None) -> None:
        self.app = app
        self.token = token.encode() if token is not None else None
        self.logins = logins or Logins()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        refused = self.refusal(scope, Headers(scope=scope))
        if refused is None:
            await self.app(scope, receive, send)
        elif scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008, "reason": refused[1].message[:120]})
        else:
            status, detail = refused
            challenge = {"WWW-Authenticate": "Bearer"} if status == 401 else None
            await error_response(status, detail, challenge)(scope, receive, send)

    def refusal(self, scope: Scope, headers: Headers) -> tuple[int, ErrorDetail] | None:
        if self.token is not None:
            path = scope["path"]
            if path in OPEN_PATHS or path == LOGIN_PATH or path.startswith(NODE_PATHS) or is_ui_path(path):
                return None
            scheme, _, credentials = headers.get("authorization", "").partition(" ")
            # compare_digest takes as long for a near miss as for a wild guess.
            given = credentials.strip().encode("latin-1")
            if scheme.lower() == "bearer" and hmac.compare_digest(given, self.token):
                return None
            if self.logins.is_session(cookie_parser(headers.get("cookie", "")).get(SESSION_COOKIE)):
                return self._cross_site(scope, headers)
            return 401, ErrorDetail(code="unauthorized", message=NEEDS_CREDENTIAL)
        host = headers.get("host", "")
        if not is_loopback(_hostname(host)):
            message = (
                f"Host {host!r} is not a loopback name; a server without a token answers only 127.0.0.1 / localhost"
            )
            return 403, ErrorDetail(code="forbidden", message=message)
        return self._cross_site(scope, headers)

    def _cross_site(self, scope: Scope, headers: Headers) -> tuple[int, ErrorDetail] | None:
        """A browser's write from another origin is refused (CSRF)."""
        origin, host = headers.get("origin"), headers.get("host", "")
        if scope.get("method", "GET") not in _SAFE_METHODS and origin is not None and urlsplit(origin).netloc != host:
            return 403, ErrorDetail(code="forbidden", message=f"a write from origin {origin!r} is not allowed")
        return None


def is_loopback(host: str) -> bool:
    """``localhost`` or a loopback address (127.0.0.0/8, ::1), bracketed or not."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _hostname(host: str) -> str:
    if host.startswith("["):
        return host[1:].partition("]")[0]
    return host.rpartition(":")[0] if host.count(":") == 1 else host
