"""Squash merges in the merge workspace, and advancing the base branch atomically."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from gangline.core.errors import ConfigError, GitError
from gangline.repo.git import GANGLINE_COMMITTER, git
from gangline.repo.worktrees import WorktreeEntry, list_worktrees

_MARKER = ": leftover conflict marker"  # how `git diff --check` reports one (LC_ALL=C)
_EXPLANATION_CHARS = 2000


class SquashStatus(enum.StrEnum):
    READY = "ready"  # one commit on the base tip holds the whole change
    CONFLICT = "conflict"  # left in the workspace for a mergemaster agent
    EMPTY = "empty"  # the base branch already has every change: nothing to merge


@dataclass(frozen=True)
class Squash:
    status: SquashStatus
    base_tip: str
    commit: str | None
    files_changed: int
    conflicts: tuple[str, ...]
    detail: str


class AdvanceStatus(enum.StrEnum):
    ADVANCED = "advanced"
    BASE_MOVED = "base_moved"  # someone else moved it: squash again onto the new tip
    CHECKED_OUT_BLOCKED = "checked_out_blocked"  # a person's checkout of it has changes in the way


@dataclass(frozen=True)
class Advance:
    status: AdvanceStatus
    detail: str


async def prepare_squash(
    workspace: Path,
    base_branch: str,
    feature_branch: str,
    message: str,
    *,
    env: Mapping[str, str] | None = None,
) -> Squash:
    """Squash ``feature_branch`` onto the tip of ``base_branch`` as one commit in ``workspace``."""
    await _check_workspace(workspace, env)
    base_tip = await _commit_of(workspace, f"refs/heads/{base_branch}", env)
    await _reset_workspace(workspace, base_tip, env)
    # merge.ff=only in a person's config would refuse any squash that is not a fast-forward.
    args = ("-c", "merge.ff=true", "merge", "--squash", f"refs/heads/{feature_branch}")
    merged = await git(workspace, *args, check=False, env=env)
    if merged.returncode != 0:
        conflicts = await _unmerged_paths(workspace, env)
        if not conflicts:
            raise GitError(args, workspace, merged.returncode, merged.stderr or merged.stdout)
        detail = f"squashing {feature_branch} onto {base_branch} conflicts in {len(conflicts)} file(s)"
        return Squash(SquashStatus.CONFLICT, base_tip, None, 0, conflicts, detail)
    if not await _changed_files(workspace, base_tip, None, env):
        detail = f"{base_branch} already has every change on {feature_branch}"
        return Squash(SquashStatus.EMPTY, base_tip, None, 0, (), detail)
    commit = await _commit(workspace, message, env)
    files = len(await _changed_files(workspace, base_tip, commit, env))
    detail = f"squashed {feature_branch} onto {base_branch} at {base_tip[:12]}: {files} file(s) changed"
    return Squash(SquashStatus.READY, base_tip, commit, files, (), detail)


async def inspect_resolution(
    workspace: Path, base_tip: str, message: str, *, env: Mapping[str, str] | None = None
) -> Squash:
    """Judge a mergemaster's work in ``workspace``; make it one commit on ``base_tip`` when it is done."""
    await _check_workspace(workspace, env)
    unmerged = await _unmerged_paths(workspace, env)
    if unmerged:
        detail = f"{len(unmerged)} file(s) still unmerged; resolve each and stage it with git add"
        return Squash(SquashStatus.CONFLICT, base_tip, None, 0, unmerged, detail)
    # Detach first: a branch the agent switched to must not move when HEAD is reset below.
    await git(workspace, "checkout", "--quiet", "--detach", env=env)
    await git(workspace, "add", "--all", env=env)
    marked = await _conflict_markers(workspace, base_tip, env)
    if marked:
        detail = f"conflict markers left in {len(marked)} file(s)"
        return Squash(SquashStatus.CONFLICT, base_tip, None, 0, marked, detail)
    if (await git(workspace, "merge-base", "--is-ancestor", base_tip, "HEAD", check=False, env=env)).returncode:
        detail = f"HEAD no longer contains the base tip {base_tip[:12]}; committing it would undo base changes"
        return Squash(SquashStatus.CONFLICT, base_tip, None, 0, (), detail)
    files = len(await _changed_files(workspace, base_tip, None, env))
    if not files:
        return Squash(SquashStatus.EMPTY, base_tip, None, 0, (), f"the resolution changes nothing on {base_tip[:12]}")
    if not await _is_single_commit(workspace, base_tip, message, env):
        # Several commits, a merge commit, or uncommitted work: one commit on base_tip holds it all.
        await git(workspace, "reset", "--soft", "--quiet", base_tip, env=env)
        await _commit(workspace, message, env)
    commit = await _commit_of(workspace, "HEAD", env)
    return Squash(SquashStatus.READY, base_tip, commit, files, (), f"resolved: {files} file(s) changed")


async def advance_base(
    repo: Path,
    base_branch: str,
    new_commit: str,
    expected_old: str,
    *,
    env: Mapping[str, str] | None = None,
) -> Advance:
    """Move ``base_branch`` from ``expected_old`` to ``new_commit``, a descendant, or say why not.

    If a person has the branch checked out, their checkout is fast-forwarded in place; git
    refuses before touching anything when their changes are in the way, so their working
    tree is never left half-merged and their changes are never overwritten.
    """
    ref = f"refs/heads/{base_branch}"
    if (await git(repo, "merge-base", "--is-ancestor", expected_old, new_commit, check=False, env=env)).returncode:
        raise ValueError(f"{new_commit} does not descend from {expected_old}: the base branch only fast-forwards")
    entries = await list_worktrees(repo, env)
    holder = next((e for e in entries if e.branch == ref and e.path.is_dir()), None)
    if holder is not None:
        return await _fast_forward_checkout(holder.path, base_branch, new_commit, expected_old, env)
    rebasing = await _rebasing_worktree(entries, ref, env)
    if rebasing is not None:
        detail = f"{base_branch} is being rebased at {rebasing}; it will be merged once the rebase ends"
        return Advance(AdvanceStatus.CHECKED_OUT_BLOCKED, detail)
    return await _compare_and_set(repo, base_branch, new_commit, expected_old, env)


async def _compare_and_set(repo: Path, base_branch: str, new: str, old: str, env: Mapping[str, str] | None) -> Advance:
    ref = f"refs/heads/{base_branch}"
    args = ("update-ref", "-m", "gangline merge", ref, new, old)
    updated = await git(repo, *args, check=False, env=env)
    if updated.returncode == 0:
        return Advance(AdvanceStatus.ADVANCED, f"{base_branch} advanced from {old[:12]} to {new[:12]}")
    current = await _tip(repo, ref, env)
    if current != old:
        return Advance(AdvanceStatus.BASE_MOVED, f"{base_branch} moved to {_short(current)}, not {old[:12]}")
    raise GitError(args, repo, updated.returncode, updated.stderr)


async def _fast_forward_checkout(
    path: Path, base_branch: str, new: str, old: str, env: Mapping[str, str] | None
) -> Advance:
    head = await _tip(path, "HEAD", env)
    if head != old:
        detail = f"{base_branch} checked out at {path} is at {_short(head)}, not {old[:12]}"
        return Advance(AdvanceStatus.BASE_MOVED, detail)
    # No autostash: stashing a person's changes and popping them could leave conflicts in their tree.
    merged = await git(path, "merge", "--ff-only", "--no-edit", "--no-autostash", new, check=False, env=env)
    head = await _tip(path, "HEAD", env)
    if merged.returncode == 0 and head == new:
        return Advance(AdvanceStatus.ADVANCED, f"fast-forwarded {base_branch} checked out at {path} to {new[:12]}")
    if head != old:
        detail = f"{base_branch} checked out at {path} moved to {_short(head)} while merging"
        return Advance(AdvanceStatus.BASE_MOVED, detail)
    explanation = " ".join((merged.stderr or merged.stdout).split())[:_EXPLANATION_CHARS]
    detail = f"{base_branch} is checked out at {path} and git refused to fast-forward it, changing nothing: "
    return Advance(AdvanceStatus.CHECKED_OUT_BLOCKED, detail + explanation)


async def _rebasing_worktree(entries: list[WorktreeEntry], ref: str, env: Mapping[str, str] | None) -> Path | None:
    """A worktree in the middle of rebasing ``ref``: HEAD is detached, yet the rebase will rewrite it."""
    for entry in entries:
        if entry.branch is not None or not entry.path.is_dir():
            continue
        for state in ("rebase-merge/head-name", "rebase-apply/head-name"):
            found = await git(entry.path, "rev-parse", "--git-path", state, env=env)
            name_file = entry.path / found.stdout.strip()  # relative to the worktree unless absolute
            if name_file.is_file() and name_file.read_text().strip() == ref:
                return entry.path
    return None


async def _check_workspace(workspace: Path, env: Mapping[str, str] | None) -> None:
    """Refuse any workspace that is not a linked worktree's top level: it gets reset and cleaned."""
    found = await git(workspace, "rev-parse", "--show-toplevel", "--absolute-git-dir", "--git-common-dir", env=env)
    top, git_dir, common = found.stdout.splitlines()
    is_top = Path(top).resolve() == workspace.resolve()
    if not is_top or Path(git_dir).resolve() == (workspace / common).resolve():
        raise ConfigError("merge workspace", f"{workspace} is not a linked git worktree of its own; refusing to use it")


async def _reset_workspace(workspace: Path, base_tip: str, env: Mapping[str, str] | None) -> None:
    """Discard everything in the workspace, a mergemaster's unfinished work included."""
    await git(workspace, "checkout", "--detach", "--force", "--quiet", base_tip, env=env)
    await git(workspace, "reset", "--hard", "--quiet", base_tip, env=env)
    await git(workspace, "clean", "-ffdxq", env=env)  # twice -f: nested repositories go too


async def _commit(workspace: Path, message: str, env: Mapping[str, str] | None) -> str:
    # No hooks: this commit holds work that already passed the gates; a hook could rewrite or
    # refuse it, or wait on a person.
    args = ("commit", "--quiet", "--no-verify", "--cleanup=whitespace", "-m", message)
    await git(workspace, *GANGLINE_COMMITTER, *args, env=env)
    return await _commit_of(workspace, "HEAD", env)


async def _is_single_commit(workspace: Path, base_tip: str, message: str, env: Mapping[str, str] | None) -> bool:
    """HEAD is one plain commit on ``base_tip`` with ``message``, and nothing is left uncommitted."""
    parents = (await git(workspace, "rev-list", "--parents", "-n1", "HEAD", env=env)).stdout.split()[1:]
    if parents != [base_tip] or await _changed_files(workspace, "HEAD", None, env):
        return False
    body = (await git(workspace, "log", "-1", "--format=%B", "HEAD", env=env)).stdout
    return body.strip() == message.strip()


async def _changed_files(workspace: Path, base: str, commit: str | None, env: Mapping[str, str] | None) -> list[str]:
    """Files that differ between ``base`` and ``commit`` (or the index when None)."""
    which = (base, commit) if commit else ("--cached", base)
    found = await git(workspace, "diff", "--no-ext-diff", "--no-renames", "--name-only", "-z", *which, env=env)
    return [name for name in found.stdout.split("\0") if name]


async def _unmerged_paths(workspace: Path, env: Mapping[str, str] | None) -> tuple[str, ...]:
    found = await git(workspace, "diff", "--name-only", "-z", "--diff-filter=U", env=env)
    return tuple(dict.fromkeys(name for name in found.stdout.split("\0") if name))


async def _conflict_markers(workspace: Path, base_tip: str, env: Mapping[str, str] | None) -> tuple[str, ...]:
    """Files whose lines added since ``base_tip`` include a conflict marker (staged state)."""
    found = await git(workspace, "diff", "--cached", "--check", "--no-color", base_tip, check=False, env=env)
    marked = (line[: -len(_MARKER)].rsplit(":", 1)[0] for line in found.stdout.splitlines() if line.endswith(_MARKER))
    return tuple(dict.fromkeys(marked))


async def _commit_of(cwd: Path, rev: str, env: Mapping[str, str] | None) -> str:
    return (await git(cwd, "rev-parse", "--verify", f"{rev}^{{commit}}", env=env)).stdout.strip()


async def _tip(cwd: Path, rev: str, env: Mapping[str, str] | None) -> str | None:
    found = await git(cwd, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}", check=False, env=env)
    return found.stdout.strip() or None


def _short(commit: str | None) -> str:
    return commit[:12] if commit else "nothing (deleted)"
