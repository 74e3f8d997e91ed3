"""``gangline overview ID``: what a merged item changed and how it got there, from its squash commit and runs."""

from __future__ import annotations

import time
from typing import Annotated

import typer
from rich.console import Console

from gangline.cli.common import WATCHING, console, print_json
from gangline.cli.items import open_door
from gangline.core.overview import Overview, summary


def register(app: typer.Typer) -> None:
    app.command(rich_help_panel=WATCHING)(overview)


def overview(
    item_id: Annotated[int, typer.Argument(metavar="ID", min=1, help="A merged item's id.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """What a merged item changed: its squash commit and files, how long it took, its runs, retries and
    rejections, who passed it, what it cost and the gates it merged with."""
    with open_door() as door:
        found = door.overview(item_id)
    if as_json:
        print_json(found)
    else:
        print_overview(console, found)


def print_overview(out: Console, found: Overview) -> None:
    first, *rest = summary(found, lambda at: time.strftime("%Y-%m-%d %H:%M", time.localtime(at)))
    out.print(first, style="bold", markup=False, highlight=False)
    for line in rest:
        out.print(line, markup=False, highlight=False)
