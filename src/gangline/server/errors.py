"""Errors as REST answers them: ``{"error": {"code", "message", "field"?...}}`` with the code's HTTP status.

The codes and what they carry are the errors' own (``core.errors``, ``core.problems``); this
module only adds the status each code is sent with. Invalid requests are described by
``core.validation``, as every door describes invalid input.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, cast

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from gangline.core.errors import GanglineError
from gangline.core.problems import ErrorDetail, ErrorOut, detail_of
from gangline.core.validation import describe_problems

log = logging.getLogger(__name__)

STATUS = {
    "invalid": 422,
    "invalid_report": 422,
    "not_found": 404,
    "illegal_transition": 409,
    "conflict": 409,
    "run": 409,
    "locked": 503,
    "busy": 503,
    "unavailable": 503,
    "unauthorized": 401,
}
_HTTP_CODES = {401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed", 503: "unavailable"}

ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorOut, "description": text}
    for status, text in (
        (401, "Missing or wrong bearer token"),
        (404, "No such item or run"),
        (409, "The item's state does not allow it, or it changed meanwhile"),
        (422, "Invalid input; `field` names it"),
    )
}


def error_response(status: int, detail: ErrorDetail, headers: Mapping[str, str] | None = None) -> JSONResponse:
    body = ErrorOut(error=detail).model_dump(mode="json", exclude_none=True)
    return JSONResponse(body, status_code=status, headers=dict(headers or {}))


async def gangline_error(_request: Request, exc: Exception) -> JSONResponse:
    detail = detail_of(cast(GanglineError, exc))
    status = STATUS.get(detail.code, 500)
    if status >= 500:
        log.error("request failed", exc_info=exc, extra={"action": "api_error", "error": str(exc)})
    return error_response(status, detail)


async def validation_error(_request: Request, exc: Exception) -> JSONResponse:
    errors = cast(RequestValidationError, exc).errors()
    first = errors[0] if errors else {"loc": ("body",), "msg": "invalid request", "type": "invalid"}
    location = str(first["loc"][0]) if first["loc"] else "body"
    if first["type"] == "json_invalid":  # the location holds the position in the text, not a field
        why = cast(dict[str, Any], first.get("ctx") or {}).get("error", "")
        at = first["loc"][1] if len(first["loc"]) > 1 else "?"
        message = f"{location} is not valid JSON (at character {at}): {why}"
        return error_response(422, ErrorDetail(code="invalid", message=message, field=location, location=location))
    field, said = describe_problems(errors or [first], skip=1)
    field = location if field == "(root)" else field
    detail = ErrorDetail(code="invalid", message=f"{field}: {said}", field=field, location=location)
    return error_response(422, detail)


async def http_error(_request: Request, exc: Exception) -> JSONResponse:
    err = cast(StarletteHTTPException, exc)
    if err.status_code == 400:  # FastAPI's only 400: a body that is not text in the declared encoding
        detail = ErrorDetail(code="invalid", message=f"body: {err.detail}", field="body", location="body")
    else:
        detail = ErrorDetail(code=_HTTP_CODES.get(err.status_code, f"http_{err.status_code}"), message=str(err.detail))
    return error_response(err.status_code, detail, err.headers)


async def internal_error(request: Request, exc: Exception) -> JSONResponse:
    # The traceback goes to the server's log, never to the client.
    log.error("unexpected error", exc_info=exc, extra={"action": "api_internal_error", "error": request.url.path})
    return error_response(500, ErrorDetail(code="internal", message="internal server error; the server log has more"))


def install(app: FastAPI) -> None:
    """Every error the app can meet, answered as ``{"error": {...}}`` with its code's status."""
    app.add_exception_handler(GanglineError, gangline_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(Exception, internal_error)
