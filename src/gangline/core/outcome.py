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
        if returncode is not None and returncode >= 0:
            return Conclusion(RunOutcome.REFUSED, _refusal(exit_text, last_lines))
        return Conclusion(RunOutcome.CRASHED, f"CLI {exit_text} before starting a session{tail}")
    return Conclusion(RunOutcome.CRASHED, f"CLI {exit_text} without a result{tail}")


# What an agent CLI prints when it refuses to start, and what fixes it (SPEC.md "Run outcomes").
FIXES: tuple[tuple[str, str], ...] = (
    (
        "cannot be used with root/sudo privileges",
        "Claude Code refuses bypassPermissions as root outside a sandbox: install bubblewrap so that gangline "
        'runs the agent in its sandbox (sandbox = "auto"), or set permission_mode = "acceptEdits", '
        "or run gangline as a user other than root",
    ),
    (
        "invalid auth method",
        "the Gemini CLI has no authentication: set GEMINI_API_KEY in gangline's environment (or name the "
        "variable in the profile's provider.key_env), or sign in once by running gemini yourself",
    ),
    (
        "please set an auth method",
        "the Gemini CLI has no authentication: set GEMINI_API_KEY in gangline's environment (or name the "
        "variable in the profile's provider.key_env), or sign in once by running gemini yourself",
    ),
    (
        "invalid api key",
        "Claude Code has no valid credentials: set ANTHROPIC_API_KEY in gangline's environment, or sign in "
        "once by running claude yourself and typing /login",
    ),
    (
        "not logged in",
        "the CLI has no credentials: sign in once by running it yourself, or set its API key in gangline's environment",
    ),
    (
        "unknown option",
        "the CLI does not know a flag gangline or the profile passes: run gangline doctor, and check the "
        "profile's extra_args and the CLI's version",
    ),
)


def fix_for(lines: list[str]) -> str | None:
    """The fix gangline knows for what a CLI printed when it refused to start, if any."""
    text = "\n".join(lines).lower()
    return next((fix for pattern, fix in FIXES if pattern in text), None)


def _refusal(exit_text: str, last_lines: list[str]) -> str:
    said = " | ".join(line.strip() for line in last_lines[-3:] if line.strip()) or "it printed nothing"
    fix = fix_for(last_lines)
    reason = f"the agent CLI refused to start: it {exit_text} before starting a session, saying: {said}"
    return f"{reason}. Fix: {fix}" if fix else reason


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
