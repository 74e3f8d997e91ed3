"""The ``gangline`` command: every command registered in the order ``--help`` lists them, and ``main``.

Commands import what they use when they run: ``--help``, ``ls`` and ``status`` never load the
web stack, which only ``serve``, ``run``, ``demo`` and the benchmarks need.
"""

from __future__ import annotations

import logging
import sys
from typing import Annotated

import typer
from typer.exceptions import TyperException

from gangline import __version__
from gangline.cli import (
    actions,
    agent,
    bench,
    doctor,
    items,
    logs,
    logsetup,
    nodes,
    overview,
    run,
    setup,
    talk,
    top,
    watch,
)
from gangline.cli.common import ACTING, app, console, err_console
from gangline.cli.text import inert
from gangline.core.errors import GanglineError


def _version(shown: bool) -> None:
    if shown:
        console.print(f"gangline {__version__}")
        raise typer.Exit(0)


@app.callback()
def _options(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print gangline's version and exit.")
    ] = False,
) -> None:
    """gangline: run coding agents on work items."""


# init first, then the item commands: the order `gangline --help` lists them in.
setup.register(app)
items.register(app)
items.register_editing(app, ACTING)
actions.register(app)
talk.register(app)
watch.register(app)
top.register(app)
overview.register(app)
logs.register(app)
doctor.register(app)
run.register(app)
agent.register(app)
nodes.register(app)
bench.register()


def _first_leaf(group: BaseExceptionGroup[GanglineError]) -> GanglineError:
    first = group.exceptions[0]
    return _first_leaf(first) if isinstance(first, BaseExceptionGroup) else first


def _fail(err: GanglineError) -> None:
    err_console.print(f"[bold red]error:[/] {inert(str(err))}")
    sys.exit(err.exit_code)


def main() -> None:
    logsetup.configure(logging.WARNING)
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
