"""Where the pinned real Claude Code CLI lives in this checkout, and how tests run it offline."""

from __future__ import annotations

from pathlib import Path

CLAUDE = Path(__file__).resolve().parents[2] / "node_modules" / ".bin" / "claude"
PINNED_VERSION = "2.1.330"  # package-lock.json


def require_claude() -> str:
    """The CLI's path; a missing CLI is a failure, not a skip: scripts/test installs it."""
    if not CLAUDE.exists():
        raise AssertionError(f"the real Claude Code CLI is missing at {CLAUDE}: run ./scripts/test, which installs it")
    return str(CLAUDE)


def offline_env(base_url: str, home: Path, *, oauth: bool = False, retries: int = 2) -> dict[str, str]:
    """Variables that point the CLI at the fake model API and keep it from calling anything else."""
    home.mkdir(parents=True, exist_ok=True)
    env = {
        "HOME": str(home),
        "ANTHROPIC_BASE_URL": base_url,
        "DISABLE_AUTOUPDATER": "1",
        "DISABLE_TELEMETRY": "1",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_ERROR_REPORTING": "1",
        "CLAUDE_CODE_MAX_RETRIES": str(retries),  # the default, 10, spends minutes on a persistent error
    }
    # A subscription (OAuth) login is what makes the CLI report rate_limit_event.
    env |= {"CLAUDE_CODE_OAUTH_TOKEN": "fake-oauth-token"} if oauth else {"ANTHROPIC_API_KEY": "sk-fake-secret-value"}
    return env


def print_argv(prompt: str, *extra: str, model: str = "claude-sonnet-4-5") -> list[str]:
    """The CLI run directly (not through gangline) in print mode with stream-json output."""
    stream = ["--output-format", "stream-json", "--verbose", "--include-partial-messages"]
    return [require_claude(), "-p", prompt, *stream, "--permission-mode", "acceptEdits", "--model", model, *extra]
