"""REST for signing in: the one-time login link's landing, and asking for a new link (``gangline login``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response

from gangline.core.problems import ErrorDetail
from gangline.core.wire import LoginLink
from gangline.server.errors import ERRORS, error_response
from gangline.server.login import LOGIN_PATH, SESSION_COOKIE
from gangline.server.state import StateDep

router = APIRouter(tags=["server"], responses=ERRORS)

USED_OR_WRONG = (
    "this login link was used already or is not one of this server's; run `gangline login` in the project for a new one"
)


@router.get(LOGIN_PATH, include_in_schema=False)
async def login(state: StateDep, code: Annotated[str, Query(max_length=200)] = "") -> Response:
    """Exchange a one-time code for a session cookie, then show the board."""
    session = state.logins.redeem(code)
    if session is None:
        return error_response(401, ErrorDetail(code="unauthorized", message=USED_OR_WRONG))
    answer = RedirectResponse("/", status_code=303)
    answer.set_cookie(SESSION_COOKIE, session, httponly=True, samesite="strict", path="/")
    return answer


@router.post("/api/login-links", response_model=LoginLink, summary="A new one-time link that signs a browser in")
async def new_login_link(state: StateDep, request: Request) -> LoginLink:
    base = str(request.base_url).rstrip("/")
    return LoginLink(url=f"{base}{LOGIN_PATH}?code={state.logins.new_code()}")
