"""The stage machine: a pure, typed transition table for work items (SPEC.md "Stages").

Nothing here touches disk or waits. The store applies a transition by computing it here and
then writing it compare-and-set against the state it was computed from.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, replace

from gangline.core.errors import GanglineError


class Stage(enum.StrEnum):
    BACKLOG = "backlog"
    CODING = "coding"
    QA = "qa"
    MERGE = "merge"
    DONE = "done"
    ARCHIVED = "archived"


class Hold(enum.StrEnum):
    """A reason beside the stage that stops the pipeline from moving the item."""

    BLOCKED = "blocked"
    REVIEW_HOLD = "review_hold"
    MERGE_FAILURE = "merge_failure"


class Trigger(enum.StrEnum):
    START = "start"  # backlog -> coding
    CODED = "coded"  # coding -> qa: the coder's work passed the gates
    QA_PASSED = "qa_passed"  # qa -> merge (server, agent or a person's approval)
    QA_FAILED = "qa_failed"  # qa -> coding (QA agent's verdict or a person's rejection)
    MERGED = "merged"  # merge -> done: the base branch advanced
    ARCHIVE = "archive"  # done -> archived
    DEMOTE = "demote"  # coding, qa or merge -> backlog, clearing any hold
    BLOCK = "block"  # set hold blocked
    UNBLOCK = "unblock"  # clear hold blocked
    HOLD_FOR_REVIEW = "hold_for_review"  # set hold review_hold
    RELEASE = "release"  # clear hold review_hold
    MERGE_FAILED = "merge_failed"  # merge: set hold merge_failure
    RETRY_MERGE = "retry_merge"  # clear hold merge_failure
    FREEZE = "freeze"
    UNFREEZE = "unfreeze"
    REPORTED = "reported"  # coding -> qa: a spike's written report (a spike needs no code)
    CLOSE = "close"  # qa -> done without a merge: a spike whose report a person read; clears any hold
    ABANDON = "abandon"  # backlog, coding, qa or merge -> archived: nobody will finish it; clears any hold
    SUPERSEDE = "supersede"  # the same, because another item does it instead


_Illegal = Callable[[str], "IllegalTransition"]

ACTIVE = (Stage.BACKLOG, Stage.CODING, Stage.QA, Stage.MERGE)

# Triggers that move an item forward or back along the pipeline: (from stage, to stage).
_MOVES: dict[Trigger, tuple[tuple[Stage, ...], Stage | None]] = {
    Trigger.START: ((Stage.BACKLOG,), Stage.CODING),
    Trigger.CODED: ((Stage.CODING,), Stage.QA),
    Trigger.QA_PASSED: ((Stage.QA,), Stage.MERGE),
    Trigger.QA_FAILED: ((Stage.QA,), Stage.CODING),
    Trigger.MERGED: ((Stage.MERGE,), Stage.DONE),
    Trigger.ARCHIVE: ((Stage.DONE,), Stage.ARCHIVED),
    Trigger.DEMOTE: ((Stage.CODING, Stage.QA, Stage.MERGE), Stage.BACKLOG),
    Trigger.REPORTED: ((Stage.CODING,), Stage.QA),
    Trigger.CLOSE: ((Stage.QA,), Stage.DONE),
    Trigger.ABANDON: (ACTIVE, Stage.ARCHIVED),
    Trigger.SUPERSEDE: (ACTIVE, Stage.ARCHIVED),
}
# A person's decisions that move the item whatever holds it: the holds are cleared.
_OVERRULE = frozenset({Trigger.DEMOTE, Trigger.CLOSE, Trigger.ABANDON, Trigger.SUPERSEDE})

# Triggers that set a hold: the stages where they apply, and the hold they set.
_SETS_HOLD: dict[Trigger, tuple[tuple[Stage, ...], Hold]] = {
    Trigger.BLOCK: (ACTIVE, Hold.BLOCKED),
    Trigger.HOLD_FOR_REVIEW: (ACTIVE, Hold.REVIEW_HOLD),
    Trigger.MERGE_FAILED: ((Stage.MERGE,), Hold.MERGE_FAILURE),
}

# Triggers that clear exactly one kind of hold.
_CLEARS_HOLD: dict[Trigger, Hold] = {
    Trigger.UNBLOCK: Hold.BLOCKED,
    Trigger.RELEASE: Hold.REVIEW_HOLD,
    Trigger.RETRY_MERGE: Hold.MERGE_FAILURE,
}


@dataclass(frozen=True)
class ItemState:
    stage: Stage
    hold: Hold | None = None
    hold_reason: str | None = None
    frozen: bool = False

    def describe(self) -> str:
        parts = [self.stage.value]
        if self.hold is not None:
            parts.append(f"{self.hold.value}({self.hold_reason or ''})")
        if self.frozen:
            parts.append("frozen")
        return " ".join(parts)


@dataclass(frozen=True)
class Facts:
    """What the caller observed that a guard needs; ``None`` means not observed."""

    reason: str | None = None
    commits_ahead: int | None = None  # feature branch commits not on the base branch
    files_changed: int | None = None  # files the squash merge changed on the base branch


class IllegalTransition(GanglineError):
    """A trigger that the table does not allow from the item's current state."""

    exit_code = 5
    code = "illegal_transition"

    def __init__(self, state: ItemState, trigger: Trigger, why: str, item_id: int | None = None) -> None:
        who = f"item {item_id}" if item_id is not None else "item"
        super().__init__(f"{who}: cannot {trigger.value} while {state.describe()}: {why}")
        self.state = state
        self.trigger = trigger
        self.why = why
        self.item_id = item_id

    def fields(self) -> dict[str, object]:
        hold = self.state.hold.value if self.state.hold else None
        return {"stage": self.state.stage.value, "hold": hold, "trigger": self.trigger.value}


def apply(state: ItemState, trigger: Trigger, facts: Facts = Facts()) -> ItemState:
    """The state after ``trigger``, or IllegalTransition saying why not."""

    def illegal(why: str) -> IllegalTransition:
        return IllegalTransition(state, trigger, why)

    if trigger is Trigger.UNFREEZE:
        if not state.frozen:
            raise illegal("it is not frozen")
        return replace(state, frozen=False)
    if state.frozen:
        raise illegal("it is frozen; unfreeze it first")
    if trigger is Trigger.FREEZE:
        if state.stage is Stage.ARCHIVED:
            raise illegal("archived items cannot change")
        return replace(state, frozen=True)
    if trigger in _CLEARS_HOLD:
        wanted = _CLEARS_HOLD[trigger]
        if state.hold is not wanted:
            raise illegal(f"it is not held as {wanted.value}")
        return replace(state, hold=None, hold_reason=None)
    if trigger in _SETS_HOLD:
        stages, hold = _SETS_HOLD[trigger]
        _require_stage(state, stages, illegal)
        if state.hold is not None:
            raise illegal(f"it is already held as {state.hold.value}")
        if not facts.reason:
            raise illegal("a hold needs a reason")
        return replace(state, hold=hold, hold_reason=facts.reason)
    stages, target = _MOVES[trigger]
    _require_stage(state, stages, illegal)
    if trigger in _OVERRULE:
        if trigger in (Trigger.ABANDON, Trigger.SUPERSEDE) and not facts.reason:
            raise illegal("it needs a reason")
        assert target is not None
        return ItemState(target)  # a person's decision: holds cleared
    if state.hold is not None:
        raise illegal(f"it is held as {state.hold.value}; clear the hold first")
    _check_guard(trigger, facts, illegal)
    assert target is not None
    return replace(state, stage=target)


def _require_stage(state: ItemState, stages: tuple[Stage, ...], illegal: _Illegal) -> None:
    if state.stage not in stages:
        raise illegal(f"it applies only in {' / '.join(s.value for s in stages)}")


def _check_guard(trigger: Trigger, facts: Facts, illegal: _Illegal) -> None:
    # DESIGN invariant 1: merge needs work to merge, done needs a merge that changed files.
    # A count below zero (a caller's bug or a bad parse) is not work: the guard is "> 0", not truthy.
    if trigger in (Trigger.CODED, Trigger.QA_PASSED) and (facts.commits_ahead or 0) <= 0:
        raise illegal("the feature branch has no commits ahead of the base branch")
    if trigger is Trigger.MERGED and (facts.files_changed or 0) <= 0:
        raise illegal("the merge changed no files")
    if trigger is Trigger.REPORTED and not (facts.reason or "").strip():
        raise illegal("a spike needs a written report")


def legal_triggers(state: ItemState) -> list[Trigger]:
    """Triggers that ``apply`` accepts from ``state`` given facts that satisfy every guard."""
    ok = Facts(reason="r", commits_ahead=1, files_changed=1)
    legal = []
    for trigger in Trigger:
        try:
            apply(state, trigger, ok)
        except IllegalTransition:
            continue
        legal.append(trigger)
    return legal
