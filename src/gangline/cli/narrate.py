"""Telling the pipeline to a person: its events as one line each, live as they happen.

Everything that comes from an item or an agent in an event goes through ``inert`` first.
"""

from __future__ import annotations

from collections.abc import Callable

from rich.console import Console
from rich.markup import escape

from gangline.cli.text import clock_time, first_line, inert, money
from gangline.core.errors import NotFoundError
from gangline.core.records import EventRow, RunRow
from gangline.pipeline.orchestrator import Orchestrator
from gangline.store import Store

POLL_S = 1.0  # re-read this often anyway: another process (`gangline add`) writes without waking us
_PAGE = 1000


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
    """Gates or hooks (``hooks_passed``: the context is the point they ran at)."""
    context = str(ev.data.get("context", ""))
    what = ev.kind.split("_")[0]
    if ev.kind.endswith("_passed"):
        return f"[green]✓ {what} passed[/] [dim]({inert(context)})[/]"
    failed = ""
    if ev.item_id is not None:
        rows = n.store.gate_results(ev.item_id)
        bad = [g for g in rows if (g.run_id, g.context) == (ev.run_id, context) and g.exit_code != 0]
        if bad:
            code = "timed out" if bad[-1].timed_out else f"exit {bad[-1].exit_code}"
            failed = f": {inert(bad[-1].name)} ({code})"
    return f"[red]✗ {what} failed[/] [dim]({inert(context)})[/]{failed}"


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
    "hooks_passed": _gates,
    "hooks_failed": _gates,
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
            version = orch.version  # before reading: a change during the read ends the wait at once
            last = print_events_after(orch.store, narrator, console, last)
            await orch.wait_changed(version, POLL_S)
    finally:
        # Cancelled when serve() returns: its last events were written after our last read.
        print_events_after(orch.store, narrator, console, last)
