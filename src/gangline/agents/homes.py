"""Each agent CLI's own state inside the sandbox: a directory per profile, and the person's sign-in kept in step.

A CLI keeps its sessions (what ``--resume`` needs), settings and credentials under the home
directory, which the sandbox shows read-only with those directories hidden. So each profile
gets a state directory of its own, kept across runs (sessions resume) and shown writable where
the CLI looks for it. The person's sign-in (a subscription's OAuth tokens, which the CLI
refreshes and rotates) is copied in before a run when the person's copy is newer, and copied
back after it when the CLI refreshed it and the person's copy did not change meanwhile: the
person stays signed in outside gangline, and every run sees the newest token.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from gangline.core.profiles import CliKind


@dataclass(frozen=True)
class CliHome:
    """Where one CLI keeps its state, as the sandbox shows it."""

    subdir: str  # the state directory's name under the profile's directory
    env_var: str | None  # a variable that points the CLI at its state directory
    shown_at: str | None  # or a path under HOME the state directory is shown at
    signed_in: tuple[str, ...]  # the person's token files (relative to the CLI's directory), kept in step
    person_dir: str  # the CLI's directory under the person's HOME
    person_var: str | None = None  # a variable that moves it there (CLAUDE_CONFIG_DIR)
    # Copied in only, never back: settings can name commands, which the person's own CLI would run.
    brought: tuple[str, ...] = ()


_CLAUDE = CliHome("claude", "CLAUDE_CONFIG_DIR", None, (".credentials.json",), ".claude", "CLAUDE_CONFIG_DIR")
HOMES: dict[CliKind, CliHome] = {
    CliKind.CLAUDE: _CLAUDE,
    CliKind.FAKE: _CLAUDE,  # the fake speaks Claude Code's protocol and keeps its state where Claude Code does
    CliKind.CODEX: CliHome("codex", "CODEX_HOME", None, ("auth.json",), ".codex", "CODEX_HOME"),
    CliKind.GEMINI: CliHome(
        "gemini", None, ".gemini", ("oauth_creds.json", "google_accounts.json"), ".gemini", brought=("settings.json",)
    ),
}

# What a sandbox never shows of the person's home: every agent CLI's own state (each run sees
# its profile's instead) and the usual places of credentials an agent could carry off.
HIDDEN_IN_HOME = (
    ".claude",
    ".claude.json",
    ".codex",
    ".gemini",
    ".ssh",
    ".gnupg",
    ".aws",
    ".azure",
    ".kube",
    ".docker",
    ".netrc",
    ".git-credentials",
    ".npmrc",
    ".pypirc",
    ".config/gh",
    ".config/gcloud",
    ".config/gangline",
    ".local/share/keyrings",
)


@dataclass
class SignIn:
    """The person's sign-in files as copied into a profile's state before a run."""

    pairs: list[tuple[Path, Path]] = field(default_factory=list)  # (the person's, the profile's)
    seen: dict[Path, tuple[int, int] | None] = field(default_factory=dict)  # (mtime_ns, size) at copy time


def person_dir(cli: CliHome, env: dict[str, str] | os._Environ[str], home: Path) -> Path:
    moved = env.get(cli.person_var) if cli.person_var else None
    return Path(moved) if moved else home / cli.person_dir


def bring_in(cli: CliHome, state: Path, person: Path) -> SignIn:
    """Copy each of the person's sign-in files into ``state`` where the person's is newer; remember what was seen."""
    sign_in = SignIn()
    state.mkdir(parents=True, exist_ok=True, mode=0o700)
    for name in cli.brought:
        if (person / name).is_file():
            _copy(person / name, state / name)
    for name in cli.signed_in:
        theirs, ours = person / name, state / name
        sign_in.pairs.append((theirs, ours))
        seen = _stamp(theirs)
        sign_in.seen[theirs] = seen
        if seen is not None and (not ours.exists() or theirs.stat().st_mtime_ns > ours.stat().st_mtime_ns):
            _copy(theirs, ours)
        sign_in.seen[ours] = _stamp(ours)
    return sign_in


def take_back(sign_in: SignIn) -> list[Path]:
    """Copy back each file the CLI rewrote during the run, unless the person's changed meanwhile; what was copied."""
    copied = []
    for theirs, ours in sign_in.pairs:
        now = _stamp(ours)
        if now is None or now == sign_in.seen.get(ours):
            continue  # the CLI did not touch it
        if _stamp(theirs) != sign_in.seen.get(theirs):
            continue  # the person signed in again meanwhile: theirs wins, and comes in next run
        if not _same_shape(theirs, ours):
            continue  # not a refreshed token file of the same kind: never written over the person's
        with contextlib.suppress(OSError):
            _copy(ours, theirs)
            copied.append(theirs)
    return copied


def _same_shape(theirs: Path, ours: Path) -> bool:
    """Both JSON objects with the same top-level keys: a refresh of a sign-in the person has, not a new one."""
    try:
        new = json.loads(ours.read_text(encoding="utf-8"))
        old = json.loads(theirs.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(new, dict) and isinstance(old, dict) and set(old) == set(new)


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size)


def _copy(source: Path, target: Path) -> None:
    """Replace ``target`` atomically with ``source``'s bytes, readable by its owner only, keeping ``source``'s mtime."""
    data = source.read_bytes()
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        st = source.stat()
        os.utime(temp, ns=(st.st_atime_ns, st.st_mtime_ns))
        os.replace(temp, target)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


# --- is the person signed in (gangline doctor) ---------------------------------------------------

_KEYS: dict[CliKind, tuple[str, ...]] = {
    CliKind.CLAUDE: ("ANTHROPIC_API_KEY", "CLAUDE_CODE_OAUTH_TOKEN", "ANTHROPIC_AUTH_TOKEN"),
    CliKind.CODEX: ("OPENAI_API_KEY", "CODEX_API_KEY"),
    CliKind.GEMINI: ("GEMINI_API_KEY", "GOOGLE_API_KEY", "GOOGLE_GENAI_USE_VERTEXAI", "GOOGLE_GENAI_USE_GCA"),
}
_HOW = {
    CliKind.CLAUDE: "set ANTHROPIC_API_KEY in gangline's environment, or sign in once by running claude and /login",
    CliKind.CODEX: "set OPENAI_API_KEY in gangline's environment, or sign in once with codex login",
    CliKind.GEMINI: "set GEMINI_API_KEY in gangline's environment, or sign in once by running gemini",
}


def sign_in_problem(kind: CliKind, env: dict[str, str], home: Path) -> str | None:
    """Why the CLI would find no credentials (an API key in ``env``, or a sign-in under ``home``); None if it would."""
    if kind is CliKind.FAKE or any(env.get(name) for name in _KEYS[kind]):
        return None
    cli = HOMES[kind]
    folder = person_dir(cli, env, home)
    if any((folder / name).is_file() for name in cli.signed_in):
        return None
    keys = " or ".join(_KEYS[kind])
    return f"no {keys} in the environment and no sign-in in {folder}; {_HOW[kind]}"
