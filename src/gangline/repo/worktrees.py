"""Per-item git worktrees and branches: naming, creating, inspecting and pruning them safely."""

from __future__ import annotations

import asyncio
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from gangline.core.errors import ConfigError
from gangline.repo.git import GitResult, git

log = logging.getLogger(__name__)

MAX_SLUG = 48
_SLUG = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
# What `git check-ref-format --branch` refuses, give or take: checked without running git.
_BAD_BRANCH = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]|\.\.|@\{|//|/\.|^[-/.]|[/.]$|\.lock$|^@$")
_SHOWN_PATHS = 5  # dirty paths named in a refusal; the rest are counted


def item_dir_name(item_id: int, slug: str) -> str:
    """``<id>-<slug>`` for a valid item id and slug; ConfigError naming the item otherwise."""
    if isinstance(item_id, bool) or not isinstance(item_id, int) or item_id <= 0:
        raise ConfigError(f"item {item_id!r}", f"expected a positive integer id, found {item_id!r}")
    if not isinstance(slug, str) or len(slug) > MAX_SLUG or not _SLUG.fullmatch(slug):
        raise ConfigError(
            f"item {item_id}: slug",
            f"expected lowercase letters and digits joined by single hyphens, at most {MAX_SLUG} "
            f"characters; found {slug!r}",
        )
    return f"{item_id}-{slug}"


def branch_name(item_id: int, slug: str) -> str:
    """The feature branch of an item: ``gangline/<id>-<slug>``."""
    return f"gangline/{item_dir_name(item_id, slug)}"


def worktree_path(root: Path, item_id: int, slug: str) -> Path:
    """``root/<id>-<slug>``, resolved, and guaranteed to be that very directory inside ``root``.

    Resolving catches a symlink planted at the path: it would lead a prune or a clean elsewhere.
    """
    name = item_dir_name(item_id, slug)
    base = root.resolve()
    path = (base / name).resolve()
    if path != base / name:
        raise ConfigError(f"item {item_id}: worktree", f"{base / name} resolves to {path}, outside {base}")
    return path


@dataclass(frozen=True)
class WorktreeEntry:
    """One entry of ``git worktree list --porcelain``."""

    path: Path
    head: str | None
    branch: str | None  # a full ref, ``refs/heads/...``; None when detached or bare


@dataclass(frozen=True)
class PruneResult:
    pruned: bool
    reason: str


_WORKTREE_KEYS = frozenset({"worktree", "HEAD", "branch", "detached", "bare", "locked", "prunable"})


def parse_worktree_list(porcelain: str) -> list[WorktreeEntry]:
    """Entries of ``git worktree list --porcelain``.

    Not ``-z``, which needs git 2.36; without it a path holding a newline spans lines, so a
    line that starts with no known key continues the value before it.
    """
    entries = []
    for block in porcelain.strip("\n").split("\n\n"):
        fields: dict[str, str] = {}
        key = ""
        for line in block.split("\n"):
            name, _, value = line.partition(" ")
            if name in _WORKTREE_KEYS:
                key, fields[name] = name, value
            elif key:
                fields[key] += "\n" + line
        if "worktree" in fields:
            entries.append(WorktreeEntry(Path(fields["worktree"]), fields.get("HEAD"), fields.get("branch")))
    return entries


async def list_worktrees(repo: Path, env: Mapping[str, str] | None = None) -> list[WorktreeEntry]:
    return parse_worktree_list((await git(repo, "worktree", "list", "--porcelain", env=env)).stdout)


def parse_status_paths(porcelain_z: str) -> list[str]:
    """Paths named by ``git status --porcelain=v1 -z``; a rename's source entry is skipped."""
    paths: list[str] = []
    fields = iter(porcelain_z.split("\0"))
    for field in fields:
        if not field:
            continue
        status, path = field[:2], field[3:]
        paths.append(path)
        if "R" in status or "C" in status:
            next(fields, None)  # the path it was renamed or copied from
    return paths


def truncate_text(text: str, max_bytes: int, what: str) -> str:
    """``text`` cut to ``max_bytes`` of UTF-8 with a marker saying how much was dropped."""
    data = text.encode()
    if len(data) <= max_bytes:
        return text
    kept = data[:max_bytes].decode(errors="ignore")
    return f"{kept}\n[... {what} truncated: {max_bytes} of {len(data)} bytes shown ...]\n"


def index_lock_in_use(lock: Path, worktree: Path) -> bool:
    """Whether a live process may still be working under ``lock`` (a worktree's ``index.lock``).

    Age is the wrong test: a ``git commit`` whose pre-commit hook runs a long test suite holds
    its lock for many minutes, while a lock left by a git killed mid-write is stale at once.
    A lock is live exactly while its git is alive, and a live git either holds the file open
    or (``git commit`` closes it before running hooks) runs with its cwd in the worktree. So
    the lock is in use if any process has it open or sits in the worktree. Processes of other
    users are invisible here; gangline's worktrees are only worked in by gangline's user.
    Without /proc nothing can be known, and the lock is treated as in use.
    """
    target = str(lock)
    try:
        processes = list(os.scandir("/proc"))
    except OSError:
        return True
    for proc in processes:
        if proc.name.isdigit() and (_cwd_inside(proc.path, worktree) or _has_open(proc.path, target)):
            return True
    return False


def _cwd_inside(proc_dir: str, directory: Path) -> bool:
    try:
        cwd = Path(os.readlink(f"{proc_dir}/cwd"))
    except OSError:
        return False
    return cwd == directory or directory in cwd.parents


def _has_open(proc_dir: str, target: str) -> bool:
    try:
        fds = list(os.scandir(f"{proc_dir}/fd"))
    except OSError:
        return False
    for fd in fds:
        try:
            if os.readlink(fd.path) == target:
                return True
        except OSError:
            continue
    return False


class Worktrees:
    """The worktrees of one repository: one per item under ``root``, and the merge workspace."""

    def __init__(
        self,
        repo: Path,
        root: Path,
        merge_dir: Path,
        base_branch: str,
        *,
        env: Mapping[str, str] | None = None,
    ) -> None:
        if not base_branch or _BAD_BRANCH.search(base_branch):
            raise ConfigError("base_branch", f"expected a git branch name, found {base_branch!r}")
        self.repo = repo
        self.root = root
        self.merge_dir = merge_dir
        self.base_branch = base_branch
        self._base_ref = f"refs/heads/{base_branch}"
        self._env = env
        # Adding, pruning and removing worktrees edit the shared .git/worktrees: one at a time.
        # `git worktree list` run meanwhile can fail on a half-written entry, so whoever lists
        # worktrees elsewhere (the merge's base advance) takes it too.
        self.lock = asyncio.Lock()

    async def _git(self, *args: str, check: bool = True, cwd: Path | None = None) -> GitResult:
        return await git(cwd or self.repo, *args, check=check, env=self._env)

    async def _entry(self, path: Path) -> WorktreeEntry | None:
        wanted = path.resolve()
        entries = await list_worktrees(self.repo, self._env)
        return next((e for e in entries if e.path.resolve() == wanted), None)

    async def _tip(self, ref: str) -> str | None:
        result = await self._git("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", check=False)
        return result.stdout.strip() if result.returncode == 0 else None

    async def ensure(self, item_id: int, slug: str) -> Path:
        """The item's worktree on its branch, creating either if missing; work on the branch is kept."""
        path = worktree_path(self.root, item_id, slug)
        branch = branch_name(item_id, slug)
        if _linked_and_unlocked(path, self.repo):
            return path  # the common case (a retry, QA, gates): no lock, no git process
        async with self.lock:
            if await self._reuse(path):
                return path
            if await self._tip(f"refs/heads/{branch}") is None:
                await self._git("branch", "--no-track", branch, self._base_ref)
            path.parent.mkdir(parents=True, exist_ok=True)
            await self._git("worktree", "add", "--quiet", str(path), branch)
            log.info("worktree created", extra={"action": "worktree_add", "item_id": item_id, "path": str(path)})
            return path

    async def _reuse(self, path: Path) -> bool:
        """True if ``path`` is a live worktree; forgets it if its directory was deleted by hand."""
        entry = await self._entry(path)
        if entry is None:
            return False
        if path.is_dir() and (path / ".git").exists():
            await self._clear_stale_index_lock(path)
            return True
        # Registered but gone (or emptied, its .git file with the rest): git still counts its
        # branch as checked out until pruned.
        await self._git("worktree", "prune")
        if path.is_dir() and not any(path.iterdir()):
            path.rmdir()  # emptied by hand, or by an agent whose sandbox kept only the directory
        return False

    async def _clear_stale_index_lock(self, worktree: Path) -> None:
        git_dir = (await self._git("rev-parse", "--absolute-git-dir", cwd=worktree)).stdout.strip()
        lock = Path(git_dir) / "index.lock"
        if not lock.exists() or await asyncio.to_thread(index_lock_in_use, lock, worktree.resolve()):
            return
        lock.unlink(missing_ok=True)
        log.warning("removed a stale index.lock", extra={"action": "index_lock_removed", "path": str(lock)})

    async def branch_tip(self, item_id: int, slug: str) -> str | None:
        return await self._tip(f"refs/heads/{branch_name(item_id, slug)}")

    async def commits_ahead(self, item_id: int, slug: str) -> int:
        """Commits on the item's branch that the base branch does not have."""
        span = f"{self._base_ref}..refs/heads/{branch_name(item_id, slug)}"
        return int((await self._git("rev-list", "--count", span)).stdout.strip())

    async def dirty_paths(self, path: Path) -> list[str]:
        """Tracked files changed and untracked files not ignored, in the worktree at ``path``."""
        return await dirty_paths(path, self._env)

    async def diff_against_base(self, item_id: int, slug: str, max_bytes: int = 200_000) -> str:
        """What the item's branch changed since it left the base branch, cut to ``max_bytes``."""
        span = f"{self._base_ref}...refs/heads/{branch_name(item_id, slug)}"
        diff = await self._git("diff", "--no-color", "--no-ext-diff", span)
        return truncate_text(diff.stdout, max_bytes, "diff")

    async def would_keep(
        self, item_id: int, slug: str, merged_tip: str | None, keep_branch: bool = False
    ) -> str | None:
        """Why ``prune`` would keep the item's worktree now, or None when it would remove it."""
        path = worktree_path(self.root, item_id, slug)
        branch = branch_name(item_id, slug)
        async with self.lock:
            tip = None if keep_branch else await self._tip(f"refs/heads/{branch}")
            return await self._prune_refusal(path, await self._entry(path), branch, tip, merged_tip)

    async def prune(self, item_id: int, slug: str, merged_tip: str | None, keep_branch: bool = False) -> PruneResult:
        """Remove the item's worktree and branch if no work can be lost; otherwise keep them and say why.
        ``keep_branch``: only the worktree goes (the branch, with whatever commits it has, stays)."""
        path = worktree_path(self.root, item_id, slug)
        branch = branch_name(item_id, slug)
        async with self.lock:
            entry = await self._entry(path)
            tip = await self._tip(f"refs/heads/{branch}")
            refusal = await self._prune_refusal(path, entry, branch, None if keep_branch else tip, merged_tip)
            if refusal:
                return PruneResult(False, refusal)
            if entry is not None and path.is_dir():
                removed = await self._git("worktree", "remove", str(path), check=False)
                if removed.returncode != 0:
                    return PruneResult(False, f"git refused to remove {path}: {_first_line(removed.stderr)}")
            elif entry is not None:
                await self._git("worktree", "prune")  # deleted by hand: forget it
            if tip is not None and not keep_branch:
                # Compare-and-set: a commit landing since the checks above keeps the branch.
                deleted = await self._git("update-ref", "-d", f"refs/heads/{branch}", tip, check=False)
                if deleted.returncode != 0:
                    return PruneResult(False, f"kept {branch}: {_first_line(deleted.stderr)}")
        log.info("worktree pruned", extra={"action": "worktree_prune", "item_id": item_id, "path": str(path)})
        if keep_branch:
            return PruneResult(True, f"removed {path}; kept {branch}" if entry else "no worktree to remove")
        return PruneResult(True, f"removed {path} and {branch}" if entry or tip else "nothing left to remove")

    async def _prune_refusal(
        self, path: Path, entry: WorktreeEntry | None, branch: str, tip: str | None, merged_tip: str | None
    ) -> str | None:
        if entry is None and path.exists():
            return f"{path} exists but is not a registered git worktree; left alone"
        if entry is not None and path.is_dir():
            refusal = await self._worktree_refusal(path, branch)
            if refusal:
                return refusal
        if tip is not None and tip != merged_tip:
            ahead = int((await self._git("rev-list", "--count", f"{self._base_ref}..{tip}")).stdout.strip())
            if ahead:
                return f"{branch} has {ahead} commit(s) that are not on {self.base_branch} and were not merged"
        return None

    async def _worktree_refusal(self, path: Path, branch: str) -> str | None:
        dirty = await self.dirty_paths(path)
        if dirty:
            shown = ", ".join(dirty[:_SHOWN_PATHS]) + (", ..." if len(dirty) > _SHOWN_PATHS else "")
            return f"{path} has {len(dirty)} uncommitted or untracked path(s): {shown}"
        on_branch = await self._git("symbolic-ref", "--quiet", "HEAD", cwd=path, check=False)
        if on_branch.returncode == 0:
            return None  # its commits live on a branch, which outlives the worktree
        head = (await self._git("rev-parse", "HEAD", cwd=path)).stdout.strip()
        for ref in (f"refs/heads/{branch}", self._base_ref):
            if (await self._git("merge-base", "--is-ancestor", head, ref, check=False)).returncode == 0:
                return None
        return f"{path} has a detached HEAD at {head[:12]} with commits on no branch"

    async def ensure_merge_workspace(self) -> Path:
        """A detached worktree at ``merge_dir`` for squash merges, created once and reused."""
        path = self.merge_dir.resolve()
        async with self.lock:
            if await self._reuse(path):
                return path
            path.parent.mkdir(parents=True, exist_ok=True)
            await self._git("worktree", "add", "--quiet", "--detach", str(path), self._base_ref)
            return path


def private_dir(worktree: Path) -> Path | None:
    """A linked worktree's own directory in the repository's git dir (``.git/worktrees/<name>``), read from its
    ``.git`` file; None when ``worktree`` is none. Whatever is kept there goes when git forgets the worktree."""
    try:
        pointer = (worktree / ".git").read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return None
    if not pointer.startswith("gitdir: "):
        return None
    found = Path(pointer.removeprefix("gitdir: "))
    found = found if found.is_absolute() else worktree / found
    return found if found.is_dir() else None


def _linked_and_unlocked(path: Path, repo: Path) -> bool:
    """``path`` is a linked worktree of ``repo`` with no index.lock, read from the files git keeps.

    ``<path>/.git`` names the worktree's git dir, and that dir's ``gitdir`` file points back
    at ``<path>/.git``; anything else (missing, moved, a lock to inspect) takes the slow path.
    """
    git_dir = private_dir(path)
    if git_dir is None:
        return False
    try:
        back = Path((git_dir / "gitdir").read_text().strip())
    except OSError:
        return False
    inside_repo = git_dir.resolve().is_relative_to((repo / ".git").resolve())
    return inside_repo and back.resolve() == (path / ".git").resolve() and not (git_dir / "index.lock").exists()


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "no explanation")


async def dirty_paths(path: Path, env: Mapping[str, str] | None = None) -> list[str]:
    """Tracked files changed and untracked files not ignored, in the worktree at ``path`` (a build node's too)."""
    result = await git(path, "status", "--porcelain=v1", "-z", "--untracked-files=all", env=env)
    return parse_status_paths(result.stdout)
