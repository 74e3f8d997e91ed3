"""``gangline doctor`` on the command line: the checks (``cli.checks``) as a table, exit 0 only when all pass."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from gangline.cli.common import console, print_json
from gangline.cli.text import inert


def register(app: typer.Typer) -> None:
    app.command()(doctor)


def doctor(
    port: Annotated[int, typer.Option(help="The port gangline serve will use.")] = 8765,
    as_json: Annotated[bool, typer.Option("--json", help="Print the checks as JSON.")] = False,
) -> None:
    """Check git, the repository, project.toml, each agent CLI, the port and the disk; say how to fix each problem."""
    from gangline.cli.checks import run_checks

    checks = run_checks(Path.cwd(), os.environ, port)
    if as_json:
        print_json([dataclasses.asdict(c) for c in checks])
    else:
        table = Table(show_header=True, header_style="bold")
        for column in ("", "check", "finding", "fix"):
            table.add_column(column)
        for c in checks:
            mark = "[green]✓[/]" if c.ok else "[red]✗[/]"
            table.add_row(mark, c.name, inert(c.detail), inert(c.fix))
        console.print(table)
    raise typer.Exit(0 if all(c.ok for c in checks) else 1)
