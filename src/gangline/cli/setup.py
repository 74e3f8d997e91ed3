"""``gangline init`` (a guided set-up) and ``gangline mcp`` (the people's tools for the person's own assistant).

Init finds what it can (the base branch, the project's stack and the gates it suggests, the
agent CLIs on this machine), proves each gate by running it once, asks only what it cannot
find (which of several CLIs codes, whether to keep a gate that failed, who reviews), and writes
``.gangline/`` and ``.mcp.json``. With ``--yes``, or when nobody is at a terminal, it takes the
defaults: gates that passed are kept, the first CLI found codes, the server reviews.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from gangline.cli.common import choice, console, initialised, print_json
from gangline.cli.text import inert
from gangline.core.profiles import CliKind, QaMode, SandboxMode

if TYPE_CHECKING:
    from gangline.agents.installed import InstalledCli
    from gangline.pipeline.onboarding import Onboarder
    from gangline.project.config import ProjectConfig
    from gangline.project.paths import ProjectPaths
    from gangline.project.stacks import Proposal
    from gangline.project.template import GateChoice

_TAIL_LINES = 8  # of a failed proof's output, shown under it


def register(app: typer.Typer) -> None:
    app.command()(init)
    gates_app = typer.Typer(help="The project's gates: what it has and what its stack suggests; `gates add`.")
    gates_app.callback(invoke_without_command=True)(gates)
    gates_app.command("add")(add_gate)
    app.add_typer(gates_app, name="gates")
    app.command("mcp")(mcp_command)


def init(
    path: Annotated[Path, typer.Argument(help="A directory inside the git repository (default: here).")] = Path("."),
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Ask nothing: take every default (for scripts).")] = False,
    cli: Annotated[
        str | None, typer.Option(help="The coder's agent CLI: claude, codex, gemini, or fake (no model).")
    ] = None,
    qa: Annotated[str | None, typer.Option(help="Who reviews work that passed the gates: server, agent, human.")] = (
        None
    ),
    write_mcp: Annotated[bool, typer.Option("--mcp/--no-mcp", help="Name gangline in .mcp.json.")] = True,
) -> None:
    """Set gangline up in a git repository: find its gates and agent CLIs, prove the gates, write .gangline/."""
    from gangline.agents.installed import installed_clis
    from gangline.project.scaffold import prepare, write_config, write_mcp_json
    from gangline.project.stacks import survey
    from gangline.project.template import Choices

    env = dict(os.environ)
    ask = not yes and sys.stdin.isatty()
    kind = choice(CliKind, cli, "--cli") if cli is not None else None
    qa_mode = choice(QaMode, qa, "--qa") if qa is not None else None
    prepared = prepare(path)
    console.print(f"Setting gangline up in {inert(str(prepared.root))} (base branch {inert(prepared.base_branch)}).")
    found = survey(prepared.root)
    console.print(f"Stack: {inert(', '.join(found.stacks)) if found.stacks else 'nothing gangline knows'}.")
    gates = asyncio.run(_proven(prepared.paths, found.proposals, env, ask))
    coder = _coder_cli(kind, installed_clis(env), ask)
    reviewer = qa_mode or _ask_qa(ask)
    fake_state = str(prepared.paths.state_dir / "fake")
    result = write_config(prepared, Choices(prepared.base_branch, gates, coder, reviewer.value, fake_state), env)
    for created in result.created:
        console.print(f"  created {inert(str(created.relative_to(result.root)))}")
    if write_mcp:
        console.print(f"  {inert(write_mcp_json(result.root, _mcp_server()))}: your own assistant can drive gangline")
    _next_steps(any(gate.keep for gate in gates))


async def _proven(
    paths: ProjectPaths, proposals: Sequence[Proposal], env: Mapping[str, str], ask: bool
) -> tuple[GateChoice, ...]:
    """Each proposal run once; those that passed are kept, a failed one only when the person says so."""
    from gangline.pipeline.onboarding import as_gate, prove
    from gangline.pipeline.rooms import Rooms
    from gangline.project.template import GateChoice

    if not proposals:
        console.print("No gates found to propose: add your checks as [[gate]] tables in .gangline/project.toml.")
        return ()
    console.print("Proving the gates it suggests, each run once in a fresh worktree as the pipeline runs them:")
    chosen = []
    rooms = Rooms(paths, SandboxMode.AUTO, env)
    results = prove(paths, [as_gate(p) for p in proposals], rooms, env)
    for proposal in proposals:
        result = await anext(results)
        mark = "[green]✓[/]" if result.passed else "[red]✗[/]"
        what = f"{proposal.point} hook" if proposal.point else inert(proposal.name)
        console.print(f"  {mark} {what}: {inert(proposal.command)} {result.outcome} "
                      f"({result.duration_s:.1f} s; {inert(proposal.why)})")  # fmt: skip
        if result.passed:
            note = f"{proposal.why}; passed when init ran it"
            chosen.append(GateChoice(proposal.name, proposal.command, note, True, point=proposal.point))
            continue
        for line in result.output.rstrip().splitlines()[-_TAIL_LINES:]:
            console.print(f"      {inert(line)}", highlight=False)
        keep = ask and typer.confirm(f"  Keep {proposal.name!r} anyway?", default=False)
        note = f"{proposal.why}; {result.outcome} when init ran it" + ("" if keep else "; uncomment once it passes")
        chosen.append(GateChoice(proposal.name, proposal.command, note, keep, point=proposal.point))
    await results.aclose()
    return tuple(chosen)


def _coder_cli(given: CliKind | None, found: list[InstalledCli], ask: bool) -> CliKind:
    for cli in found:
        console.print(f"Found {inert(cli.kind.value)} at {inert(cli.path)} ({inert(cli.version)}).")
    if given is not None:
        return given
    if not found:
        console.print(
            "No agent CLI found on PATH: the coder is set up for Claude Code; install it with "
            "`npm install -g @anthropic-ai/claude-code` (or codex, gemini), or try `--cli fake`."
        )
        return CliKind.CLAUDE
    if len(found) == 1 or not ask:
        return found[0].kind
    names = [cli.kind.value for cli in found]
    answer = typer.prompt(f"Which CLI should code? ({', '.join(names)})", default=names[0])
    return choice(CliKind, answer.strip(), "CLI")


def _ask_qa(ask: bool) -> QaMode:
    if not ask:
        return QaMode.SERVER
    answer = typer.prompt(
        "Who reviews work that passed the gates? server (the gates are enough), agent (a QA agent), human",
        default=QaMode.SERVER.value,
    )
    return choice(QaMode, answer.strip(), "QA mode")


def _mcp_server() -> dict[str, object]:
    """How an MCP client starts ``gangline mcp``: by name when this gangline is the one on PATH."""
    on_path = shutil.which("gangline")
    if on_path is not None and Path(on_path).resolve() == Path(sys.argv[0]).resolve():
        return {"type": "stdio", "command": "gangline", "args": ["mcp"]}
    return {"type": "stdio", "command": sys.executable, "args": ["-m", "gangline", "mcp"]}


def _next_steps(have_gates: bool) -> None:
    first = (
        "  1. read .gangline/project.toml: the gates, the coder and the QA mode are set; adjust as you like"
        if have_gates
        else "  1. edit .gangline/project.toml: add your checks as [[gate]] tables (nothing checks the work yet)"
    )
    console.print(
        "Next steps:\n"
        f"{first}\n"
        "  2. commit .gangline/project.toml and .gangline/guide.md (and .mcp.json)\n"
        '  3. add work:  gangline add "Add a login page" --criterion "a user can log in"\n'
        "  4. run it:    gangline run"
    )


def _onboarder(paths: ProjectPaths) -> tuple[Onboarder, ProjectConfig]:
    from gangline.pipeline.onboarding import Onboarder
    from gangline.pipeline.rooms import Rooms
    from gangline.project.config import load_project

    env = dict(os.environ)
    config = load_project(paths, env)
    return Onboarder(paths, Rooms.of(paths, config, env), env), config


def gates(ctx: typer.Context, as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """What the project has (gates, a coder this machine can start) and what its stack and PATH offer."""
    if ctx.invoked_subcommand is not None:
        return
    onboarder, config = _onboarder(initialised())
    found = onboarder.survey(config)
    if as_json:
        print_json(found)
        return
    for gate in config.gates:
        console.print(f"  gate {inert(gate.name)}: {inert(gate.command)}")
    if not config.gates:
        console.print("No gates: nothing checks the agents' work before it is merged.")
    if not found.coders:
        console.print("No coder profile whose CLI this machine can start.")
    for cli in found.clis:
        console.print(f"  found {inert(cli.kind)} at {inert(cli.path)} ({inert(cli.version)})")
    if config.hooks.after_create:
        console.print(f"  after_create hook: {inert(config.hooks.after_create)}")
    for proposal in found.proposals:
        how = (
            f"add {proposal.point} = {inert(repr(proposal.command))} to [hooks] in .gangline/project.toml"
            if proposal.point
            else f"gangline gates add {inert(proposal.name)} {inert(repr(proposal.command))}"
        )
        console.print(f"  suggested {inert(proposal.point or proposal.name)}: {inert(proposal.command)} "
                      f"({inert(proposal.why)}); {how}")  # fmt: skip


def add_gate(
    name: Annotated[str, typer.Argument(metavar="NAME", help="The gate's name (tests, lint, ...).")],
    command: Annotated[str, typer.Argument(metavar="COMMAND", help="The command, run with /bin/sh -c in a worktree.")],
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds it may take.")] = 600.0,
    anyway: Annotated[bool, typer.Option("--anyway", help="Add it even if it fails now.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Prove a gate by running it once in a fresh worktree, then add it to project.toml if it passed."""
    from gangline.cli.common import as_option, from_options
    from gangline.core.errors import ConfigError
    from gangline.pipeline.onboarding import GateIn

    options = {"name": "NAME", "command": "COMMAND", "timeout_s": "--timeout"}
    values = {"name": name, "command": command, "timeout_s": timeout, "anyway": anyway}
    given = from_options(GateIn, values, options)
    onboarder, config = _onboarder(initialised())
    try:
        proof = asyncio.run(onboarder.add_gate(given, config))
    except ConfigError as err:
        raise as_option(err, options) from None
    if as_json:
        print_json(proof)
    else:
        mark = "[green]✓[/]" if proof.passed else "[red]✗[/]"
        console.print(f"{mark} {inert(proof.name)}: {inert(proof.command)} {proof.outcome} ({proof.duration_s:.1f} s)")
        if not proof.passed:
            for line in proof.output.rstrip().splitlines()[-_TAIL_LINES:]:
                console.print(f"    {inert(line)}", highlight=False)
        console.print(inert(proof.note))
    raise typer.Exit(0 if proof.added else 1)


def mcp_command() -> None:
    """Serve the people's MCP tools on stdin/stdout, forwarding to this project's running server."""
    from gangline.cli.mcp_bridge import serve_stdio

    asyncio.run(serve_stdio(initialised(), dict(os.environ)))
