"""Build nodes on the command line: `gangline node` (be one; `node token`) and `gangline nodes` (list, drain)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from gangline.cli.common import WATCHING, console, err_console, print_json
from gangline.cli.items import open_door
from gangline.cli.text import clock_time, inert

AsJson = Annotated[bool, typer.Option("--json", help="Print JSON.")]
NODES = "Build nodes"
DEFAULT_HOME = Path("~/.local/share/gangline/node")


def register(app: typer.Typer) -> None:
    node_app = typer.Typer(help="Serve a gangline server as a build node (`node token`: make a join token).")
    node_app.callback(invoke_without_command=True)(node)
    node_app.command("token")(token)
    app.add_typer(node_app, name="node", rich_help_panel=NODES)
    nodes_app = typer.Typer(help="The server's build nodes: list them (the default), drain one.")
    nodes_app.callback(invoke_without_command=True)(nodes)
    nodes_app.command("drain")(drain)
    app.add_typer(nodes_app, name="nodes", rich_help_panel=WATCHING)


def node(
    ctx: typer.Context,
    server: Annotated[list[str], typer.Option("--server", help="The server's URL (again for a standby).")] = [],  # noqa: B006
    token: Annotated[str | None, typer.Option(help="A join token from `gangline node token` (first start).")] = None,
    name: Annotated[str | None, typer.Option(help="This node's name (default: the host name).")] = None,
    home: Annotated[Path, typer.Option(help="Where the node keeps its credential, clone and logs.")] = DEFAULT_HOME,
    label: Annotated[list[str], typer.Option("--label", help="A label profiles may require (gpu, macos).")] = [],  # noqa: B006
    slots: Annotated[list[str], typer.Option("--slots", help="ROLE=COUNT runs at once (default coder=1).")] = [],  # noqa: B006
    cli: Annotated[list[str], typer.Option("--cli", help="An agent CLI kind to offer (default: those on PATH).")] = [],  # noqa: B006
    sandbox: Annotated[str, typer.Option(help="auto, required or off: confine agents with bubblewrap.")] = "auto",
) -> None:
    """Serve the server at --server as a build node: lease its runs and run their agents here, until drained."""
    if ctx.invoked_subcommand is not None:
        return
    import asyncio

    from gangline.cli.common import choice
    from gangline.core.profiles import SandboxMode
    from gangline.nodes.main import NodeOptions, run_node

    given = (tuple(server), token, name, tuple(label), tuple(slots), tuple(cli))
    options = NodeOptions(home.expanduser().resolve(), *given, sandbox=choice(SandboxMode, sandbox, "--sandbox"))
    err_console.print(f"build node: home {inert(str(options.home))}", style="dim")
    console.print(asyncio.run(run_node(options)))


def token(as_json: AsJson = False) -> None:
    """Make a one-time join token (valid for an hour) for `gangline node --token`."""
    with open_door() as door:
        made = door.node_token()
    if as_json:
        print_json(made)
        return
    console.print(made.token, markup=False)
    err_console.print(f"one-time join token, valid until {clock_time(made.expires_at)}", style="dim")


def nodes(ctx: typer.Context, as_json: AsJson = False) -> None:
    """The build nodes: whether each is live, what it offers and the runs it holds."""
    if ctx.invoked_subcommand is not None:
        return
    with open_door() as door:
        found = door.nodes()
    if as_json:
        print_json(found)
        return
    if not found:
        console.print("no build nodes have joined (`gangline node token` makes a join token)")
        return
    table = Table("node", "state", "slots", "labels", "CLIs", "last heard", "runs", box=None)
    for one in found:
        state = "draining" if one.draining else "live" if one.live else "gone"
        slots = ", ".join(f"{role}={count}" for role, count in one.slots.items())
        table.add_row(inert(one.name), state, slots, inert(", ".join(one.labels)), inert(", ".join(one.clis)),
                      clock_time(one.seen_at), inert(", ".join(one.runs)))  # fmt: skip
    console.print(table)


def drain(
    name: Annotated[str, typer.Argument(help="The node's name.")],
    undo: Annotated[bool, typer.Option("--undo", help="Give the node runs again.")] = False,
    as_json: AsJson = False,
) -> None:
    """Give a node no more runs; those it has go on to their end (then a node started by `gangline node` exits)."""
    with open_door() as door:
        done = door.drain_node(name, not undo)
    if as_json:
        print_json(done)
    else:
        console.print(f"node {inert(done.name)} is {'draining' if done.draining else 'taking runs'}")
