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
