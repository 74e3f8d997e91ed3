"""What a build node's push may do to the project's repository: move its run's branch, from the recorded commit.

The server serves the repository to nodes over git's smart HTTP protocol (``git http-backend``).
For a push it runs ``receive-pack`` with this module's ``pre-receive`` hook and environment:
the push must update exactly the run's branch, from the commit the server recorded when it
offered the run (what ``--force-with-lease`` asks on the node's side, checked again here), and
may not delete it. The branch is checked out in the server's worktree of the item, which no agent
uses while a node has the run: ``receive.denyCurrentBranch=ignore`` lets the push move it, and the
server then checks the files out (``RemoteRuns.finish``).
"""

from __future__ import annotations

from pathlib import Path

from gangline.repo.git import GANGLINE_COMMITTER, git
from gangline.repo.worktrees import item_dir_name

ZERO = "0" * 40
_HOOK = """#!/bin/sh
# gangline: a build node's push moves only its run's branch, from the commit the server recorded.
base="${GANGLINE_PUSH_BASE:-%(zero)s}"
while read -r old new ref; do
  if [ "$ref" != "$GANGLINE_PUSH_REF" ]; then
    echo "gangline: this run may push only $GANGLINE_PUSH_REF, not $ref" >&2; exit 1
  fi
  if [ "$old" != "$base" ]; then
    echo "gangline: $ref is at $old, not at $base as recorded for this run: refused" >&2; exit 1
  fi
  if [ "$new" = "%(zero)s" ]; then
    echo "gangline: a run may not delete its branch" >&2; exit 1
  fi
done
"""


def install(hooks_dir: Path) -> None:
    """Write the ``pre-receive`` hook pushes from nodes run (rewritten each start)."""
    hooks_dir.mkdir(parents=True, exist_ok=True)
    path = hooks_dir / "pre-receive"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(_HOOK % {"zero": ZERO})
    tmp.chmod(0o755)
    tmp.replace(path)


def push_env(hooks_dir: Path, branch: str, base: str | None) -> dict[str, str]:
    """The environment ``git http-backend`` runs a node's push in: the hook, and what it allows."""
    config = {"core.hooksPath": str(hooks_dir), "receive.denyCurrentBranch": "ignore"}
    env = {"GIT_CONFIG_COUNT": str(len(config))}
    for i, (key, value) in enumerate(config.items()):
        env |= {f"GIT_CONFIG_KEY_{i}": key, f"GIT_CONFIG_VALUE_{i}": value}
    return env | {"GANGLINE_PUSH_REF": f"refs/heads/{branch}", "GANGLINE_PUSH_BASE": base or ZERO}


def merge_branch(item_id: int, slug: str) -> str:
    """The branch a node's mergemaster fetches the merge from and pushes its resolution to."""
    return f"gangline/merge-{item_dir_name(item_id, slug)}"  # one level, as the sandbox's git keeps branches


async def lend_workspace(workspace: Path, branch: str) -> str:
    """The merge workspace as the mergemaster finds it (a conflicted squash, markers and all, or a squash
    the gates refused), committed as ``branch`` for a node to fetch; its tip, the push's recorded base."""
    await git(workspace, "add", "--all")
    if (await git(workspace, "diff", "--cached", "--quiet", check=False)).returncode:
        message = "gangline: the merge as the mergemaster finds it"
        await git(workspace, *GANGLINE_COMMITTER, "commit", "--quiet", "--no-verify", "-m", message)
    tip = (await git(workspace, "rev-parse", "HEAD")).stdout.strip()
    await git(workspace, "update-ref", f"refs/heads/{branch}", tip)
    return tip


async def take_back_workspace(workspace: Path, branch: str) -> None:
    """What the node's mergemaster pushed, checked out in the merge workspace (then judged as a local
    mergemaster's work is); the branch removed."""
    await git(workspace, "checkout", "--force", "--quiet", "--detach", f"refs/heads/{branch}")
    await git(workspace, "update-ref", "-d", f"refs/heads/{branch}")
