"""What to do when an agent run ends: pure decisions, tested as tables (SPEC.md "After a run")."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from gangline.core.events import RunOutcome

BUDGET_SUBTYPE = "error_max_budget_usd"  # the result subtype Claude Code uses when --max-budget-usd is hit


class Next(enum.StrEnum):
    """What the pipeline does with an item after its agent's run."""

    PARK = "park"  # hard rate limit: wait for the reset, then resume the session; costs no retry
    BLOCK = "block"  # stop automation; a person must look
    RESUME = "resume"  # interrupted by gangline itself: resume the session; costs no retry
    CHECK = "check"  # look at the work: commits, a clean tree, then the gates
    RETRY = "retry"  # resume the session with the failure as the new prompt
    LEAVE = "leave"  # a person acted on the item meanwhile: do nothing


@dataclass(frozen=True)
class RunEnding:
    outcome: RunOutcome
    reason: str
    resets_at: float | None
    cost_usd: float | None
    result_subtype: str | None
    budget_note: str | None  # set when the server stopped the run for its budget


@dataclass(frozen=True)
class AfterRun:
    """The decision after a run: what comes next, why, and (parked) until when."""

    next: Next
    reason: str
    until: float | None = None


def after_run(
    ending: RunEnding,
    *,
    automatable: bool,
    max_budget_usd: float | None,
    now: float,
    default_wait_s: float,
    max_wait_s: float,
    margin_s: float,
) -> AfterRun:
    """The first matching row wins."""
    if not automatable:
        return AfterRun(Next.LEAVE, "a person changed the item while the agent ran")
    if ending.outcome is RunOutcome.REFUSED:  # a configuration or sign-in problem: retrying cannot fix it
        return AfterRun(Next.BLOCK, ending.reason)
    budget = _budget_exceeded(ending, max_budget_usd)
    if budget is not None:
        return AfterRun(Next.BLOCK, budget)
    if ending.outcome is RunOutcome.RATE_LIMITED:
        return _park(ending, now, default_wait_s, max_wait_s, margin_s)
    if ending.outcome is RunOutcome.STOPPED:
        return AfterRun(Next.RESUME, ending.reason)
    # Succeeded or not, what counts is what the agent left behind ("work survived").
    return AfterRun(Next.CHECK, f"{ending.outcome.value}: {ending.reason}")


def _budget_exceeded(ending: RunEnding, max_budget_usd: float | None) -> str | None:
    if ending.budget_note:
        return ending.budget_note
    spent = ending.cost_usd or 0.0
    if ending.result_subtype == BUDGET_SUBTYPE or (max_budget_usd is not None and spent > max_budget_usd):
        limit = f" of ${max_budget_usd:.2f}" if max_budget_usd is not None else ""
        return f"budget exceeded: spent ${spent:.2f}{limit}"
    return None


def _park(ending: RunEnding, now: float, default_wait_s: float, max_wait_s: float, margin_s: float) -> AfterRun:
    until = (ending.resets_at if ending.resets_at is not None else now + default_wait_s) + margin_s
    until = max(until, now + margin_s)  # a reset time in the past (clock skew) still waits a little
    if until - now > max_wait_s:
        hours = (until - now) / 3600
        return AfterRun(Next.BLOCK, f"rate limited until {hours:.1f}h from now, longer than rate_limit.max_wait_s")
    return AfterRun(Next.PARK, f"rate limited: {ending.reason}", until)


def after_check(ending: RunEnding, finding: str) -> str:
    """A retry's prompt and a block's reason: what the check found, after how the run ended if it did not succeed."""
    if ending.outcome is RunOutcome.SUCCEEDED:
        return finding
    return f"The run {ending.outcome.value} ({ending.reason}). {finding}"


def retry_or_block(retries_used: int, max_retries: int, reason: str) -> AfterRun:
    """After a failed attempt: ``retries_used`` counts this failure too."""
    if retries_used > max_retries:
        attempts = "the only attempt failed:" if retries_used == 1 else f"{retries_used} attempts failed; the last:"
        return AfterRun(Next.BLOCK, f"{attempts} {reason}")
    return AfterRun(Next.RETRY, reason)
