"""``gangline serve``, ``run`` and ``demo``: the one serving core (``server.serving``), shown three ways.

The web stack (FastAPI, uvicorn, the MCP SDK) is imported only when one of these runs.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import TYPE_CHECKING, Annotated

import typer

from gangline.cli.common import choice, console, initialised, opened
from gangline.cli.text import first_line, inert
from gangline.core.stages import Stage
from gangline.project.paths import ProjectPaths

if TYPE_CHECKING:
    from collections.abc import Mapping

    from gangline.pipeline.orchestrator import Orchestrator
    from gangline.pipeline.orders import Door
    from gangline.project.config import ProjectConfig

TOKEN_ENV = "GANGLINE_TOKEN"


def register(app: typer.Typer) -> None:
    for command in (run, serve, demo, login):
        app.command()(command)


def login() -> None:
    """Print a new one-time link that opens the running server's board signed in.

    Exit codes:
      0  printed
      1  no server is running for this project
      2  the server refused the credential
    """
    from gangline.cli.client import find_server
    from gangline.core.wire import LoginLink

    paths = initialised()
    client = find_server(paths, os.environ, "cli")
    if client is None:
        console.print("no gangline server is running for this project; start one with gangline serve")
        raise typer.Exit(1)
    try:
        link = client.fetch(LoginLink, "POST", "/api/login-links")
    finally:
        client.close()
    console.print(f"Open the board, signed in (this link works once): {inert(link.url)}")


def run(
    until_idle: Annotated[
        bool, typer.Option("--until-idle", help="Stop once no item can move; then summarise.")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", help="Do not narrate each event.")] = False,
) -> None:
    """Drive the pipeline here: take items backlog → coding → qa → merge → done, narrating each change.

    It serves the project on a private loopback port, as serve does, so agents get gangline's
    MCP tools and the other commands (stop, approve, permissions ...) reach it. Without
    --until-idle it runs until Ctrl-C or SIGTERM, which stop the running agents first.

    Exit codes:
      0  every item is done (or archived)
      1  some item is not done: the summary names it and why
      2  a configuration error
      5  an illegal transition or a conflicting change
      8  another gangline server is running on this repository or its database (see --standby)
      130 / 143  stopped by SIGINT / SIGTERM
    """
    import asyncio

    from gangline.project.config import load_project
    from gangline.server.serving import read_token

    paths = initialised()
    env = dict(os.environ)
    config = load_project(paths, env)
    token = read_token(env, TOKEN_ENV)  # the one the other commands send, when it is set
    raise typer.Exit(asyncio.run(_run(paths, config, env, token, until_idle, quiet)))


async def _run(
    paths: ProjectPaths, config: ProjectConfig, env: dict[str, str], token: str | None, until_idle: bool, quiet: bool
) -> int:
    import asyncio

    from gangline.cli.narrate import follow_pipeline
    from gangline.server.serving import Listen, serve_project

    with opened(paths, patient=True) as store:
        after = store.last_event_id()

    async def watch(orch: Orchestrator) -> None:
        narrating = None if quiet else asyncio.create_task(follow_pipeline(orch, console, after))
        try:
            await (orch.wait_idle() if until_idle else asyncio.Event().wait())
        finally:
            if narrating is not None:
                narrating.cancel()  # it tells what is left before it goes
                await asyncio.wait({narrating})

    listen = Listen(port=0, token=token, reraise_signals=False, nodes=False)
    doors = _doors(paths, config, env)
    stopped_by = await serve_project(paths, config, env, listen, lambda url, login: None, watch, doors)
    return _summarise(paths, stopped_by)


def _summarise(paths: ProjectPaths, stopped_by: int | None) -> int:
    from gangline.cli.tables import items_table
    from gangline.pipeline.views import Views

    with opened(paths) as store:
        items = Views(store).items()
    if items:
        console.print(items_table(items, title="Board"))
    if stopped_by is not None:
        console.print(f"stopped by {signal.Signals(stopped_by).name}")
        return 128 + stopped_by
    unfinished = [i for i in items if i.stage is not Stage.DONE]
    if not unfinished:
        console.print(f"[green]All {len(items)} item(s) are done.[/]")
        return 0
    for item in unfinished:
        why = f"{item.hold.value}: {first_line(item.hold_reason)}" if item.hold else "waiting"
        console.print(f"[yellow]#{item.id} {inert(item.slug)} is not done[/]: {item.stage.value}, {why}")
    return 1


STANDBY_HELP = (
    "When another server drives this project's database: serve the board and reads now, and take over the "
    "pipeline when that one stops (instead of exiting 8)."
)


def serve(
    host: Annotated[
        str, typer.Option(help="Address to listen on (anything but loopback: mind who can reach it).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port to listen on (0: any free one).")] = 8765,
    token_env: Annotated[
        str, typer.Option(help="Environment variable holding a bearer token to use instead of the project's secret.")
    ] = TOKEN_ENV,
    no_auth: Annotated[
        bool,
        typer.Option(
            "--no-auth", help="Loopback only: no credential at all; any process here, agents included, can drive it."
        ),
    ] = False,
    standby: Annotated[bool, typer.Option("--standby", help=STANDBY_HELP)] = False,
) -> None:
    """Serve the REST API, the live events, the board and the pipeline, until Ctrl-C or SIGTERM.

    Every route but /health needs the person's credential: "Authorization: Bearer" with the
    project's secret (.gangline/secret, made on first use; the CLI sends it by itself) or a
    token from the environment, or the board's session, which the printed one-time login link
    sets. On Ctrl-C or SIGTERM open requests get 5 s, then the running agents are stopped; their
    items keep their sessions and resume on the next start.

    Exit codes:
      0  stopped
      2  a configuration error, or --no-auth with a non-loopback --host
      8  another gangline server is running on this repository or its database (see --standby)
      130 / 143  stopped by SIGINT / SIGTERM
    """
    import asyncio

    from gangline.project.config import load_project
    from gangline.server.serving import Listen, check_bind, read_token, serve_project

    env = dict(os.environ)
    token = read_token(env, token_env)
    check_bind(host, no_auth)
    paths = initialised()
    config = load_project(paths, env)
    if no_auth:
        warn = "--no-auth: no credential guards this server; any process on this machine, agents included"
        console.print(f"[yellow]{warn}, can add, approve and merge work.[/]")

    def ready(url: str, login: str | None) -> None:
        auth = f" (token from ${inert(token_env)})" if token else ""
        shown = inert(url)
        console.print(f"gangline serving {shown}{auth}: API at {shown}/api, docs at {shown}/docs. Ctrl-C stops it.")
        if login is not None:
            console.print(f"Open the board, signed in (this link works once): {inert(login)}")

    doors = _doors(paths, config, env)
    listen = Listen(host, port, token, no_auth=no_auth, standby=standby)
    asyncio.run(serve_project(paths, config, env, listen, ready, doors=doors))


def _doors(paths: ProjectPaths, config: ProjectConfig, env: Mapping[str, str]) -> list[Door]:
    """The doors beside the pipeline that project.toml asks for: the [[chat]] accounts."""
    from gangline.chat.serving import chat_door

    door = chat_door(config, paths, env)
    return [door] if door is not None else []


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
    import asyncio

    from gangline.cli.demo import DemoOptions, DemoResult, claude_is_configured, run_demo
    from gangline.core.profiles import CliKind

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
