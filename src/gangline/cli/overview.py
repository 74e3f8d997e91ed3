"""``gangline overview ID``: what a merged item changed and how it got there, from its squash commit and runs."""

from __future__ import annotations

import time
from typing import Annotated

import typer
from rich.console import Console

from gangline.cli.common import WATCHING, console, print_json
from gangline.cli.items import open_door
from gangline.cli.text import first_line, inert, money
from gangline.core.overview import Overview

SHOWN_FILES = 20


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
    merged = time.strftime("%Y-%m-%d %H:%M", time.localtime(found.merged_at))
    out.print(f"[bold]#{found.id} {inert(found.title)}[/] ({found.kind}): merged onto {inert(found.base)} as "
              f"{inert(found.commit.sha[:12])} at {merged}")  # fmt: skip
    out.print(f"  {len(found.files)} file(s), [green]+{found.additions}[/] [red]-{found.deletions}[/]")
    for changed in found.files[:SHOWN_FILES]:
        counts = "binary" if changed.binary else f"+{changed.additions} -{changed.deletions}"
        out.print(f"    {inert(changed.path)} ({counts})", highlight=False)
    if len(found.files) > SHOWN_FILES:
        out.print(f"    … and {len(found.files) - SHOWN_FILES} more")
    work = f", {span(found.work_time_s)} of it after it started" if found.work_time_s is not None else ""
    out.print(f"  Took {span(found.lead_time_s)} from creation to merge{work}.")
    runs = ", ".join(f"{count} {role}" for role, count in found.runs.items()) or "none"
    out.print(f"  Agent runs: {runs} ({span(found.agent_time_s)} in all); {found.retries} failed attempt(s) "
              f"before the one merged; passed by {inert(found.passed_by)}.")  # fmt: skip
    for reason in found.rejections:
        out.print(f"    sent back: {first_line(reason, 120)}")
    if found.messages:
        out.print(f"  People wrote to its coder {found.messages} time(s).")
    out.print(f"  Cost {money(found.cost_usd)} ({found.input_tokens} tokens in, {found.output_tokens} out).")
    gates = ", ".join(f"{inert(g.name)} {'✓' if g.passed else '✗'} ({g.duration_s:.1f} s)" for g in found.gates)
    out.print(f"  Gates at merge: {gates or 'none'}.")
    for criterion in found.criteria:
        out.print(f"  \\[{'x' if criterion.checked else ' '}] {inert(criterion.text)}")


def span(seconds: float) -> str:
    """A duration for a person: 45 s, 12 min, 3 h 5 min, 2 d 4 h."""
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes = int(seconds // 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h"
