"""The ``gangline`` command line: the edge where settings are read and errors become exit codes."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys
import uuid
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from pydantic import BaseModel
from typer.exceptions import TyperException

from gangline.agents.bus import Bus
from gangline.agents.runlog import replay
from gangline.agents.runner import Runner, RunRequest
from gangline.bench.fanout import fanout
from gangline.bench.ingest import ingest, pipeline
from gangline.bench.soak import STREAM_S, soak
from gangline.cli import actions as cli_actions
from gangline.cli import doctor_command as cli_doctor
from gangline.cli import items as cli_items
from gangline.cli import logs as cli_logs
from gangline.cli import logsetup as logs
from gangline.cli.common import app, bench_app, choice, console, err_console, initialised, item_costs, opened
from gangline.cli.demo import DemoOptions, DemoResult, claude_is_configured, run_demo
from gangline.cli.narrate import first_line, follow_pipeline, inert, items_table
from gangline.cli.render import Renderer
from gangline.core.errors import ConfigError, GanglineError
from gangline.core.events import RunOutcome
from gangline.core.profiles import AgentProfile, CliKind, RunnerSettings, parse_model
from gangline.core.prompts import GUIDE
from gangline.core.stages import Stage
from gangline.pipeline.orchestrator import Orchestrator
from gangline.project.config import ProjectConfig, ProjectPaths, load_project
from gangline.project.scaffold import init_project

_M = TypeVar("_M", bound=BaseModel)


def _exit_for(outcome: RunOutcome) -> int:
    return 0 if outcome is RunOutcome.SUCCEEDED else 1


# --- setting up --------------------------------------------------------------------------------


@app.command()
def init(
    path: Annotated[Path, typer.Argument(help="A directory inside the git repository (default: here).")] = Path("."),
) -> None:
    """Set gangline up in a git repository: write .gangline/ (project.toml, guide.md, .gitignore)."""
    result = init_project(path, dict(os.environ))
    console.print(f"Set up gangline in {inert(str(result.root))} (base branch {inert(result.base_branch)}):")
    for created in result.created:
        console.print(f"  created {inert(str(created.relative_to(result.root)))}")
    console.print(
        "Next steps:\n"
        "  1. edit .gangline/project.toml: your coder agent, the gates (your tests) and the QA mode\n"
        "  2. commit .gangline/project.toml and .gangline/guide.md\n"
        '  3. add work:  gangline add "Add a login page" --criterion "a user can log in"\n'
        "  4. run it:    gangline run"
    )


# init first, then the item commands: the order `gangline --help` lists them in.
cli_items.register(app)
cli_actions.register(app)
cli_logs.register(app)
cli_doctor.register(app)


# --- running the pipeline ----------------------------------------------------------------------


@app.command()
def run(
    until_idle: Annotated[
        bool, typer.Option("--until-idle", help="Stop once no item can move; then summarise.")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", help="Do not narrate each event.")] = False,
) -> None:
    """Serve the pipeline: take items backlog → coding → qa → merge → done, narrating each change.

    Without --until-idle it runs until Ctrl-C or SIGTERM, which stop the running agents first.

    Exit codes:
      0  every item is done (or archived)
      1  some item is not done: the summary names it and why
      2  a configuration error
      5  an illegal transition or a conflicting change
      8  another gangline server is running on this repository
      130 / 143  stopped by SIGINT / SIGTERM
    """
    paths = initialised()
    env = dict(os.environ)
    config = load_project(paths, env)
    raise typer.Exit(asyncio.run(_serve(paths, config, env, until_idle, quiet)))


async def _serve(paths: ProjectPaths, config: ProjectConfig, env: dict[str, str], until_idle: bool, quiet: bool) -> int:
    with opened(paths, patient=True) as store:
        orch = Orchestrator(paths, config, store, env, guide=_guide(paths))
        stopped_by = await _serve_narrated(orch, store.last_event_id(), until_idle, quiet)
        items = [i for i in store.list_items() if i.stage is not Stage.ARCHIVED]
        costs = item_costs(store)
    if items:
        console.print(items_table(items, costs, title="Board"))
    if stopped_by is not None:
        console.print(f"stopped by {signal.Signals(stopped_by).name}")
        return 128 + stopped_by
    unfinished = [i for i in items if i.stage is not Stage.DONE]
    if not unfinished:
        console.print(f"[green]All {len(items)} item(s) are done.[/]")
        return 0
    for item in unfinished:
        why = f"{item.state.hold.value}: {first_line(item.state.hold_reason)}" if item.state.hold else "waiting"
        console.print(f"[yellow]#{item.id} {inert(item.slug)} is not done[/]: {item.stage.value}, {why}")
    return 1


async def _serve_narrated(orch: Orchestrator, after_id: int, until_idle: bool, quiet: bool) -> int | None:
    """Serve (and narrate) until serve returns or a signal asks to stop; the signal's number, if any."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    received: list[int] = []

    def on_signal(signum: int) -> None:
        received.append(signum)
        stop.set()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)  # a second Ctrl-C is a plain KeyboardInterrupt: stop now

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal, sig)
    try:
        async with asyncio.TaskGroup() as tg:
            serving, stopping = tg.create_task(orch.serve(until_idle)), tg.create_task(stop.wait())
            narrating = None if quiet else tg.create_task(follow_pipeline(orch, console, after_id))
            await asyncio.wait([serving, stopping], return_when=asyncio.FIRST_COMPLETED)
            serving.cancel()  # serve() stops its runs on the way out...
            stopping.cancel()
            await asyncio.wait([serving])
            if narrating is not None:
                narrating.cancel()  # ...and the narrator tells how they ended before it goes
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    return received[0] if received else None


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on; anything but loopback needs a token.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port to listen on (0: any free one).")] = 8765,
    token_env: Annotated[
        str, typer.Option(help="Environment variable holding the bearer token every request must carry.")
    ] = "GANGLINE_TOKEN",
) -> None:
    """Serve the REST API, the live events and the pipeline, until Ctrl-C or SIGTERM.

    With a token (from the environment, never a flag) every route but /health needs
    "Authorization: Bearer <token>". On Ctrl-C or SIGTERM open requests get 5 s, then the
    running agents are stopped; their items keep their sessions and resume on the next start.

    Exit codes:
      0  stopped
      2  a configuration error, or a non-loopback --host without a token
      8  another gangline server is running on this repository
      130 / 143  stopped by SIGINT / SIGTERM
    """
    from gangline.server.serving import check_bind, read_token, run_server  # uvicorn and FastAPI load only to serve

    env = dict(os.environ)
    token = read_token(env, token_env)
    check_bind(host, token, token_env)
    paths = initialised()
    config = load_project(paths, env)

    def ready(url: str) -> None:
        auth = f" (token from ${inert(token_env)})" if token else ""
        shown = inert(url)
        console.print(f"gangline serving {shown}{auth}: API at {shown}/api, docs at {shown}/docs. Ctrl-C stops it.")

    run_server(paths, config, env, host, port, token, _guide(paths), ready)


def _guide(paths: ProjectPaths) -> str:
    try:
        return paths.guide_file.read_text(encoding="utf-8")
    except FileNotFoundError:
        return GUIDE
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(str(paths.guide_file), f"cannot be read: {err}") from None


@app.command()
def demo(
    agent: Annotated[
        str, typer.Option(help="auto, claude or fake. auto uses claude when it is installed and configured.")
    ] = "auto",
    model: Annotated[str, typer.Option(help="Model for the real claude CLI.")] = "sonnet",
    port: Annotated[
        int, typer.Option(help="Port for the board on 127.0.0.1 (0: any free port).", min=0, max=65535)
    ] = 0,
    pace: Annotated[
        float, typer.Option(help="Seconds the fake agents pause before each step, so the board can be watched.", min=0)
    ] = 1.0,
    keep_serving: Annotated[
        bool | None,
        typer.Option(
            "--keep-serving/--exit-when-done",
            help="Keep the board up after the backlog is done, until Ctrl-C (default: when run in a terminal).",
        ),
    ] = None,
) -> None:
    """Serve the board and take a small backlog through the whole pipeline on a throwaway git repository, live."""
    env = dict(os.environ)
    if agent == "auto":
        kind = CliKind.CLAUDE if claude_is_configured(env) else CliKind.FAKE
    else:
        kind = choice(CliKind, agent, "--agent")
    if keep_serving is None:  # a person at a terminal wants to look around; a script wants it to end
        keep_serving = sys.stdin.isatty() and sys.stdout.isatty()
    options = DemoOptions(kind, model, port, pace, exit_when_done=not keep_serving)
    result = DemoResult()
    try:
        asyncio.run(run_demo(console, options, env, result))
    except KeyboardInterrupt:
        if not result.finished:
            raise typer.Exit(130) from None
        # Ctrl-C after the backlog went through only closes the board: the demo itself is over.
    raise typer.Exit(0 if result.all_done else 1)


@app.command()
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
    profile = _build(
        AgentProfile,
        "profile",
        name=agent,
        cli=choice(CliKind, agent, "--agent"),
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


@bench_app.command("pipeline")
def bench_pipeline(
    items: Annotated[int, typer.Option(min=1, help="Items to take through the whole pipeline.")] = 50,
    backlog: Annotated[int, typer.Option(min=0, help="Items left waiting in the backlog all along.")] = 500,
) -> None:
    """Items through the whole pipeline with fake agents: items/min, coder-exit -> QA-spawn latency, tick cost."""
    figures = asyncio.run(pipeline(items, backlog, os.environ))
    print(json.dumps(figures.as_dict()))


@bench_app.command("fanout")
def bench_fanout(
    agents: Annotated[int, typer.Option(min=1, max=64, help="Fake agents streaming at once.")] = 32,
    rate: Annotated[float, typer.Option(min=0.1, help="Lines per second each agent writes.")] = 200.0,
    subscribers: Annotated[int, typer.Option(min=1, help="SSE clients, spread round robin over the runs.")] = 50,
    seconds: Annotated[float, typer.Option(min=0.1, help="How long each agent streams.")] = 20.0,
) -> None:
    """Fake agents -> the real server -> SSE subscribers on loopback: end-to-end latency, emitted vs delivered."""
    figures = asyncio.run(fanout(agents, rate, subscribers, seconds, os.environ))
    print(json.dumps(figures.as_dict()))


@bench_app.command("soak")
def bench_soak(
    agents: Annotated[int, typer.Option(min=1, max=64, help="Fake coders streaming at once.")] = 64,
    minutes: Annotated[float, typer.Option(min=0.01, help="How long items flow.")] = 10.0,
    backlog: Annotated[int, typer.Option(min=1, help="Items kept waiting in the backlog all along.")] = 1000,
    sample_s: Annotated[float, typer.Option(min=0.1, help="Seconds between samples.")] = 10.0,
    stream_s: Annotated[float, typer.Option(min=0.25, help="Seconds each fake coder streams before it commits.")] = (
        STREAM_S
    ),
) -> None:
    """Agents streaming and items flowing for minutes: events emitted vs delivered, RSS, fds, CPU sampled."""
    figures = asyncio.run(soak(agents, minutes, backlog, sample_s, os.environ, stream_s=stream_s))
    print(json.dumps(figures.as_dict()))
    if figures.lost or not figures.fds_flat or not figures.rss_flat:
        fds = f"{figures.fds_first_quarter:g} -> {figures.fds_last_quarter:g}"
        rss = f"{figures.rss_mb_first_quarter:g} -> {figures.rss_mb_last_quarter:g} MB"
        err_console.print(f"[red]error:[/] {figures.lost} events lost; open fds {fds}; RSS {rss}")
        raise typer.Exit(1)


# --- shared ------------------------------------------------------------------------------------


def _build(cls: type[_M], where: str, **values: object) -> _M:
    """Validate command-line values into a config object; omitted options keep defaults."""
    built = parse_model(cls, {k: v for k, v in values.items() if v is not None}, where)
    assert isinstance(built, cls)
    return built


def _first_leaf(group: BaseExceptionGroup[GanglineError]) -> GanglineError:
    first = group.exceptions[0]
    return _first_leaf(first) if isinstance(first, BaseExceptionGroup) else first


def _fail(err: GanglineError) -> None:
    err_console.print(f"[bold red]error:[/] {inert(str(err))}")
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
