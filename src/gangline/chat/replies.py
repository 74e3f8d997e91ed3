"""The views' records as chat text: short lines a phone shows well, times in the project's time zone.

Everything an item or an agent wrote is passed through ``core.text.plain``: a title cannot
forge a line of gangline's own or carry control characters into a person's client.
"""

from __future__ import annotations

from datetime import datetime, tzinfo

from gangline.core.records import about
from gangline.core.stages import Stage
from gangline.core.text import money, plain
from gangline.core.wire import Activity, CostsOut, ItemDetail, ItemOut, RunOut, StatusOut

_SHOWN_STAGES = (Stage.BACKLOG, Stage.CODING, Stage.QA, Stage.MERGE, Stage.DONE)


def when(at: float, zone: tzinfo) -> str:
    """A time as a person reads it in the project's zone: HH:MM today, else the date too."""
    moment = datetime.fromtimestamp(at, zone)
    return moment.strftime("%Y-%m-%d %H:%M %Z")


def activity(act: Activity, zone: tzinfo) -> str:
    if act.state in ("running", "throttled"):
        about = f"{act.state} ({act.role.value if act.role else 'agent'} {act.profile})"
        return about + (f" until {when(act.until, zone)}" if act.until else "")
    if act.state in ("parked", "scheduled") and act.until is not None:
        return f"{act.state} until {when(act.until, zone)}"
    if act.note:
        return f"{act.state}: {plain(act.note, limit=120)}"
    return act.state


def item_line(item: ItemOut, zone: tzinfo) -> str:
    return f"#{item.id} {item.stage.value} · {activity(item.activity, zone)} — {plain(item.title, limit=80)}"


def items(listed: list[ItemOut], zone: tzinfo) -> str:
    open_items = [i for i in listed if i.stage not in (Stage.DONE, Stage.ARCHIVED)]
    if not open_items:
        return "Nothing is waiting: every item is done."
    return "\n".join(item_line(i, zone) for i in sorted(open_items, key=lambda i: (-i.priority, i.id)))


def status(out: StatusOut, zone: tzinfo) -> str:
    counts = " · ".join(f"{stage.value} {out.stages.get(stage, 0)}" for stage in _SHOWN_STAGES)
    lines = [counts]
    held = [f"{hold.value} {n}" for hold, n in out.holds.items() if n]
    if held or out.frozen:
        lines.append("held: " + ", ".join(held + ([f"frozen {out.frozen}"] if out.frozen else [])))
    for run in out.live_runs:
        lines.append(f"running: {run.about} {run.role.value} {run.profile} since {when(run.started_at, zone)}")
    for timer in out.timers[:5]:
        lines.append(f"timer: #{timer.item_id} {timer.kind.replace('_', ' ')} {when(timer.at, zone)}")
    orch = out.orchestrator
    lines.append(f"pipeline: {'driven' if orch.running else 'not driven'}, {orch.jobs} job(s), {orch.runs} agent(s)")
    return "\n".join(lines)


def detail(item: ItemDetail, zone: tzinfo) -> str:
    lines = [f"#{item.id} {plain(item.title, limit=200)} ({item.kind.value})",
             f"{item.stage.value} · {activity(item.activity, zone)} · cost {money(item.cost_usd)}"]  # fmt: skip
    lines += [f"{'☑' if c.checked else '☐'} {plain(c.text, limit=200)}" for c in item.criteria]
    if item.depends_on:
        lines.append("depends on " + ", ".join(f"#{d}" for d in item.depends_on))
    lines += [run_line(run, zone) for run in item.runs[-3:]]
    failed = [g.name for g in item.gates if not g.passed]
    if item.gates:
        lines.append("gates: " + (f"failed {', '.join(failed)}" if failed else "all passed"))
    if item.actions:
        lines.append("you can: " + ", ".join(a.value for a in item.actions))
    return "\n".join(lines)


def run_line(run: RunOut, zone: tzinfo) -> str:
    ended = "running" if run.live else (run.outcome.value if run.outcome else "ended")
    started = when(run.started_at, zone)
    return f"run {run.id} ({run.role.value} {run.profile}) {ended}, {money(run.cost_usd)}, from {started}"


def _whose(key: str) -> str:
    """A ledger key per item as the person reads it: ``#7``, or the chat agent (whose runs have no item)."""
    return about(int(key)) if key.isdigit() else "the chat agent"


def costs(per_item: CostsOut, since: float, zone: tzinfo) -> str:
    """What the runs started since ``since`` cost, and the items that cost most."""
    start = when(since, zone)
    if not per_item.rows:
        return f"Nothing spent since {start}."
    runs = sum(r.runs for r in per_item.rows)
    lines = [f"{money(per_item.total_usd)} since {start}, over {runs} run(s)"]
    top = sorted(per_item.rows, key=lambda r: -r.cost_usd)[:5]
    lines += [f"{_whose(row.key)}: {money(row.cost_usd)} ({row.runs} run(s))" for row in top if row.cost_usd]
    return "\n".join(lines)
