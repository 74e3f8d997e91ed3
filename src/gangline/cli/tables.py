"""The board, one item in full, the pipeline's status and its costs, as rich tables of the wire records."""

from __future__ import annotations

import time

from rich.console import Console
from rich.table import Table

from gangline.cli.text import clock_time, first_line, inert, money
from gangline.core.disk import disk_line
from gangline.core.wire import CostsOut, EventOut, GateOut, ItemDetail, ItemOut, RunOut, StatusOut

LEDGER_COLUMNS = {
    "runs": "runs",
    "input_tokens": "input",
    "output_tokens": "output",
    "cache_read_tokens": "cache read",
    "cache_write_tokens": "cache write",
    "cost_usd": "cost",
}


def items_table(items: list[ItemOut], title: str | None = None) -> Table:
    """The board: one row per item with its stage, hold, retries and cost so far."""
    table = Table(title=title, title_justify="left")
    for name in ("id", "kind", "title", "stage", "hold", "retries", "cost"):
        table.add_column(name, justify="right" if name in ("id", "retries", "cost") else "left")
    for item in items:
        hold = f"{item.hold.value}: {first_line(item.hold_reason, 80)}" if item.hold else ""
        stage = item.stage.value + (" (frozen)" if item.frozen else "")
        style = "green" if item.stage.value in ("done", "archived") else "yellow" if item.hold else ""
        shown = f"[{style}]{stage}[/]" if style else stage
        name = inert(item.title, limit=48)
        table.add_row(str(item.id), item.kind.value, name, shown, hold, str(item.retries), money(item.cost_usd))
    return table


def print_item(console: Console, item: ItemDetail) -> None:
    """One item in full: its text and state, then its transitions, runs, last gate results and hooks."""
    _print_header(console, item)
    console.print(_transitions_table(item.transitions) if item.transitions else "No transitions yet.")
    if item.runs:
        console.print(_runs_table(item.runs))
    if item.gates:
        console.print(_gates_table(item.gates, f"Last gate results ({inert(item.gates[0].context)})"))
    if item.hooks:
        console.print(_gates_table(item.hooks, "Hooks (each one's last run)"))
    cost = money(item.cost_usd) if item.cost_usd else "$0"
    console.print(f"Cost so far: {cost} over {len(item.runs)} run(s)")


def _print_header(console: Console, item: ItemDetail) -> None:
    console.print(f"[bold]#{item.id} {inert(item.title)}[/]  [dim]({item.kind.value}, {inert(item.name)})[/]")
    hold = f" · [yellow]{item.hold.value}[/]: {inert(item.hold_reason)}" if item.hold else ""
    console.print(f"stage {item.stage.value}{hold}{' · frozen' if item.frozen else ''}")
    extra = [f"priority {item.priority}", f"branch {inert(item.branch)}"]
    if item.depends_on:
        extra.append("depends on " + ", ".join(f"#{d}" for d in item.depends_on))
    if item.pinned_agent:
        extra.append(f"agent {inert(item.pinned_agent)}")
    if item.qa_mode:
        extra.append(f"QA {item.qa_mode.value}")
    if item.merged_commit:
        extra.append(f"merged as {inert(item.merged_commit[:12])}")
    console.print(" · ".join(extra), style="dim")
    if item.body:
        console.print()
        console.print(inert(item.body, multiline=True))
    console.print()
    console.print("Acceptance criteria:" if item.criteria else "No acceptance criteria.")
    for criterion in item.criteria:
        console.print(f"  \\[{'x' if criterion.checked else ' '}] {inert(criterion.text)}")


def _transitions_table(events: list[EventOut]) -> Table:
    table = Table(title="Transitions", title_justify="left")
    for column in ("at", "trigger", "from", "to", "by", "reason"):
        table.add_column(column)
    for ev in events:
        frm = inert(ev.from_stage) + (f" ({inert(ev.from_hold)})" if ev.from_hold else "")
        to = inert(ev.to_stage) + (f" ({inert(ev.to_hold)})" if ev.to_hold else "")
        table.add_row(
            clock_time(ev.at), inert(ev.trigger), frm, to, inert(ev.actor, limit=40), first_line(ev.reason, 80)
        )
    return table


def _runs_table(runs: list[RunOut]) -> Table:
    table = Table(title="Runs", title_justify="left")
    for column in ("run", "role", "profile", "outcome", "reason", "cost", "tokens in/out"):
        table.add_column(column)
    for run in runs:
        outcome = run.outcome.value if run.outcome else "[cyan]running[/]"
        tokens = f"{run.input_tokens}/{run.output_tokens}"
        table.add_row(inert(run.id), run.role.value, inert(run.profile), outcome, first_line(run.reason, 60),
                      money(run.cost_usd), tokens)  # fmt: skip
    return table


def _gates_table(gates: list[GateOut], title: str) -> Table:
    table = Table(title=title, title_justify="left")
    for column in ("name", "exit", "output (first lines)"):
        table.add_column(column)
    for gate in gates:
        code = "timed out" if gate.timed_out else str(gate.exit_code)
        lines = [inert(line, limit=100) for line in gate.output.splitlines() if line.strip()][:5]
        table.add_row(inert(gate.name), code, "\n".join(lines))
    return table


def print_status(console: Console, status: StatusOut) -> None:
    """Items per stage and hold, the live runs, the timers, and whether anything drives the pipeline."""
    board = Table(title="Items", title_justify="left")
    counts = [*((s.value, n) for s, n in status.stages.items()), ("held", sum(status.holds.values()))]
    counts.append(("frozen", status.frozen))
    for name, _count in counts:
        board.add_column(name, justify="right")
    board.add_row(*(str(count) for _name, count in counts))
    console.print(board)
    holds = ", ".join(f"{count} {hold.value}" for hold, count in status.holds.items() if count)
    if holds:
        console.print(f"held: {holds}")
    console.print(_live_runs_table(status.live_runs) if status.live_runs else "No live runs.")
    if status.timers:
        table = Table(title="Timers", title_justify="left")
        for column in ("item", "what", "at"):
            table.add_column(column)
        for timer in status.timers:
            at = time.strftime("%Y-%m-%d %H:%M", time.localtime(timer.at))
            table.add_row(f"#{timer.item_id}", timer.kind.replace("_", " "), at)
        console.print(table)
    config = status.config
    if config is not None and config.error:
        at = time.strftime("%H:%M:%S", time.localtime(config.refused_at or config.loaded_at))
        console.print(f"[bold red]project.toml: an edit was refused at {at}[/]; the last good configuration "
                      f"stays in force: {inert(config.error)}")  # fmt: skip
    if config is not None and config.restart_needed:
        console.print(f"Edited, taking effect at the next start: {', '.join(config.restart_needed)}.")
    if status.disk is not None:
        style = "bold red" if status.disk.over else "dim"
        console.print(f"[{style}]Disk: {inert(disk_line(status.disk))}[/]")
    orch = status.orchestrator
    if orch.running:
        console.print(f"The server drives the pipeline: {orch.jobs} job(s), {orch.runs} agent(s) running.")
    else:
        console.print("Nothing drives the pipeline now: start it with gangline serve (or gangline run).")


def _live_runs_table(runs: list[RunOut]) -> Table:
    table = Table(title="Live runs", title_justify="left")
    for column in ("run", "item", "role", "profile", "started", "pid"):
        table.add_column(column)
    for run in runs:
        table.add_row(inert(run.id), run.about, run.role.value, inert(run.profile),
                      clock_time(run.started_at), str(run.pid or "-"))  # fmt: skip
    return table


def costs_table(costs: CostsOut) -> Table | str:
    """The ledger summed as asked, with a total row; a sentence when nothing has cost anything."""
    if not costs.rows:
        return "No agent runs yet: nothing has cost anything."
    table = Table(title=f"Cost by {costs.by}", title_justify="left", show_footer=True)
    table.add_column(costs.by, footer="total")
    for name, header in LEDGER_COLUMNS.items():
        total = sum(getattr(row, name) for row in costs.rows)
        table.add_column(header, justify="right", footer=money(total) if name == "cost_usd" else str(total))
    for row in costs.rows:
        key = f"#{row.key}" if costs.by == "item" and row.key.isdigit() else inert(row.key)
        cells = (money(row.cost_usd) if n == "cost_usd" else str(getattr(row, n)) for n in LEDGER_COLUMNS)
        table.add_row(key, *cells)
    return table
