"""Decide how a run ended from what was observed (pure: a table in SPEC.md, tested as one)."""

from __future__ import annotations

import signal
from dataclasses import dataclass

from gangline.core.events import RateLimit, Result, RunOutcome


@dataclass(frozen=True)
class Conclusion:
    outcome: RunOutcome
    reason: str


def decide(
    *,
    killed_for: tuple[RunOutcome, str] | None,
    returncode: int | None,
    session_started: bool,
    result: Result | None,
    hard_limit: RateLimit | None,
    last_lines: list[str],
) -> Conclusion:
    """The first matching row wins; see SPEC.md "Run outcomes"."""
    if killed_for is not None:
        return Conclusion(*killed_for)
    if hard_limit is not None:
        return Conclusion(
            RunOutcome.RATE_LIMITED, f"rate limit {hard_limit.status} ({hard_limit.limit_type or 'unknown window'})"
        )
    if result is not None:
        if not result.is_error and returncode == 0:
            return Conclusion(RunOutcome.SUCCEEDED, "completed")
        return Conclusion(RunOutcome.FAILED, _result_reason(result, returncode))
    exit_text = _exit_text(returncode)
    tail = f"; last output: {' | '.join(last_lines[-3:])}" if last_lines else "; it printed nothing"
    if not session_started:
        return Conclusion(RunOutcome.CRASHED, f"CLI {exit_text} before starting a session{tail}")
    return Conclusion(RunOutcome.CRASHED, f"CLI {exit_text} without a result{tail}")


def _result_reason(result: Result, returncode: int | None) -> str:
    parts = [result.subtype]
    if result.api_error_status:
        parts.append(f"API status {result.api_error_status}")
    if result.errors:
        parts.append("; ".join(result.errors))
    elif result.is_error and result.result:
        parts.append(result.result)
    if not result.is_error and returncode != 0:
        parts.append(_exit_text(returncode))
    return ": ".join(parts)


def _exit_text(returncode: int | None) -> str:
    if returncode is None:
        return "ended with an unknown status"
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"was killed by {name}"
    return f"exited with code {returncode}"
