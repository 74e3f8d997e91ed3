"""The ``gangline`` command line: the edge where settings are read and errors become exit codes."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import uuid
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from pydantic import BaseModel
from rich.console import Console
from typer.exceptions import TyperException

from gangline import logs
from gangline.bench import ingest
from gangline.bus import Bus
from gangline.config import AgentProfile, CliKind, RunnerSettings, parse_model
from gangline.demo import claude_is_configured, run_demo
from gangline.errors import ConfigError, GanglineError
from gangline.events import RunOutcome
from gangline.render import Renderer
from gangline.runlog import replay
from gangline.runner import Runner, RunRequest

_M = TypeVar("_M", bound=BaseModel)

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    help="gangline: run coding agents on work items.",
)
bench_app = typer.Typer(no_args_is_help=True, help="Measure gangline's hot paths.")
app.add_typer(bench_app, name="bench")
console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)


def _exit_for(outcome: RunOutcome) -> int:
    return 0 if outcome is RunOutcome.SUCCEEDED else 1


@app.command()
def demo(
    agent: Annotated[
        str, typer.Option(help="auto, claude or fake. auto uses claude when it is installed and configured.")
    ] = "auto",
    rate: Annotated[float, typer.Option(help="Lines per second the fake agent replays.")] = 60.0,
    model: Annotated[str, typer.Option(help="Model for the real claude CLI.")] = "sonnet",
) -> None:
    """Run one agent on a throwaway git repository and show what it does, live."""
    env = dict(os.environ)
    if agent == "auto":
        kind = CliKind.CLAUDE if claude_is_configured(env) else CliKind.FAKE
    else:
        kind = _cli_kind(agent, "--agent")
    summary = asyncio.run(run_demo(console, kind, rate, model, env))
    if kind is CliKind.FAKE:
        console.print("[dim]The fake agent replayed a recorded Claude Code session; the repository is unchanged.[/]")
    raise typer.Exit(_exit_for(summary.outcome))


@app.command()
def run(
    prompt: Annotated[str, typer.Argument(help="What the agent should do.")],
    cwd: Annotated[Path, typer.Option(help="Working directory for the agent.")] = Path("."),
    agent: Annotated[str, typer.Option(help="claude or fake.")] = "claude",
    binary: Annotated[str | None, typer.Option(help="Path of the agent CLI.")] = None,
    model: Annotated[str | None, typer.Option()] = None,
    resume: Annotated[str | None, typer.Option(help="Session id to resume.")] = None,
    max_turns: Annotated[int | None, typer.Option()] = None,
    max_budget_usd: Annotated[float | None, typer.Option()] = None,
    inactivity_timeout: Annotated[float, typer.Option(help="Seconds without output before the run is killed.")] = 300.0,
    log_dir: Annotated[Path, typer.Option(help="Where run logs go.")] = Path(".gangline/runs"),
    extra_arg: Annotated[list[str] | None, typer.Option(help="Extra argument for the CLI (repeatable).")] = None,
) -> None:
    """Run one agent in a directory and render its events live."""
    profile = _build(
        AgentProfile,
        "profile",
        name=agent,
        cli=_cli_kind(agent, "--agent"),
        command=binary,
        model=model,
        max_turns=max_turns,
        max_budget_usd=max_budget_usd,
        extra_args=tuple(extra_arg or ()),
    )
    settings = _build(RunnerSettings, "settings", inactivity_timeout_s=inactivity_timeout)
    run_id = f"run-{uuid.uuid4().hex[:12]}"

    async def go() -> RunOutcome:
        runner = Runner(settings, log_dir, os.environ)
        bus = Bus()
        renderer = Renderer(console)
        sub = bus.subscribe()

        async def show() -> None:
            async for record in sub:
                renderer.render(record)

        async with asyncio.TaskGroup() as tg:
            tg.create_task(show())
            summary = await runner.run(RunRequest(run_id, profile, prompt, cwd.resolve(), resume), bus)
        console.print(f"[dim]event log: {summary.log_path}[/]")
        return summary.outcome

    raise typer.Exit(_exit_for(asyncio.run(go())))


@app.command("log")
def show_log(
    path: Annotated[Path, typer.Argument(help="A run log (.jsonl).")],
    after: Annotated[int, typer.Option(help="Show only events after this id.")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print records as JSON lines.")] = False,
) -> None:
    """Replay a run's event log."""
    import msgspec

    renderer = Renderer(console)
    for record in replay(path, after):
        if as_json:
            sys.stdout.write(msgspec.json.encode(record).decode() + "\n")
        else:
            renderer.render(record)


@bench_app.command("ingest")
def bench_ingest(
    events: Annotated[int, typer.Option(min=10, help="How many stream-json lines to push through.")] = 200_000,
    transcript: Annotated[Path | None, typer.Option(help="Transcript to cycle (default: the shipped one).")] = None,
) -> None:
    """Fake CLI in a real PTY -> parse -> typed events -> durable log -> bus with 4 subscribers."""
    figures = asyncio.run(ingest(events, os.environ, transcript))
    print(json.dumps(figures.as_dict()))


def _cli_kind(value: str, option: str) -> CliKind:
    try:
        return CliKind(value)
    except ValueError:
        raise ConfigError(option, f"expected one of {', '.join(k.value for k in CliKind)}, got {value!r}") from None


def _build(cls: type[_M], where: str, **values: object) -> _M:
    """Validate command-line values into a config object; omitted options keep defaults."""
    built = parse_model(cls, {k: v for k, v in values.items() if v is not None}, where)
    assert isinstance(built, cls)
    return built


def _first_leaf(group: BaseExceptionGroup[GanglineError]) -> GanglineError:
    first = group.exceptions[0]
    return _first_leaf(first) if isinstance(first, BaseExceptionGroup) else first


def _fail(err: GanglineError) -> None:
    err_console.print(f"[bold red]error:[/] {err}")
    sys.exit(err.exit_code)


def main() -> None:
    logs.configure(logging.WARNING)
    try:
        # Without standalone mode a command's typer.Exit comes back as the return value.
        code = app(standalone_mode=False)
        sys.exit(code if isinstance(code, int) else 0)
    except GanglineError as err:
        _fail(err)
    except BaseExceptionGroup as group:  # raised through a task group
        matched, _rest = group.split(GanglineError)
        if matched is None:
            raise
        _fail(_first_leaf(matched))
    except typer.Exit as exit_:
        sys.exit(exit_.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        err_console.print("interrupted")
        sys.exit(130)
    except TyperException as err:  # usage errors: unknown option, bad value, ...
        show = getattr(err, "show", None)
        if show is not None:
            show()
        sys.exit(getattr(err, "exit_code", 2))
