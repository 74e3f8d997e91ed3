"""How a job's decision about a run is written on its item, and the prompts that carry the item on.

A decision that keeps the item in its stage (or holds it) is one compare-and-set write: a retry
with the failure as the coder's next prompt, a park until a rate limit resets, a resume after a
restart or a stop (a person's message, or gangline's own), or a block with the reason.
"""

from __future__ import annotations

from gangline.core.items import Item
from gangline.core.messages import MESSAGE_STOP
from gangline.core.policy import AfterRun, Next
from gangline.core.records import REASON_CHARS
from gangline.core.stages import Trigger
from gangline.core.types import SERVER
from gangline.store import Store

RESTARTED = "gangline restarted while you were working. Check `git status` and `git log`, finish the item, and commit."
PAUSED = "A person paused you and has now let you continue. Check `git status`, finish the item, and commit."
SWITCHED = (
    "Another agent started this item and was stopped by a rate limit; you take over in its worktree. "
    "Check `git status` and `git log`, finish the item, and commit."
)
RATE_LIMITED = "You were paused by a rate limit, which has now reset. Continue the item where you left off and commit."


def apply_decision(
    store: Store, item: Item, decision: AfterRun, run_id: str | None, session: str | None, retries: int | None = None
) -> None:
    """Write a decision that keeps the item in its stage (or holds it), compare-and-set."""
    base: dict[str, object] = {"session_id": session}
    if retries is not None:
        base["retries"] = retries
    if decision.next is Next.LEAVE:
        return
    if decision.next is Next.BLOCK:
        store.hold(item.id, Trigger.BLOCK, SERVER, decision.reason, expected=item.state, updates=base, run_id=run_id)
        return
    data = None
    feedback: str | None
    if decision.next is Next.PARK:
        kind, reason, feedback = "parked", decision.reason, RATE_LIMITED
        base["parked_until"], data = decision.until, {"until": decision.until}
    elif decision.next is Next.RESUME:
        # Stopped for a person's message: the message is the next prompt; else the restart's.
        kind, reason, feedback = "interrupted", decision.reason, None if decision.reason == MESSAGE_STOP else RESTARTED
    else:  # a retry: the failure is the next prompt
        kind, reason, feedback = "retry", decision.reason[:REASON_CHARS], decision.reason
    store.bookkeep(item.id, kind, SERVER, expected=item.state, reason=reason, run_id=run_id,
                   updates={**base, "feedback": feedback}, data=data)  # fmt: skip
