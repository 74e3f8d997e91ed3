"""``gangline init``: write ``.gangline/`` (settings, ignore rules, the agents' guide) into a repository."""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from gangline.core.errors import ConfigError
from gangline.core.guide import GUIDE
from gangline.project.config import load_project_text
from gangline.project.paths import ProjectPaths, find_root, git_output


@dataclass(frozen=True)
class InitResult:
    root: Path
    created: list[Path]  # files written; an existing file is never replaced
    base_branch: str


GITIGNORE = """\
# gangline's runtime state (the database, runs, worktrees, hooks, secrets, the server file, and
# whatever later versions write) is local to this machine: everything here is ignored but the
# files meant to be committed.
*
!.gitignore
!project.toml
!guide.md
"""
# What earlier versions wrote: replaced by GITIGNORE when a server opens the project.
_OLD_GITIGNORES = (
    "# gangline's runtime state: local to this machine, never committed.\n"
    "# project.toml and guide.md are meant to be committed.\n"
    "state.db*\nruns/\nworktrees/\nmerge/\ngates/\n*.lock\n",
)

GATE_EXAMPLE = """\
[[gate]]
name = "tests"
command = "pytest -q"
timeout_s = 600.0
"""

QA_EXAMPLE = """\
[[agent]]
name = "qa"
role = "qa"
cli = "claude"
model = "sonnet"
max_turns = 30
max_budget_usd = 2.0
permission_mode = "default"
allowed_tools = ["Read", "Grep", "Glob", "Bash(git diff:*)", "Bash(git log:*)"]
disallowed_tools = ["Edit", "Write", "NotebookEdit"]
"""

MERGEMASTER_EXAMPLE = """\
[[agent]]
name = "mergemaster"
role = "mergemaster"
cli = "claude"
model = "sonnet"
max_turns = 30
max_budget_usd = 2.0
permission_mode = "acceptEdits"
allowed_tools = ["Bash(git status:*)", "Bash(git diff:*)", "Bash(git add:*)", "Bash(git commit:*)"]
"""

_PROJECT_TOML = """\
# gangline settings for this repository. Every setting is shown with its default value.
# Commit this file; keep secrets out of it (see "env" at the end).

# The branch finished work is merged into. Agents never touch it: only gangline's merge step
# advances it.
base_branch = @BASE_BRANCH@

# Failed coder attempts (gates or QA) before the item is blocked for a person to look at.
max_retries = 3

# Who reviews work that passed the gates before it is merged:
#   "server"  passing the gates is enough
#   "agent"   a QA agent checks the diff against each acceptance criterion (needs a role = "qa" [[agent]])
#   "human"   a person approves or rejects
qa_mode = "server"

# Seconds an agent may print nothing before its processes are killed and the run fails.
inactivity_timeout_s = 300.0

# Seconds a done item waits before it is archived (0: at once).
archive_after_s = 86400.0

# How many agents of each role may run at once.
[concurrency]
coder = 2
qa = 1
mergemaster = 1

# A hard rate limit parks the item and resumes the same session after the reset; no retry is spent.
[rate_limit]
default_wait_s = 300.0  # wait this long when the CLI reports no reset time
max_wait_s = 21600.0  # a reset further away than this blocks the item instead of parking it
margin_s = 5.0  # added to the reported reset time

# Permissions for agents run under `gangline serve` (which answers Claude Code's permission prompts).
# Rules: a tool name ("Write"), a prefix of a Bash command ("Bash(git status:*)"), or a pattern
# ("mcp__gangline__*"). Deny wins over allow; anything else asks a person, who may "always allow".
[permissions]
allow = []
deny = []
ask_timeout_s = 300.0  # then the request is denied with a message the agent can act on
unattended = false  # true: deny at once whatever no rule allows (nobody is watching)

# Gates: checks the server runs (with /bin/sh -c, in the worktree) after every coder run and again
# on the merge; exit status 0 passes. None yet. An example:
@GATE_EXAMPLE@
# Agent profiles: how each agent is launched. Keys an [[agent]] table may have:
#   name, role ("coder", "qa", "mergemaster"), cli ("claude", "codex", "gemini", "fake"),
#   command          the CLI binary (default: "claude", "codex" or "gemini" on PATH)
#   fallback         another profile of the same role to use at once while this one is rate-limited
#   provider         { base_url = "...", key_env = "NAME_OF_KEY_VARIABLE" }: another model endpoint
#   sandbox, approval_mode   codex's sandbox and approval policy; gemini's approval mode
#                    (Claude Code's permission settings below are not theirs)
#   model, max_turns, max_budget_usd (also enforced by the server)
#   permission_mode  "default", "acceptEdits", "auto", "dontAsk", "plan" or "bypassPermissions"
#   permission_prompt_tool, allowed_tools, disallowed_tools, extra_args
#   system_prompt    text appended to the CLI's system prompt
#   prompt_template  Jinja2 source; default: the built-in template for the role
# Codex and Gemini report tokens, not dollars: a [price."<model>"] table (input, output,
# cache_read, cache_write: dollars per million tokens) prices their runs and lets a budget hold.
#   env              extra variables for the CLI; a value "${NAME}" is read from gangline's
#                    environment, e.g. env = { ANTHROPIC_API_KEY = "${ANTHROPIC_API_KEY}" }
[[agent]]
name = "coder"
role = "coder"
cli = "claude"
model = "sonnet"
max_turns = 50
max_budget_usd = 5.0
permission_mode = "acceptEdits"
# Edits are accepted; shell commands need allowing. Add your gates' commands, e.g. "Bash(pytest:*)".
allowed_tools = ["Bash(git status:*)", "Bash(git diff:*)", "Bash(git log:*)", "Bash(git add:*)", "Bash(git commit:*)"]
disallowed_tools = []
extra_args = []

# A QA agent, for qa_mode = "agent":
@QA_EXAMPLE@
# A mergemaster, which resolves a squash merge that conflicts or fails the gates:
@MERGEMASTER_EXAMPLE@"""


def project_toml(base_branch: str) -> str:
    """The ``project.toml`` that ``gangline init`` writes."""
    text = _PROJECT_TOML.replace("@BASE_BRANCH@", json.dumps(base_branch))
    for marker, block in (("@GATE_EXAMPLE@", GATE_EXAMPLE), ("@QA_EXAMPLE@", QA_EXAMPLE)):
        text = text.replace(marker, _commented(block))
    return text.replace("@MERGEMASTER_EXAMPLE@", _commented(MERGEMASTER_EXAMPLE))


def init_project(start: Path, env: Mapping[str, str]) -> InitResult:
    """Create ``.gangline/`` in the repository holding ``start``; refuse if it is already there."""
    root = _work_tree_root(start)
    paths = ProjectPaths(root)
    if paths.config_file.exists():
        raise ConfigError(str(root), f"already initialised; edit {paths.config_file} instead")
    # A repository without commits still has a current branch; only a detached HEAD has none.
    base_branch = git_output(root, "symbolic-ref", "--short", "-q", "HEAD") or "main"
    text = project_toml(base_branch)
    load_project_text(text, str(paths.config_file), env)  # never write a file that would not load
    try:
        paths.state_dir.mkdir(exist_ok=True)
    except OSError as err:
        raise ConfigError(str(paths.state_dir), f"cannot create the directory: {err.strerror or err}") from None
    created = []
    for path, body in ((paths.state_dir / ".gitignore", GITIGNORE), (paths.guide_file, GUIDE)):
        if _write_new(path, body):
            created.append(path)
    # Written last, so that its presence means the rest was written too.
    if not _write_new(paths.config_file, text):
        raise ConfigError(str(root), f"already initialised; edit {paths.config_file} instead")
    return InitResult(root, [*created, paths.config_file], base_branch)


def refresh_gitignore(paths: ProjectPaths) -> bool:
    """Write ``.gangline/.gitignore`` if it is missing or one an earlier gangline wrote; a person's own edit stays."""
    path = paths.state_dir / ".gitignore"
    try:
        current = path.read_text(encoding="utf-8") if path.exists() else None
    except OSError:
        return False
    if current is not None and current not in _OLD_GITIGNORES:
        return False
    if current is not None:
        path.unlink()
    return _write_new(path, GITIGNORE)


def _work_tree_root(start: Path) -> Path:
    if git_output(start, "rev-parse", "--is-bare-repository") == "true":
        raise ConfigError(str(start), "is a bare git repository; run gangline init in a clone with a working tree")
    if git_output(start, "rev-parse", "--is-inside-work-tree") == "false":
        raise ConfigError(str(start), "is inside a .git directory; run gangline init in the working tree")
    return find_root(start)


def _commented(block: str) -> str:
    return "".join(f"# {line}\n" for line in block.splitlines())


def _write_new(path: Path, text: str) -> bool:
    """Write ``path`` whole or not at all; False, writing nothing, when it already exists."""
    if path.exists():
        return False
    temp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    try:
        with open(temp, "x", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        # Unlike a rename, a hard link never replaces a file that appeared in the meantime.
        os.link(temp, path)
    except FileExistsError:
        return False
    except OSError as err:
        raise ConfigError(str(path), f"cannot be written: {err.strerror or err}") from None
    finally:
        temp.unlink(missing_ok=True)
    return True
