"""The base branch as a person asks after it: its tip, how it stands to its upstream, and the person's checkout."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gangline.repo.git import git


@dataclass(frozen=True)
class BaseStatus:
    branch: str
    tip: str  # the full commit id
    subject: str
    upstream: str | None  # its upstream branch (origin/main), if it has one
    ahead: int | None  # commits on the branch its upstream lacks (None without an upstream)
    behind: int | None
    checked_out: str | None  # the branch of the person's checkout (None: a detached HEAD)
    changed: int  # files changed or untracked in the person's checkout


async def base_status(root: Path, branch: str) -> BaseStatus:
    """What ``branch`` and the checkout at ``root`` look like now; read-only (no fetch, no index refresh)."""
    tip, _, subject = (await git(root, "log", "-1", "--format=%H%x00%s", f"refs/heads/{branch}")).stdout.partition("\0")
    found = await git(root, "rev-parse", "--abbrev-ref", "--symbolic-full-name", f"{branch}@{{upstream}}", check=False)
    upstream = found.stdout.strip() if found.returncode == 0 and found.stdout.strip() else None
    ahead = behind = None
    if upstream is not None:
        counts = (await git(root, "rev-list", "--left-right", "--count", f"{branch}...{upstream}")).stdout.split()
        ahead, behind = int(counts[0]), int(counts[1])
    head = await git(root, "symbolic-ref", "--short", "-q", "HEAD", check=False)
    status = (await git(root, "--no-optional-locks", "status", "--porcelain=v1", "-z")).stdout
    changed = sum(1 for entry in status.split("\0") if len(entry) > 3 and entry[2] == " ")
    return BaseStatus(branch, tip.strip(), subject.strip(), upstream, ahead, behind,
                      head.stdout.strip() or None, changed)  # fmt: skip
