"""The base-branch guard: git hooks that every agent's git runs, refusing to move the base branch.

Only gangline's merge advances the base (DESIGN invariant 2). An agent has a shell, and its
worktree shares the repository's refs, so ``git update-ref``, ``git branch -f`` or a commit made
in the person's checkout would move the base under gangline's feet. Every agent process gets
``core.hooksPath`` through git's environment-borne configuration (``GIT_CONFIG_COUNT``), so every
git it runs, in any checkout of the repository, runs these hooks; the repository itself is not
changed, and people's git and gangline's own are not affected.

- ``reference-transaction`` aborts any ref transaction that would update ``refs/heads/<base>``;
- ``pre-push`` refuses a push to a remote's ``refs/heads/<base>``;
- every other hook forwards to the repository's own (``git rev-parse --git-path hooks`` as the
  person's git sees it), so a project's pre-commit checks still run on its agents' commits.

An agent that deliberately strips those variables from its own environment is not stopped by
this; the guard is for the agent that does what an item (or its own idea) told it to.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from pathlib import Path

from gangline.repo.git import git

# Every hook git knows (githooks(5)), so none of the repository's own is skipped for an agent.
HOOKS = (
    "applypatch-msg",
    "pre-applypatch",
    "post-applypatch",
    "pre-commit",
    "pre-merge-commit",
    "prepare-commit-msg",
    "commit-msg",
    "post-commit",
    "pre-rebase",
    "post-checkout",
    "post-merge",
    "pre-push",
    "pre-receive",
    "update",
    "proc-receive",
    "post-receive",
    "post-update",
    "reference-transaction",
    "push-to-checkout",
    "pre-auto-gc",
    "post-rewrite",
    "sendemail-validate",
    "fsmonitor-watchman",
    "post-index-change",
)
REFUSAL = "gangline: agents may not move the base branch {base}; only gangline's merge does"

_FORWARD = 'hook={own}/{name}\nif [ -x "$hook" ]; then {feed}"$hook" "$@" || exit $?; fi\nexit 0\n'
# Stdin is read once, checked, then handed on to the repository's own hook.
_REF_CHECK = """lines=$(cat)
if [ "$1" = prepared ]; then
  printf '%s\\n' "$lines" | while read -r old new ref; do
    if [ "$ref" = {ref} ]; then echo {refusal} >&2; exit 1; fi
  done || exit 1
fi
"""
_PUSH_CHECK = """lines=$(cat)
printf '%s\\n' "$lines" | while read -r local_ref local_sha remote_ref remote_sha; do
  if [ "$remote_ref" = {ref} ]; then echo {refusal} >&2; exit 1; fi
done || exit 1
"""
_CHECKS = {"reference-transaction": _REF_CHECK, "pre-push": _PUSH_CHECK}


async def repository_hooks(root: Path, env: Mapping[str, str] | None = None) -> Path:
    """Where the repository's own hooks are, as the person's git sees them (``core.hooksPath`` honoured)."""
    out = await git(root, "rev-parse", "--path-format=absolute", "--git-path", "hooks", env=env)
    return Path(out.stdout.strip())


def install(hooks_dir: Path, base_branch: str, own_hooks: Path) -> None:
    """Write the guard's hooks into ``hooks_dir`` (rewritten each time: the base or the repository may change)."""
    hooks_dir.mkdir(parents=True, exist_ok=True)
    ref = shlex.quote(f"refs/heads/{base_branch}")
    refusal = shlex.quote(REFUSAL.format(base=base_branch))
    for name in HOOKS:
        check = _CHECKS.get(name)
        body = "#!/bin/sh\n"
        if check:
            body += check.format(ref=ref, refusal=refusal)
        feed = """printf '%s\\n' "$lines" | """ if check else ""
        body += _FORWARD.format(own=shlex.quote(str(own_hooks)), name=name, feed=feed)
        path = hooks_dir / name
        tmp = path.with_suffix(".tmp")
        tmp.write_text(body)
        tmp.chmod(0o755)
        tmp.replace(path)


def agent_env(hooks_dir: Path) -> dict[str, str]:
    """What an agent's environment carries so that all its git runs the guard's hooks."""
    return {"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "core.hooksPath", "GIT_CONFIG_VALUE_0": str(hooks_dir)}
