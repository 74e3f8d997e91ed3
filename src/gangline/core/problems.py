"""An error on the wire: the object every door reports a problem with, and that object read back.

REST answers ``{"error": ErrorDetail}``, the MCP tools put the same object in their error text,
and the CLI, when it went through a server, turns it back into the class the code names
(``error_from_detail``), so it exits with the same code as without a server.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel

from gangline.core.errors import (
    ConfigError,
    DatabaseBusyError,
    GanglineError,
    NotFoundError,
    RunnerError,
    ServerLockedError,
    StateConflict,
    Unavailable,
)
from gangline.core.stages import Hold, IllegalTransition, ItemState, Stage, Trigger

_TRIGGERS = frozenset(trigger.value for trigger in Trigger)


class ErrorDetail(BaseModel):
    """What went wrong: a stable ``code`` to branch on, a ``message`` for people, and where."""

    code: str
    message: str
    field: str | None = None  # the input that is wrong (``title``, ``criteria[0].text``, ``limit``)
    location: str | None = None  # where that input was: body, query, path or header
    stage: Stage | None = None  # illegal_transition: the item's current state and the trigger refused
    hold: Hold | None = None
    trigger: str | None = None
    expected: str | None = None  # conflict: the state the change expected, and the one it found
    current: str | None = None


class ErrorOut(BaseModel):
    error: ErrorDetail


def detail_of(err: GanglineError) -> ErrorDetail:
    """``err`` as every door reports it."""
    return ErrorDetail.model_validate(err.detail())


def error_from_detail(detail: ErrorDetail) -> GanglineError:
    """The error another door reported as ``detail``, as the class its code names, with its own words.

    A command that went through a server then fails exactly as it would have without one: the
    same class, so the same exit code, and the server's message.
    """
    err = _typed(detail)
    err.args = (detail.message,)
    return err


def _typed(d: ErrorDetail) -> GanglineError:
    if d.code == "invalid":
        return ConfigError(d.field or "input", d.message)
    if d.code == "not_found":
        return NotFoundError("resource", "")
    if d.code == "illegal_transition" and d.stage is not None and d.trigger in _TRIGGERS:
        return IllegalTransition(ItemState(d.stage, d.hold), Trigger(d.trigger), d.message)
    if d.code in ("conflict", "illegal_transition"):
        return StateConflict(0, d.expected or "?", d.current or "?")
    if d.code == "run":
        return RunnerError("?", d.message)
    if d.code == "locked":
        return ServerLockedError(d.message)
    if d.code == "busy":
        return DatabaseBusyError(Path("?"), 0)
    if d.code == "unavailable":
        return Unavailable(d.message)
    return GanglineError(d.message)
