"""The ``project.toml`` that ``gangline init`` writes: every setting shown, and what the person chose.

What init found fills it in: the gates it proposed for the project's stack (each with the
outcome of its proof: a gate that failed is written commented out, with why), the coder on an
agent CLI this machine has (its gates' commands allowed to Claude Code), and the QA mode.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass

from gangline.core.profiles import CliKind

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
qa_mode = @QA_MODE@

# Seconds an agent may print nothing before its processes are killed and the run fails.
inactivity_timeout_s = 300.0

# Seconds a done item waits before it is archived (0: at once).
archive_after_s = 86400.0

# true: a new item starts as soon as its dependencies are done and a coder is free. false: a
# triage gate; new items wait in the backlog until a person starts them (or sets a timer).
auto_start = true

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

# What the runs keep on disk: an ended run's log is compressed after compress_after_s and removed,
# with old gate output, after delete_after_s; done items' worktrees are pruned when old and safe;
# over max_bytes the oldest done items' logs, then their worktrees, go first.
[retention]
compress_after_s = 172800.0  # 2 days
delete_after_s = 2592000.0  # 30 days
max_bytes = "5GiB"
sweep_every_s = 600.0

# Permissions for agents run under `gangline serve` (which answers Claude Code's permission prompts).
# Rules: a tool name ("Write"), a prefix of a Bash command ("Bash(git status:*)"), or a pattern
# ("mcp__gangline__*"). Deny wins over allow; anything else asks a person, who may "always allow".
[permissions]
allow = []
deny = []
ask_timeout_s = 300.0  # then the request is denied with a message the agent can act on
unattended = false  # true: deny at once whatever no rule allows (nobody is watching)

# Gates: checks the server runs (with /bin/sh -c, in the worktree) after every coder run and again
# on the merge; exit status 0 passes.
@GATES@
# Hooks: commands run in a worktree at fixed points, in the gates' sandbox, each bounded by
# timeout_s; one that fails counts as failed gates do. after_create readies a new worktree (and
# the merge workspace before each merge's gates); before_run and after_run surround every coder
# and QA run; before_remove runs before a done item's worktree is pruned.
@HOOKS@
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
@CODER@
# A QA agent, for qa_mode = "agent":
@QA@
# A mergemaster, which resolves a squash merge that conflicts or fails the gates:
@MERGEMASTER@"""


CLAUDE_CODER_TOOLS = (
    "Bash(git status:*)", "Bash(git diff:*)", "Bash(git log:*)", "Bash(git add:*)", "Bash(git commit:*)",
)  # fmt: skip


@dataclass(frozen=True)
class GateChoice:
    """A proposed gate (or hook: ``point``), what its proof said (``note``), and whether it is written or only shown."""

    name: str
    command: str
    note: str  # "package.json has a test script; passed when init ran it (1.2 s)"
    keep: bool
    timeout_s: float = 600.0
    point: str | None = None  # "after_create": written in [hooks]


@dataclass(frozen=True)
class Choices:
    """What ``gangline init`` found and the person chose; the defaults are a bare init's."""

    base_branch: str
    gates: tuple[GateChoice, ...] = ()
    coder_cli: CliKind = CliKind.CLAUDE
    qa_mode: str = "server"
    fake_state: str = ".gangline/fake"  # where the fake agents keep their attempt counters (cli = "fake")


def project_toml(choices: Choices) -> str:
    """The ``project.toml`` for ``choices``."""
    return (
        _PROJECT_TOML.replace("@BASE_BRANCH@", json.dumps(choices.base_branch))
        .replace("@QA_MODE@", json.dumps(choices.qa_mode))
        .replace("@GATES@", _gates(tuple(g for g in choices.gates if g.point is None)))
        .replace("@HOOKS@", _hooks(tuple(g for g in choices.gates if g.point is not None)))
        .replace("@CODER@", _coder(choices))
        .replace("@QA@", _role_block(choices, "qa", QA_EXAMPLE, choices.qa_mode == "agent"))
        .replace("@MERGEMASTER@", _role_block(choices, "mergemaster", MERGEMASTER_EXAMPLE, False))
    )


def allowed_prefix(command: str) -> str:
    """The part of a gate's command that names what it runs: ``npm run lint``, ``python3 -m pytest``, ``go test``."""
    try:
        words = shlex.split(command)
    except ValueError:
        words = command.split()
    if not words:
        return command
    taken, rest = (words[:3], words[3:]) if len(words) >= 3 and words[1] == "-m" else (words[:1], words[1:])
    for word in rest:
        if word.startswith("-") or "/" in word or word == "." or any(c in word for c in "|&;<>$`"):
            break
        taken.append(word)
    return " ".join(taken)


def gate_block(gate: GateChoice) -> str:
    """One gate as TOML, under a comment saying what suggested it and how its proof went; commented out unless kept."""
    table = (
        f"[[gate]]\nname = {json.dumps(gate.name)}\ncommand = {json.dumps(gate.command)}\n"
        f"timeout_s = {gate.timeout_s!r}\n"
    )
    return f"# {gate.note}\n" + (table if gate.keep else commented(table))


def _gates(gates: tuple[GateChoice, ...]) -> str:
    if not gates:
        return "# None yet. An example:\n" + commented(GATE_EXAMPLE)
    return "\n".join(gate_block(gate) for gate in gates)


HOOKS_EXAMPLE = """\
[hooks]
after_create = "npm ci"
before_run = "docker compose up -d db"
after_run = "git status --short"
before_remove = "docker compose down"
timeout_s = 600.0

# A directory of the repository with its own set-up (run with after_create) and tear-down
# (with before_remove), run inside it:
[[component]]
dir = "web"
setup = "npm ci"
teardown = "rm -rf node_modules"
"""


def _hooks(hooks: tuple[GateChoice, ...]) -> str:
    if not hooks:
        return "# None yet. An example:\n" + commented(HOOKS_EXAMPLE)
    lines = ["[hooks]"]
    for hook in hooks:
        line = f"{hook.point} = {json.dumps(hook.command)}\n"
        lines.append(f"# {hook.note}\n" + (line if hook.keep else commented(line)))
    return "\n".join(lines) + "timeout_s = 600.0\n"


def _coder(choices: Choices) -> str:
    if choices.coder_cli is CliKind.CLAUDE:
        gates = (g for g in choices.gates if g.keep and g.point is None)
        tools = [*CLAUDE_CODER_TOOLS, *(f"Bash({allowed_prefix(g.command)}:*)" for g in gates)]
        return (
            '[[agent]]\nname = "coder"\nrole = "coder"\ncli = "claude"\nmodel = "sonnet"\nmax_turns = 50\n'
            'max_budget_usd = 5.0\npermission_mode = "acceptEdits"\n'
            "# Edits are accepted; shell commands need allowing. The gates' commands are; add others, e.g. "
            '"Bash(pytest:*)".\n'
            f"allowed_tools = {json.dumps(list(dict.fromkeys(tools)))}\n"
            "disallowed_tools = []\nextra_args = []\n"
        )
    return _plain("coder", choices)


def _role_block(choices: Choices, role: str, claude_example: str, active: bool) -> str:
    block = claude_example if choices.coder_cli is CliKind.CLAUDE else _plain(role, choices)
    return block if active else commented(block)


def _plain(role: str, choices: Choices) -> str:
    """A profile on ``choices.coder_cli`` with that CLI's defaults (the fake's: its shipped scenario for the role)."""
    kind = choices.coder_cli
    table = f'[[agent]]\nname = "{role}"\nrole = "{role}"\ncli = "{kind.value}"\n'
    if kind is CliKind.FAKE:
        from gangline.fake.cli import shipped_scenario

        args = ["--scenario", str(shipped_scenario(f"{role}.json")), "--scenario-state", f"{choices.fake_state}/{role}"]
        table += f"extra_args = {json.dumps(args)}\n"
    return table


def commented(block: str) -> str:
    return "".join(f"# {line}\n" for line in block.splitlines())
