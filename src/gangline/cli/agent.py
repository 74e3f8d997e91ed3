"""``gangline agent`` (one agent in a directory, outside the pipeline, rendered live) and ``gangline log``."""

from __future__ import annotations

import os
import sys
import uuid
from pathlib import Path
from typing import Annotated

import typer

from gangline.cli.common import choice, console


def register(app: typer.Typer) -> None:
    app.command()(agent)
    app.command("log")(show_log)


def agent(
    prompt: Annotated[str, typer.Argument(help="What the agent should do.")],
    cwd: Annotated[Path, typer.Option(help="Working directory for the agent.")] = Path("."),
    agent: Annotated[str, typer.Option(help="claude, codex, gemini or fake.")] = "claude",
    binary: Annotated[str | None, typer.Option(help="Path of the agent CLI.")] = None,
    model: Annotated[str | None, typer.Option()] = None,
    resume: Annotated[str | None, typer.Option(help="Session id to resume.")] = None,
    max_turns: Annotated[int | None, typer.Option()] = None,
    max_budget_usd: Annotated[float | None, typer.Option()] = None,
    inactivity_timeout: Annotated[float, typer.Option(help="Seconds without output before the run is killed.")] = 300.0,
    log_dir: Annotated[Path, typer.Option(help="Where run logs go.")] = Path(".gangline/runs"),
    extra_arg: Annotated[list[str] | None, typer.Option(help="Extra argument for the CLI (repeatable).")] = None,
) -> None:
    """Run one agent in a directory, outside the pipeline, and render its events live."""
    import asyncio

    from gangline.agents.bus import Bus
    from gangline.agents.runner import Runner, RunRequest
    from gangline.cli.render import Renderer
    from gangline.core.profiles import AgentProfile, CliKind, RunnerSettings, parse_model

    kind = choice(CliKind, agent, "--agent")
    given = {"name": agent, "cli": kind, "command": binary, "model": model, "max_turns": max_turns,
             "max_budget_usd": max_budget_usd, "extra_args": tuple(extra_arg or ())}  # fmt: skip
    profile = parse_model(AgentProfile, {k: v for k, v in given.items() if v is not None}, "profile")
    settings = parse_model(RunnerSettings, {"inactivity_timeout_s": inactivity_timeout}, "settings")
    assert isinstance(profile, AgentProfile) and isinstance(settings, RunnerSettings)
    run_id = f"run-{uuid.uuid4().hex[:12]}"

    async def go() -> bool:
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
        return summary.outcome.value == "succeeded"

    raise typer.Exit(0 if asyncio.run(go()) else 1)


def show_log(
    path: Annotated[Path, typer.Argument(help="A run log (.jsonl).")],
    after: Annotated[int, typer.Option(help="Show only events after this id.")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print records as JSON lines.")] = False,
) -> None:
    """Replay a run's event log."""
    import msgspec

    from gangline.agents.runlog import replay
    from gangline.cli.render import Renderer

    renderer = Renderer(console)
    for record in replay(path, after):
        if as_json:
            sys.stdout.write(msgspec.json.encode(record).decode() + "\n")
        else:
            renderer.render(record)
