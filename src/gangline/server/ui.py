"""The web UI: static HTML, CSS and JS modules shipped in the package, served with a strict CSP.

The files under ``gangline/web`` are written in this repository and served as they are: no
build step, no Node at install time (SPEC §23 says why). They carry no data, so they are open
without a token like ``/health``; everything they show comes from the REST API and the event
streams, which the page calls with the bearer the person typed in.
"""

from __future__ import annotations

import os
from os import PathLike
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from starlette.datastructures import MutableHeaders
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

WEB_DIR = Path(__file__).parent.parent / "web"
UI_PREFIX = "/ui/"

# Nothing but this origin's own files: no inline script or style, no eval, no frames, no plugins.
# An agent's output that smuggles markup into the page could not run a script even if it were
# ever parsed as HTML (it is not: the page builds the DOM with text nodes only).
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "font-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
_SECURITY_HEADERS = (
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
)
_UNPOLICED = ("/docs", "/redoc")  # FastAPI's documentation pages load their script from a CDN


def is_ui_path(path: str) -> bool:
    """The page and its assets: open without a token, since they hold no data."""
    return path == "/" or path.startswith(UI_PREFIX)


class SecurityHeaders:
    """Adds the CSP and friends to every response but the API documentation's."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(_UNPOLICED):
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in _SECURITY_HEADERS:
                    headers.setdefault(name.decode(), value.decode())
            await send(message)

        await self.app(scope, receive, send_with_headers)


def mount_ui(app: FastAPI) -> None:
    """``/`` is the page; ``/ui/...`` its stylesheets and modules."""

    async def index() -> FileResponse:
        # Always revalidated: a new gangline's page must not run against an old cached module.
        return FileResponse(WEB_DIR / "index.html", headers={"Cache-Control": "no-cache"})

    app.add_api_route("/", index, methods=["GET"], include_in_schema=False)
    app.mount(UI_PREFIX.rstrip("/"), _Assets(directory=WEB_DIR), name="ui")


class _Assets(StaticFiles):
    """The UI's files, revalidated on every load (ETag) so an upgrade is picked up at once."""

    def file_response(
        self, full_path: PathLike[str] | str, stat_result: os.stat_result, scope: Scope, status_code: int = 200
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        response.headers["Cache-Control"] = "no-cache"
        return response
