"""The project's hooks: commands run at fixed points of a worktree's life (SPEC.md "Hooks").

``[hooks]`` names at most one command per point for the whole worktree; each ``[[component]]``
adds a ``setup`` (run with ``after_create``) and a ``teardown`` (run with ``before_remove``)
inside its own directory. ``steps`` turns them into the ordered commands of one point: a
component's setup after the project's ``after_create``, its teardown before the project's
``before_remove`` (components torn down in reverse), so each point nests like a stack.
"""

from __future__ import annotations

import enum
import json
import re
import shlex
from dataclasses import dataclass
from pathlib import PurePosixPath

from pydantic import Field, field_validator

from gangline.core.profiles import StrictModel

DEFAULT_TIMEOUT_S = 600.0
_PART = re.compile(r"(?!\.\.?$)[A-Za-z0-9._-]+")  # one part of a component's directory


class HookPoint(enum.StrEnum):
    AFTER_CREATE = "after_create"  # a worktree (or the merge workspace) was made: install what the gates need
    BEFORE_RUN = "before_run"  # before each coder and QA agent run in the item's worktree
    AFTER_RUN = "after_run"  # after each of them, before its work is checked
    BEFORE_REMOVE = "before_remove"  # before a done item's worktree is pruned


HOOK_POINTS = frozenset(point.value for point in HookPoint)  # a hook's result is recorded with its point as context
# Run by a build node around an agent's run there, in its own checkout (the rest run where the server works).
NODE_HOOK_POINTS = (HookPoint.AFTER_CREATE, HookPoint.BEFORE_RUN, HookPoint.AFTER_RUN)


class HookSettings(StrictModel):
    """``[hooks]``: one ``/bin/sh -c`` command per point, run at the worktree's top level."""

    after_create: str | None = Field(default=None, min_length=1)
    before_run: str | None = Field(default=None, min_length=1)
    after_run: str | None = Field(default=None, min_length=1)
    before_remove: str | None = Field(default=None, min_length=1)
    timeout_s: float = Field(default=DEFAULT_TIMEOUT_S, gt=0)  # each command's bound; then it is killed, and failed


class Component(StrictModel):
    """A ``[[component]]``: a directory of the repository with its own set-up and tear-down."""

    dir: str = Field(min_length=1, max_length=48)
    setup: str | None = Field(default=None, min_length=1)
    teardown: str | None = Field(default=None, min_length=1)
    timeout_s: float = Field(default=DEFAULT_TIMEOUT_S, gt=0)

    @field_validator("dir")
    @classmethod
    def _inside(cls, value: str) -> str:
        path = PurePosixPath(value)
        if path.is_absolute() or str(path) == "." or not all(_PART.fullmatch(part) for part in path.parts):
            raise ValueError(
                "expected a directory inside the repository, relative to its top, each part letters, digits, "
                f"'.', '_' or '-' (not '..'), got {json.dumps(value)}"
            )
        return str(path)


@dataclass(frozen=True)
class HookStep:
    """One command of a point, in the shape the gates runner takes (name, command, timeout_s)."""

    name: str  # "after_create", or "setup web" for a component's
    command: str
    timeout_s: float


def steps(hooks: HookSettings, components: tuple[Component, ...], point: HookPoint) -> list[HookStep]:
    """The commands ``point`` runs, in order; none when nothing is configured for it."""
    own = getattr(hooks, point.value)
    mine = [HookStep(point.value, own, hooks.timeout_s)] if own else []
    if point is HookPoint.AFTER_CREATE:
        return mine + [_in(c, "setup", c.setup) for c in components if c.setup]
    if point is HookPoint.BEFORE_REMOVE:
        return [_in(c, "teardown", c.teardown) for c in reversed(components) if c.teardown] + mine
    return mine


def _in(component: Component, what: str, command: str) -> HookStep:
    return HookStep(f"{what} {component.dir}", f"cd -- {shlex.quote(component.dir)} && {command}", component.timeout_s)
