"""``gangline top``: each live run's process tree with CPU and memory, redrawn every few seconds until Ctrl-C."""

from __future__ import annotations

import sys
import time
from typing import Annotated

import typer
from rich.console import Group
from rich.live import Live
from rich.table import Table

from gangline.cli.common import WATCHING, console, print_json
from gangline.cli.items import open_door
from gangline.cli.text import inert
from gangline.core.top import TopOut

MIB = 2**20


def register(app: typer.Typer) -> None:
    app.command(rich_help_panel=WATCHING)(top)


def top(
    once: Annotated[
        bool, typer.Option("--once", help="Print one reading and end (the default without a terminal).")
    ] = False,
    every: Annotated[float, typer.Option("--every", min=0.5, max=30, help="Seconds between readings.")] = 2.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print one reading as JSON.")] = False,
) -> None:
    """Each live agent run's processes: CPU (a share of one core), resident memory, and the tree they form.

    CPU is measured over the time between two readings, the first taken when the command starts.
    """
    with open_door() as door:
        if as_json or once or not sys.stdout.isatty():
            reading = door.top(1.0)
            if as_json:
                print_json(reading)
            else:
                console.print(render(reading))
            return
        with Live(render(door.top(1.0)), console=console, auto_refresh=False) as live:
            try:
                while True:
                    time.sleep(every)
                    live.update(render(door.top(1.0)), refresh=True)  # measured since the last reading
            except KeyboardInterrupt:
                pass


def render(reading: TopOut) -> Group | str:
    """One table per live run: its totals in the title, then its processes indented as a tree."""
    if not reading.runs:
        return "No agent is running."
    tables = []
    for row in reading.runs:
        run = row.run
        totals = f"CPU {row.cpu_percent:.0f}%, memory {row.rss_bytes / MIB:.0f} MiB"
        title = f"{inert(run.id)} ({run.about}, {run.role.value}, {inert(run.profile)}): "
        title += f"{len(row.processes)} process(es), {totals}"
        table = Table(title=title, title_justify="left")
        for column, justify in (("pid", "right"), ("process", "left"), ("CPU %", "right"), ("memory MiB", "right")):
            table.add_column(column, justify=justify)  # type: ignore[arg-type]
        for process in row.processes:
            name = "  " * process.depth + inert(process.name)
            table.add_row(str(process.pid), name, f"{process.cpu_percent:.1f}", f"{process.rss_bytes / MIB:.1f}")
        if row.note:
            table.add_row("", f"[dim]{inert(row.note)}[/]", "", "")
        tables.append(table)
    return Group(*tables, f"[dim]CPU over the last {reading.over_s:.1f} s[/]")
