"""Which agent CLIs this machine has: each found on ``PATH`` with the version it reports.

``gangline init`` offers profiles for them, the board's onboarding lists them, and a build node
advertises them to its server.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass

from gangline.agents.registry import ADAPTERS
from gangline.core.profiles import CliKind

VERSION_S = 10.0  # a CLI that has not printed its version by then is reported as "unknown"
REAL_KINDS = (CliKind.CLAUDE, CliKind.CODEX, CliKind.GEMINI)  # what a person installs; the fake is gangline's own


@dataclass(frozen=True)
class InstalledCli:
    kind: CliKind
    path: str
    version: str  # the first line of ``--version``, or "unknown"


def installed_clis(env: Mapping[str, str], kinds: tuple[CliKind, ...] = REAL_KINDS) -> list[InstalledCli]:
    """The CLIs of ``kinds`` found on ``env``'s ``PATH``, in that order, each with its version."""
    found = []
    for kind in kinds:
        path = shutil.which(ADAPTERS[kind].binary, path=env.get("PATH"))
        if path is not None:
            found.append(InstalledCli(kind, path, cli_version(path)))
    return found


def cli_version(binary: str) -> str:
    """What ``binary --version`` prints first (64 characters at most); "unknown" when it says nothing usable."""
    try:
        out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=VERSION_S, check=False)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    lines = out.stdout.strip().splitlines()
    return lines[0][:64] if lines and not lines[0].startswith("{") else "unknown"
