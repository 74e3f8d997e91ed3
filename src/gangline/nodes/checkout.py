"""A build node's copy of the project: one clone fetched from the server, a worktree per item, the push back.

The clone lives in the node's home (``repo/``) and fetches every branch from the server's
``/node/git`` with the node's credential in a header (never in a URL or argv, which ``ps``
shows). Each item gets a worktree (``worktrees/<id>-<slug>``) reset to the branch as the
server has it, so a run always starts from the server's truth, whatever an earlier run on this
node left. The push moves the item's branch on the server with ``--force-with-lease`` against
the commit the server recorded, and names its run and lease for the server to check.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass, field
from pathlib import Path

from gangline.core.errors import GitError
from gangline.core.nodewire import EPOCH_HEADER, RUN_HEADER, NodeRun
from gangline.core.profiles import Role
from gangline.nodes.client import NodeClient
from gangline.repo.git import GANGLINE_COMMITTER, git

_FETCH_S = 300.0


@dataclass
class Checkout:
    """The node's clone of the project, fetched from ``/node/git`` of the server ``client`` talks to now."""

    home: Path
    client: NodeClient
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)  # one git command on the shared clone at a time

    @property
    def repo(self) -> Path:
        return self.home / "repo"

    def _env(self, *headers: str) -> dict[str, str]:
        """git's environment: the credential (and a push's run and lease) as HTTP headers, nothing asked on a tty."""
        values = [f"Authorization: Bearer {self.client.credential}", *headers]
        env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_CONFIG_COUNT": str(len(values))}
        for i, value in enumerate(values):
            env |= {f"GIT_CONFIG_KEY_{i}": "http.extraHeader", f"GIT_CONFIG_VALUE_{i}": value}
        return env

    async def prepare(self, run: NodeRun) -> Path:
        """The item's worktree at its branch as the server has it now (the shared clone fetched first)."""
        if run.branch is None or run.item_id is None or run.item_slug is None:
            raise GitError(("worktree",), self.home, None, f"run {run.run_id} names no branch to work on")
        merging = run.role == Role.MERGEMASTER.value  # the merge, on a branch of its own: a worktree of its own
        path = self.home / "worktrees" / f"{'merge-' if merging else ''}{run.item_id}-{run.item_slug}"
        remote = f"refs/remotes/origin/{run.branch}"
        async with self._lock:
            await self._fetch()
            if not (path / ".git").exists():
                path.parent.mkdir(parents=True, exist_ok=True)
                await git(self.repo, "worktree", "prune")
                await git(self.repo, "worktree", "add", "-f", "-B", run.branch, str(path), remote)
                return path
        await git(path, "checkout", "-f", "-B", run.branch, remote)
        await git(path, "reset", "--hard", "-q", remote)
        await git(path, "clean", "-fdq")  # untracked leftovers of an earlier run; ignored build output stays
        return path

    async def _fetch(self) -> None:
        if not (self.repo / ".git").exists():
            self.repo.mkdir(parents=True, exist_ok=True)
            await git(self.repo, "init", "-q")
            await git(self.repo, "remote", "add", "origin", f"{self.client.server}/node/git")
        # The server that answered last: after a failover, the standby that took over.
        await git(self.repo, "remote", "set-url", "origin", f"{self.client.server}/node/git")
        spec = "+refs/heads/*:refs/remotes/origin/*"
        await git(self.repo, "fetch", "-q", "--prune", "origin", spec, env=self._env(), timeout_s=_FETCH_S)

    async def push(self, run: NodeRun, path: Path, epoch: int) -> str | None:
        """Push the worktree's commits to the run's branch; the new tip, or None when there was nothing new.

        A mergemaster's resolution left uncommitted is committed first (on the server, the merge takes
        the workspace as it is; here only commits travel).
        """
        if run.role == Role.MERGEMASTER.value:
            await git(path, "add", "--all")
            if (await git(path, "diff", "--cached", "--quiet", check=False)).returncode:
                message = "gangline: the mergemaster's resolution"
                await git(path, *GANGLINE_COMMITTER, "commit", "--quiet", "--no-verify", "-m", message)
        head = (await git(path, "rev-parse", "HEAD")).stdout.strip()
        if run.branch is None or head == run.base:
            return None
        ref = f"refs/heads/{run.branch}"
        lease = f"--force-with-lease={ref}:{run.base or ''}"
        env = self._env(f"{RUN_HEADER}: {run.run_id}", f"{EPOCH_HEADER}: {epoch}")
        origin = f"{self.client.server}/node/git"
        await git(path, "push", "-q", lease, origin, f"HEAD:{ref}", env=env, timeout_s=_FETCH_S)
        return head
