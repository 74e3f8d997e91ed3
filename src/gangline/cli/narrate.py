"""Telling the pipeline to a person: events as one line each (live, as they happen), the board, one item in full.

Item titles, hold reasons, agent outcomes and gate output are untrusted text: everything that
comes from an item or an agent goes through ``inert`` before it reaches the terminal.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
import unicodedata
from collections.abc import Callable

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from gangline.core.errors import NotFoundError
from gangline.core.items import Item
from gangline.core.records import EventRow, GateRow, RunRow
from gangline.pipeline.orchestrator import Orchestrator
from gangline.repo.worktrees import branch_name
from gangline.store import Store

POLL_S = 1.0  # re-read this often anyway: another process (`gangline add`) writes without waking us
_PAGE = 1000

# ESC sequences (CSI, OSC, DCS/SOS/PM/APC strings, and two-character ones) and the 8-bit CSI.
_ESCAPE_SEQUENCE = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?"
    r"|\x1b[PX^_][^\x1b]*(?:\x1b\\)?"
    r"|\x1b[ -/]*[0-~]?"
    r"|\x9b[0-?]*[ -/]*[@-~]"
)
# Bidirectional overrides and isolates can make text display in another order than it is.
_BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f")


def inert(text: str | None, *, multiline: bool = False, limit: int | None = None) -> str:
    """``text`` safe to print with rich: no escape sequences or control characters, markup escaped.

    A single line unless ``multiline``; at most ``limit`` characters (cut with "…").
    """
    if not text:
        return ""
    text = _ESCAPE_SEQUENCE.sub("", text)
    kept = []
    for char in text:
        category = unicodedata.category(char)
        if char == "\n" and multiline:
            kept.append(char)
        elif char == "\t":
            kept.append("    " if multiline else " ")
        elif category in ("Cc", "Zl", "Zp"):
            kept.append(" " if char in "\n\r\v\f\u2028\u2029" else "")
        elif char not in _BIDI:
            kept.append(char)
    clean = "".join(kept)
    if not multiline:
        clean = " ".join(clean.split())
    if limit is not None and len(clean) > limit:
        clean = clean[: limit - 1] + "…"
    return escape(clean)


def first_line(text: str | None, limit: int = 160) -> str:
    """The first non-blank line of ``text``, inert."""
    line = next((part for part in (text or "").splitlines() if part.strip()), "")
    return inert(line, limit=limit)


def clock_time(ts: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(ts))


def money(cost: float | None) -> str:
    return "-" if not cost else f"${cost:.4f}"


def _state(stage: str | None, hold: str | None) -> str:
    return f"{stage or '?'} ({hold})" if hold else stage or "?"


class Narrator:
    """Turns event rows into lines; looks up item names and runs in the store as it goes."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._names: dict[int, str] = {}

    def name(self, item_id: int | None) -> str:
        if item_id is None:
            return "gangline"
        if item_id not in self._names:
            try:
                self._names[item_id] = f"#{item_id} {self.store.get_item(item_id).slug}"
            except NotFoundError:
                return f"#{item_id}"  # deleted: not cached, an id can't come back
        return self._names[item_id]

    def line(self, ev: EventRow) -> str:
        """One line of rich markup for ``ev``; all untrusted text in it is inert."""
        told = _TELLERS.get(ev.kind, _other)(self, ev)
        return f"[dim]{clock_time(ev.at)}[/] [bold]{escape(self.name(ev.item_id))}[/]  {told}"

    def run(self, run_id: str | None) -> RunRow | None:
        if run_id is None:
            return None
        try:
            return self.store.get_run(run_id)
        except NotFoundError:
            return None


def _by(ev: EventRow) -> str:
    return f"by {inert(ev.actor, limit=40)}"


def _transition(n: Narrator, ev: EventRow) -> str:
    trigger = inert(ev.trigger or "?")
    if ev.to_hold and ev.to_hold != ev.from_hold:
        held = f"[yellow]⏸ {inert(ev.to_hold)}[/] in {inert(ev.to_stage)}"
        return f"{held}: {first_line(ev.reason)}  [dim]({trigger}, {_by(ev)})[/]"
    if ev.from_stage == ev.to_stage and ev.from_hold == ev.to_hold:
        return f"{inert(ev.trigger)} in {inert(ev.to_stage)}  [dim]({_by(ev)})[/]"
    moved = f"{inert(_state(ev.from_stage, ev.from_hold))} → {inert(_state(ev.to_stage, ev.to_hold))}"
    style = "green" if ev.to_stage == "done" else "cyan"
    note = f": {first_line(ev.reason)}" if ev.reason else ""
    return f"[{style}]{moved}[/]  [dim]({trigger}, {_by(ev)}){note}[/]"


def _run_started(n: Narrator, ev: EventRow) -> str:
    role, profile = inert(str(ev.data.get("role", "?"))), inert(str(ev.data.get("profile", "?")))
    resumed = ""
    run = n.run(ev.run_id)
    if run is not None and run.resumed_session:
        resumed = ", resuming its session"
    attempt = inert(str(ev.data.get("attempt", "?")))
    return f"[magenta]▶ {role} run {inert(ev.run_id)}[/] [dim](profile {profile}, attempt {attempt}{resumed})[/]"


def _run_finished(n: Narrator, ev: EventRow) -> str:
    outcome = inert(str(ev.data.get("outcome", "?")))
    run = n.run(ev.run_id)
    who = f"{run.role.value} ({inert(run.profile)})" if run else "run"
    tokens = f" · {run.input_tokens} in / {run.output_tokens} out" if run else ""
    style = "green" if outcome == "succeeded" else "yellow"
    cost = money(ev.data.get("cost_usd"))
    return f"[{style}]■ {who} {outcome}[/]: {first_line(ev.reason)} [dim]· {cost}{tokens}[/]"


def _gates(n: Narrator, ev: EventRow) -> str:
    context = inert(str(ev.data.get("context", "")))
    if ev.kind == "gates_passed":
        return f"[green]✓ gates passed[/] [dim]({context})[/]"
    failed = ""
    if ev.item_id is not None:
        bad = [g for g in n.store.gate_results(ev.item_id) if g.run_id == ev.run_id and g.exit_code != 0]
        if bad:
            code = "timed out" if bad[-1].timed_out else f"exit {bad[-1].exit_code}"
            failed = f": {inert(bad[-1].name)} ({code})"
    return f"[red]✗ gates failed[/] [dim]({context})[/]{failed}"


def _merge_ready(n: Narrator, ev: EventRow) -> str:
    commit = inert(str(ev.data.get("commit", "?"))[:12])
    files = ev.data.get("files", "?")
    return f"[cyan]⇢ squash commit {commit} ready[/] [dim]({files} file(s) changed)[/]"


def _parked(n: Narrator, ev: EventRow) -> str:
    until = ev.data.get("until")
    when = clock_time(float(until)) if isinstance(until, int | float) else "later"
    return f"[yellow]⏾ parked until {when}[/]: {first_line(ev.reason)}"


def _scheduled(n: Narrator, ev: EventRow) -> str:
    at = ev.data.get("start_after")
    return (
        f"[cyan]◷ starts no earlier than {clock_time(float(at))}[/]"
        if isinstance(at, int | float)
        else "[cyan]◷ unscheduled[/]"
    )


def _note(symbol: str, what: str, style: str = "yellow") -> Callable[[Narrator, EventRow], str]:
    def tell(n: Narrator, ev: EventRow) -> str:
        reason = f": {first_line(ev.reason)}" if ev.reason else ""
        return f"[{style}]{symbol} {what}[/]{reason}"

    return tell


def _created(n: Narrator, ev: EventRow) -> str:
    return f"[blue]+ created[/] in {inert(ev.to_stage)}: {first_line(ev.reason, 80)} [dim]({_by(ev)})[/]"


def _edited(n: Narrator, ev: EventRow) -> str:
    fields = ", ".join(inert(str(f)) for f in ev.data.get("fields", ())) or "nothing"
    return f"[blue]✎ edited[/] {fields} [dim]({_by(ev)})[/]"


def _deleted(n: Narrator, ev: EventRow) -> str:
    return f"[red]✗ deleted[/]: {first_line(ev.reason, 80)} [dim]({_by(ev)})[/]"


def _criteria(n: Narrator, ev: EventRow) -> str:
    marks = ev.data.get("marks", {})
    shown = " ".join(f"{inert(str(k))}{'✓' if v else '✗'}" for k, v in marks.items()) if isinstance(marks, dict) else ""
    return f"criteria checked: {shown} [dim]({_by(ev)})[/]"


def _other(n: Narrator, ev: EventRow) -> str:
    reason = f": {first_line(ev.reason)}" if ev.reason else ""
    return f"{inert(ev.kind)}{reason} [dim]({_by(ev)})[/]"


_TELLERS: dict[str, Callable[[Narrator, EventRow], str]] = {
    "transition": _transition,
    "run_started": _run_started,
    "run_finished": _run_finished,
    "gates_passed": _gates,
    "gates_failed": _gates,
    "merge_ready": _merge_ready,
    "parked": _parked,
    "agent_fallback": _note("⇄", "fallback agent"),
    "scheduled": _scheduled,
    "retry": _note("↻", "retry"),
    "interrupted": _note("↻", "interrupted; the session resumes"),
    "mergemaster": _note("⚒", "mergemaster called"),
    "base_not_advanced": _note("⚠", "base branch not advanced"),
    "worktree_pruned": _note("✂", "worktree pruned", "dim"),
    "worktree_kept": _note("⚠", "worktree kept"),
    "created": _created,
    "edited": _edited,
    "deleted": _deleted,
    "criteria_checked": _criteria,
}


def items_table(items: list[Item], costs: dict[int, float], title: str | None = None) -> Table:
    """The board: one row per item with its stage, hold, retries and cost so far."""
    table = Table(title=title, title_justify="left")
    for name in ("id", "kind", "title", "stage", "hold", "retries", "cost"):
        table.add_column(name, justify="right" if name in ("id", "retries", "cost") else "left")
    for item in items:
        state = item.state
        hold = f"{state.hold.value}: {first_line(state.hold_reason, 80)}" if state.hold else ""
        stage = state.stage.value + (" (frozen)" if state.frozen else "")
        style = "green" if state.stage.value in ("done", "archived") else "yellow" if state.hold else ""
        shown = f"[{style}]{stage}[/]" if style else stage
        title = inert(item.title, limit=48)
        table.add_row(str(item.id), item.kind.value, title, shown, hold, str(item.retries), money(costs.get(item.id)))
    return table


def print_item(
    console: Console, item: Item, transitions: list[EventRow], runs: list[RunRow], gates: list[GateRow]
) -> None:
    """One item in full: its text and state, then its transitions, runs and last gate results."""
    _print_header(console, item)
    console.print(_transitions_table(transitions) if transitions else "No transitions yet.")
    if runs:
        console.print(_runs_table(runs))
    if gates:
        console.print(_gates_table(gates))


def _print_header(console: Console, item: Item) -> None:
    state = item.state
    console.print(f"[bold]#{item.id} {inert(item.title)}[/]  [dim]({item.kind.value}, {inert(item.name)})[/]")
    hold = f" · [yellow]{state.hold.value}[/]: {inert(state.hold_reason)}" if state.hold else ""
    console.print(f"stage {state.stage.value}{hold}{' · frozen' if state.frozen else ''}")
    extra = [f"priority {item.priority}", f"branch {inert(branch_name(item.id, item.slug))}"]
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


def _transitions_table(events: list[EventRow]) -> Table:
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


def _runs_table(runs: list[RunRow]) -> Table:
    table = Table(title="Runs", title_justify="left")
    for column in ("run", "role", "profile", "outcome", "reason", "cost", "tokens in/out"):
        table.add_column(column)
    for run in runs:
        outcome = run.outcome.value if run.outcome else "[cyan]running[/]"
        tokens = f"{run.input_tokens}/{run.output_tokens}"
        table.add_row(inert(run.id), run.role.value, inert(run.profile), outcome, first_line(run.reason, 60),
                      money(run.cost_usd), tokens)  # fmt: skip
    return table


def _gates_table(gates: list[GateRow]) -> Table:
    table = Table(title=f"Last gate results ({inert(gates[0].context)})", title_justify="left")
    for column in ("gate", "exit", "output (first lines)"):
        table.add_column(column)
    for gate in gates:
        code = "timed out" if gate.timed_out else str(gate.exit_code)
        lines = [inert(line, limit=100) for line in gate.output.splitlines() if line.strip()][:5]
        table.add_row(inert(gate.name), code, "\n".join(lines))
    return table


def last_gates(rows: list[GateRow]) -> list[GateRow]:
    """The last batch of gate results: the trailing rows of one run and context, no gate twice."""
    batch: list[GateRow] = []
    for row in reversed(rows):
        if batch and ((row.run_id, row.context) != (batch[0].run_id, batch[0].context) or
                      any(g.name == row.name for g in batch)):  # fmt: skip
            break
        batch.insert(0, row)
    return batch


def print_events_after(store: Store, narrator: Narrator, console: Console, after_id: int) -> int:
    """Print every event after ``after_id``; return the last id printed (or ``after_id``)."""
    while True:
        events = store.events_after(after_id, limit=_PAGE)
        for ev in events:
            console.print(narrator.line(ev), highlight=False, emoji=False)
            after_id = ev.id
        if len(events) < _PAGE:
            return after_id


async def follow_pipeline(orch: Orchestrator, console: Console, after_id: int = 0) -> None:
    """Print pipeline events as they happen, until cancelled; what is left is printed on the way out."""
    narrator = Narrator(orch.store)
    last = after_id
    try:
        while True:
            orch.changed.clear()  # before reading: a change during the read sets it again
            last = print_events_after(orch.store, narrator, console, last)
            # asyncio.timeout, not wait_for: on 3.11 wait_for loses a cancel that arrives as the event is set.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(POLL_S):
                    await orch.changed.wait()
    finally:
        # Cancelled when serve() returns: its last events were written after our last read.
        print_events_after(orch.store, narrator, console, last)
