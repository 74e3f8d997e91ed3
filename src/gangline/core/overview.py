"""What a merged item changed, in one record (``gangline overview``, ``GET /api/items/{id}/overview``, the
``item_overview`` tool, the item's page): its squash commit and files, how long it took, what its agents did and
cost, who passed it and the gates it merged with. Built from what the store and git already hold."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from pydantic import BaseModel

from gangline.core.changes import CommitOut, DiffOut, FileOut
from gangline.core.items import Criterion
from gangline.core.stages import Trigger
from gangline.core.text import first_line, money, plain, span
from gangline.core.wire import EventOut, GateOut, ItemDetail


class Overview(BaseModel):
    id: int
    title: str
    kind: str
    commit: CommitOut  # the squash commit on the base branch
    base: str
    files: list[FileOut]
    additions: int
    deletions: int
    criteria: list[Criterion]
    created_at: float
    started_at: float | None  # the first start: it left the backlog
    merged_at: float
    lead_time_s: float  # created → merged
    work_time_s: float | None  # started → merged
    runs: dict[str, int]  # agent runs per role (coder, qa, mergemaster)
    retries: int  # failed coder attempts (gates, QA, hooks) before the one merged
    rejections: list[str]  # why QA (an agent or a person) sent it back, oldest first
    passed_by: str  # who passed QA ("gangline" for the server's own, an agent's profile, a person)
    messages: int  # what people said to its coder
    agent_time_s: float  # the runs' durations summed
    input_tokens: int
    output_tokens: int
    cost_usd: float
    gates: list[GateOut]  # the gates the squash passed


def build(detail: ItemDetail, diff: DiffOut, messages: int) -> Overview:
    """The overview of ``detail``, a merged item, with its merged commit's ``diff``."""
    moves = detail.transitions
    merged = _last(moves, Trigger.MERGED)
    started = next((e.at for e in moves if e.trigger == Trigger.START.value), None)
    passed = _last(moves, Trigger.QA_PASSED)  # the server's, an agent's or a person's approval
    merged_at = merged.at if merged else detail.updated_at
    runs = detail.runs
    return Overview(
        id=detail.id,
        title=detail.title,
        kind=detail.kind.value,
        commit=diff.commits[0] if diff.commits else CommitOut(sha=detail.merged_commit or "", subject=detail.title),
        base=diff.base,
        files=diff.files,
        additions=sum(f.additions for f in diff.files),
        deletions=sum(f.deletions for f in diff.files),
        criteria=detail.criteria,
        created_at=detail.created_at,
        started_at=started,
        merged_at=merged_at,
        lead_time_s=max(0.0, merged_at - detail.created_at),
        work_time_s=max(0.0, merged_at - started) if started is not None else None,
        runs=dict(Counter(run.role.value for run in runs)),
        retries=detail.retries,
        rejections=[e.reason or "" for e in moves if e.trigger == Trigger.QA_FAILED.value],
        passed_by=passed.actor if passed else "gangline",
        messages=messages,
        agent_time_s=sum((run.ended_at or merged_at) - run.started_at for run in runs),
        input_tokens=sum(run.input_tokens for run in runs),
        output_tokens=sum(run.output_tokens for run in runs),
        cost_usd=sum(run.cost_usd for run in runs),
        gates=[gate for gate in detail.gates if gate.context == "merge"],
    )


def _last(moves: list[EventOut], trigger: Trigger) -> EventOut | None:
    return next((e for e in reversed(moves) if e.trigger == trigger.value), None)


SHOWN_FILES = 20  # the files a summary names; the rest are counted


def summary(found: Overview, when: Callable[[float], str]) -> list[str]:
    """The overview as lines a person reads (``gangline overview``, chat's ``overview N``), all its text plain;
    ``when`` words a time."""
    lines = [f"#{found.id} {plain(found.title, limit=120)} ({found.kind}): merged onto {plain(found.base)} as "
             f"{found.commit.sha[:12]} at {when(found.merged_at)}",
             f"  {len(found.files)} file(s), +{found.additions} -{found.deletions}"]  # fmt: skip
    for changed in found.files[:SHOWN_FILES]:
        counts = "binary" if changed.binary else f"+{changed.additions} -{changed.deletions}"
        lines.append(f"    {plain(changed.path)} ({counts})")
    if len(found.files) > SHOWN_FILES:
        lines.append(f"    … and {len(found.files) - SHOWN_FILES} more")
    work = f", {span(found.work_time_s)} of it after it started" if found.work_time_s is not None else ""
    lines.append(f"  Took {span(found.lead_time_s)} from creation to merge{work}.")
    runs = ", ".join(f"{count} {role}" for role, count in found.runs.items()) or "none"
    lines.append(f"  Agent runs: {runs} ({span(found.agent_time_s)} in all); {found.retries} failed attempt(s) "
                 f"before the one merged; passed by {plain(found.passed_by)}.")  # fmt: skip
    lines += [f"    sent back: {first_line(reason, 120)}" for reason in found.rejections]
    if found.messages:
        lines.append(f"  People wrote to its coder {found.messages} time(s).")
    lines.append(f"  Cost {money(found.cost_usd)} ({found.input_tokens} tokens in, {found.output_tokens} out).")
    gates = ", ".join(f"{plain(g.name)} {'✓' if g.passed else '✗'} ({g.duration_s:.1f} s)" for g in found.gates)
    lines.append(f"  Gates at merge: {gates or 'none'}.")
    lines += [f"  [{'x' if c.checked else ' '}] {plain(c.text, limit=200)}" for c in found.criteria]
    return lines
