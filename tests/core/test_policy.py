"""What the server decides when a run ends, as a table."""

from __future__ import annotations

import pytest

from gangline.core.events import RunOutcome
from gangline.core.policy import AfterRun, Next, RunEnding, after_check, after_run, retry_or_block

NOW = 10_000.0


def ending(outcome: RunOutcome, **fields: object) -> RunEnding:
    values: dict[str, object] = {"reason": "r", "resets_at": None, "cost_usd": 0.1, "result_subtype": "success",
                                 "budget_note": None} | fields  # fmt: skip
    return RunEnding(outcome, **values)  # type: ignore[arg-type]


def decide(e: RunEnding, automatable: bool = True, budget: float | None = 1.0) -> AfterRun:
    return after_run(e, automatable=automatable, max_budget_usd=budget, now=NOW, default_wait_s=300,
                     max_wait_s=3600, margin_s=5)  # fmt: skip


@pytest.mark.parametrize(
    ("e", "then", "reason"),
    [
        (ending(RunOutcome.SUCCEEDED), Next.CHECK, "succeeded: r"),
        (ending(RunOutcome.CRASHED), Next.CHECK, "crashed: r"),
        (ending(RunOutcome.STALLED), Next.CHECK, "stalled: r"),
        (ending(RunOutcome.STOPPED, reason="server shutting down"), Next.RESUME, "server shutting down"),
        (ending(RunOutcome.SUCCEEDED, cost_usd=1.5), Next.BLOCK, "budget exceeded: spent $1.50 of $1.00"),
        (ending(RunOutcome.FAILED, result_subtype="error_max_budget_usd", cost_usd=0.9), Next.BLOCK,
         "budget exceeded: spent $0.90 of $1.00"),
        (ending(RunOutcome.STOPPED, budget_note="budget exceeded: spent $3.00 of $1.00"), Next.BLOCK,
         "budget exceeded: spent $3.00 of $1.00"),
    ],
)  # fmt: skip
def test_after_a_run(e: RunEnding, then: Next, reason: str) -> None:
    assert decide(e) == AfterRun(then, reason)


def test_a_person_who_changed_the_item_wins() -> None:
    assert decide(ending(RunOutcome.SUCCEEDED, cost_usd=50.0), automatable=False).next is Next.LEAVE


def test_a_hard_rate_limit_parks_until_the_reset_plus_the_margin() -> None:
    assert decide(ending(RunOutcome.RATE_LIMITED, resets_at=NOW + 60)).until == NOW + 65
    assert decide(ending(RunOutcome.RATE_LIMITED)).until == NOW + 305  # no reset time reported
    assert decide(ending(RunOutcome.RATE_LIMITED, resets_at=NOW - 600)).until == NOW + 5  # clock skew


def test_a_reset_too_far_away_blocks_instead_of_parking() -> None:
    decision = decide(ending(RunOutcome.RATE_LIMITED, resets_at=NOW + 7200))
    assert decision.next is Next.BLOCK and "longer than rate_limit.max_wait_s" in decision.reason


def test_retries_run_out_after_max_retries() -> None:
    assert retry_or_block(3, 3, "gate failed").next is Next.RETRY
    assert retry_or_block(4, 3, "gate failed") == AfterRun(Next.BLOCK, "4 attempts failed; the last: gate failed")


def test_a_check_s_finding_says_first_how_a_run_that_did_not_succeed_ended() -> None:
    found = "You exited without committing any work."
    assert after_check(ending(RunOutcome.SUCCEEDED), found) == found
    assert after_check(ending(RunOutcome.STALLED), found) == f"The run stalled (r). {found}"
