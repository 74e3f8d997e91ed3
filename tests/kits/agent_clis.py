"""Where the pinned real Codex and Gemini CLIs live in this checkout, and how tests run them offline.

Codex talks to `fake_openai.FakeResponses`, Gemini CLI to `fake_gemini.FakeGemini` (see `claude_cli.py` for Claude).
"""

from __future__ import annotations

import json
from pathlib import Path

_BIN = Path(__file__).resolve().parents[2] / "node_modules" / ".bin"
CODEX = _BIN / "codex"
GEMINI = _BIN / "gemini"
CODEX_PINNED = "0.169.0"  # package-lock.json: @openai/codex
GEMINI_PINNED = "0.61.0"  # package-lock.json: @google/gemini-cli

CODEX_MODEL = "gpt-5.5"  # has built-in metadata: its tools include the freeform apply_patch
GEMINI_MODEL = "gemini-2.5-flash"
CODEX_KEY_VAR = "FAKE_API_KEY"  # the provider's env_key: the key travels in the environment, never in argv
CODEX_KEY = "sk-fake-codex-key"
GEMINI_KEY = "fake-gemini-key"


def _require(path: Path, what: str) -> str:
    """The CLI's path; a missing CLI is a failure, not a skip: scripts/test installs it."""
    if not path.exists():
        raise AssertionError(f"the real {what} is missing at {path}: run ./scripts/test, which installs it")
    return str(path)


def require_codex() -> str:
    return _require(CODEX, "Codex CLI")


def require_gemini() -> str:
    return _require(GEMINI, "Gemini CLI")


def codex_env(home: Path) -> dict[str, str]:
    """HOME, an empty CODEX_HOME inside it, and the fake provider's key."""
    codex_home = home / "codex"
    codex_home.mkdir(parents=True, exist_ok=True)
    return {"HOME": str(home), "CODEX_HOME": str(codex_home), CODEX_KEY_VAR: CODEX_KEY}


def codex_provider_args(base_url: str, *, request_retries: int = 0, stream_retries: int = 0) -> list[str]:
    """`-c` overrides selecting a model provider "fake" at `base_url`, the fake's root (`/v1` is appended).

    request_max_retries re-sends a 5xx at once (default 4); stream_max_retries is the outer
    "Reconnecting... n/N" loop (default 5) over 5xx, dropped streams and a 429 with retry-after.
    A 429 without retry-after and any 4xx fail at once whatever these say.
    """
    provider = {
        "name": '"fake"',
        "base_url": f'"{base_url.rstrip("/")}/v1"',
        "env_key": f'"{CODEX_KEY_VAR}"',
        "wire_api": '"responses"',
        "request_max_retries": str(request_retries),
        "stream_max_retries": str(stream_retries),
    }
    args = ["-c", "model_provider=fake"]
    for key, value in provider.items():
        args += ["-c", f"model_providers.fake.{key}={value}"]
    return args


def codex_argv(prompt: str, *extra: str, resume: str | None = None, model: str = CODEX_MODEL) -> list[str]:
    """`codex exec --json` (or `exec resume <thread id>`) with workspace-write sandbox and no approvals.

    `resume` takes no -s/--sandbox flag, hence `-c sandbox_mode`; `extra` goes before the prompt.
    """
    head = [require_codex(), "exec", *(["resume", resume] if resume else []), "--json", "--skip-git-repo-check"]
    config = ['sandbox_mode="workspace-write"', 'approval_policy="never"', f"model={model}", "analytics.enabled=false"]
    return [*head, *(a for c in config for a in ("-c", c)), *extra, prompt]


def gemini_env(base_url: str, home: Path, *, max_attempts: int = 2) -> dict[str, str]:
    """HOME with a settings.json for API-key auth and no telemetry or updates, the key and the fake's URL.

    maxAttempts bounds the retries of a 429/5xx (default 10, minutes of backoff); 1 means no retry.
    TMPDIR keeps the CLI's error reports (gemini-client-error-*.json) inside `home`.
    """
    settings = {
        "security": {"auth": {"selectedType": "gemini-api-key"}},
        "telemetry": {"enabled": False},
        "privacy": {"usageStatisticsEnabled": False},
        "general": {"disableAutoUpdate": True, "maxAttempts": max_attempts},
    }
    (home / ".gemini").mkdir(parents=True, exist_ok=True)
    (home / ".gemini" / "settings.json").write_text(json.dumps(settings, indent=2) + "\n")
    (home / "tmp").mkdir(exist_ok=True)
    return {
        "HOME": str(home),
        "TMPDIR": str(home / "tmp"),
        "GEMINI_API_KEY": GEMINI_KEY,
        "GOOGLE_GEMINI_BASE_URL": base_url,
        "COLORTERM": "truecolor",  # else stderr warns that 256-color support was not detected
    }


def gemini_argv(
    prompt: str, *extra: str, resume: str | None = None, approval: str = "yolo", model: str = GEMINI_MODEL
) -> list[str]:
    """Headless `gemini -p` with stream-json output. Only `yolo` registers run_shell_command headless;
    `auto_edit` allows write_file/replace. `resume` is a session id from the same cwd."""
    args = [require_gemini(), "-p", prompt, "--output-format", "stream-json", "--skip-trust"]
    args += ["--approval-mode", approval, "-m", model, *extra]
    return [*args, "--resume", resume] if resume else args
