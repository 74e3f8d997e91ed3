"""A person's actions on an item, defined once: the name every door uses, its trigger, its reason.

REST (``POST /api/items/{id}/{action}``), the CLI (``gangline approve 3``), the people's MCP
tools and the board all name an action the same way and reach the same trigger. A hold needs a
reason; without one the reason says who set it. ``stop`` is ``block`` said as a person means it:
the item is blocked, which stops its run, and the reason says who stopped it.
"""

from __future__ import annotations

import enum
import functools
from dataclasses import dataclass

from gangline.core.items import Kind
from gangline.core.stages import Facts, Hold, IllegalTransition, ItemState, Stage, Trigger, apply, legal_triggers


class ItemAction(enum.StrEnum):
    START = "start"
    STOP = "stop"
    BLOCK = "block"
    UNBLOCK = "unblock"
    HOLD = "hold"
    RELEASE = "release"
    APPROVE = "approve"
    REJECT = "reject"
    DEMOTE = "demote"
    FREEZE = "freeze"
    UNFREEZE = "unfreeze"
    ARCHIVE = "archive"
    RETRY_MERGE = "retry-merge"
    CLOSE = "close"
    ABANDON = "abandon"
    SUPERSEDE = "supersede"


@dataclass(frozen=True)
class ActionSpec:
    """What an action does and how it is said: its trigger, its help, its past tense, its default reason."""

    trigger: Trigger
    help: str
    done: str  # "approved #3 ..."
    default_reason: str | None = None  # "{actor}" is the person acting


# fmt: off
ACTIONS: dict[ItemAction, ActionSpec] = {
    ItemAction.START: ActionSpec(Trigger.START, "Start an item now: backlog → coding, whatever it waits for.",
                                 "started"),
    ItemAction.STOP: ActionSpec(Trigger.BLOCK, "Stop an item's run and block it; unblock lets the pipeline go on.",
                                "stopped"),
    ItemAction.BLOCK: ActionSpec(Trigger.BLOCK, "Block an item (stopping its run) until unblock.", "blocked",
                                 "blocked by {actor}"),
    ItemAction.UNBLOCK: ActionSpec(Trigger.UNBLOCK, "Unblock an item, with a fresh retry budget.", "unblocked"),
    ItemAction.HOLD: ActionSpec(Trigger.HOLD_FOR_REVIEW, "Hold an item for review (stopping its run) until release.",
                                "held", "held for review by {actor}"),
    ItemAction.RELEASE: ActionSpec(Trigger.RELEASE, "Release an item held for review.", "released"),
    ItemAction.APPROVE: ActionSpec(Trigger.QA_PASSED, "Approve an item waiting for a person's QA: qa → merge.",
                                   "approved"),
    ItemAction.REJECT: ActionSpec(Trigger.QA_FAILED,
                                  "Reject an item in QA: back to coding, the reason its coder's next prompt.",
                                  "rejected", "rejected by {actor}"),
    ItemAction.DEMOTE: ActionSpec(Trigger.DEMOTE, "Send an item back to the backlog, clearing any hold.", "demoted"),
    ItemAction.FREEZE: ActionSpec(Trigger.FREEZE, "Freeze an item: the pipeline leaves it alone until unfreeze.",
                                  "froze"),
    ItemAction.UNFREEZE: ActionSpec(Trigger.UNFREEZE, "Unfreeze an item.", "unfroze"),
    ItemAction.ARCHIVE: ActionSpec(Trigger.ARCHIVE, "Archive a done item (its worktree is pruned when safe).",
                                   "archived"),
    ItemAction.RETRY_MERGE: ActionSpec(Trigger.RETRY_MERGE, "Clear a merge failure: merge again.",
                                       "retrying the merge of"),
    ItemAction.CLOSE: ActionSpec(Trigger.CLOSE, "Close a spike whose report you read: qa → done, nothing merged.",
                                 "closed", "closed by {actor}"),
    ItemAction.ABANDON: ActionSpec(Trigger.ABANDON, "Abandon an item: archived unfinished (its run stopped, its "
                                   "worktree removed when clean; the branch is kept).", "abandoned",
                                   "abandoned by {actor}"),
    ItemAction.SUPERSEDE: ActionSpec(Trigger.SUPERSEDE, "Supersede an item by another (--by N): archived as "
                                     "abandon does, saying which item does it instead.", "superseded"),
}
# What the kind of an item changes: a spike is closed on its report, never merged.
_NOT_FOR: dict[ItemAction, tuple[frozenset[Kind], str]] = {
    ItemAction.CLOSE: (frozenset({Kind.STORY, Kind.BUG, Kind.REFACTOR}),
                       "only a spike is closed without a merge; approve it, or abandon it"),
    ItemAction.APPROVE: (frozenset({Kind.SPIKE}), "a spike is not merged: close it once its report is read"),
}
# fmt: on


def reason_for(action: ItemAction, reason: str | None, actor: str) -> str | None:
    """The reason recorded for ``action``: the person's own, or for a hold one that says who set it."""
    given = (reason or "").strip() or None
    if action is ItemAction.STOP:
        return f"stopped by {actor}" + (f": {given}" if given else "")
    default = ACTIONS[action].default_reason
    if given is None and default is not None:
        return default.format(actor=actor)
    return given


def check_legal(item_id: int, state: ItemState, action: ItemAction, reason: str | None, kind: Kind) -> None:
    """Refuse by the table (and by the item's kind) before anything is asked of git: approving a backlog item is
    illegal, not a git error.

    The guards' facts (commits ahead, files changed) are assumed met here; the pipeline checks
    them against the repository when it applies the trigger.
    """
    trigger = ACTIONS[action].trigger
    kinds, why = _NOT_FOR.get(action, (frozenset(), ""))
    if kind in kinds:
        raise IllegalTransition(state, trigger, why, item_id)
    try:
        apply(state, trigger, Facts(reason=reason, commits_ahead=1, files_changed=1))
    except IllegalTransition as err:
        raise IllegalTransition(state, trigger, err.why, item_id) from None


def actions_for(state: ItemState, kind: Kind) -> list[ItemAction]:
    """The actions the stage table allows from ``state`` for an item of ``kind`` (guards assumed met: the pipeline
    checks them)."""
    return [action for action in _actions(state.stage, state.hold, state.frozen)
            if kind not in _NOT_FOR.get(action, (frozenset(), ""))[0]]  # fmt: skip


@functools.cache  # a few dozen states at most; the board asks for every item on every change
def _actions(stage: Stage, hold: Hold | None, frozen: bool) -> tuple[ItemAction, ...]:
    legal = set(legal_triggers(ItemState(stage, hold, "reason" if hold else None, frozen)))
    return tuple(action for action, spec in ACTIONS.items() if spec.trigger in legal)
