"""What the pipeline can do next: a pure plan over the items, the busy set and the free slots."""

from __future__ import annotations

import enum
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from gangline.core.items import Item
from gangline.core.profiles import PIPELINE_ROLES, QaMode, Role
from gangline.core.stages import ItemState, Stage

FINISHED = (Stage.DONE, Stage.ARCHIVED)


class Step(enum.StrEnum):
    START = "start"  # backlog -> coding, then code
    CODE = "code"  # run the coder (first attempt, retry, after a park or a restart)
    REVIEW = "review"  # qa by the item's mode
    MERGE = "merge"
    ARCHIVE = "archive"


@dataclass(frozen=True)
class Candidate:
    """The columns of an item that planning reads: cheap to load for thousands of items.

    ``waiting_on`` lists the item's dependencies that are not finished yet.
    """

    id: int
    state: ItemState
    priority: int
    waiting_on: tuple[int, ...]
    qa_mode: QaMode | None
    start_after: float | None
    parked_until: float | None
    archive_at: float | None

    @property
    def stage(self) -> Stage:
        return self.state.stage

    @classmethod
    def of(cls, item: Item, finished: Collection[int] = ()) -> Candidate:
        return cls(
            item.id,
            item.state,
            item.priority,
            tuple(dep for dep in item.depends_on if dep not in finished),
            item.qa_mode,
            item.start_after,
            item.parked_until,
            item.archive_at,
        )


@dataclass(frozen=True)
class Job:
    step: Step
    item_id: int


@dataclass(frozen=True)
class Plan:
    jobs: tuple[Job, ...]
    next_due: float | None  # the earliest future time at which a timer fires
    waiting: int  # unfinished items that will move on their own later (parked, scheduled, waiting for a slot)


def plan(
    items: Sequence[Candidate],
    busy: Collection[int],
    running: Mapping[Role, int],
    limits: Mapping[Role, int],
    default_qa: QaMode,
    merging: bool,
    now: float,
    auto_start: bool = True,
) -> Plan:
    """The jobs to start now, highest priority first within each role's free slots.

    ``busy`` holds items with a job in progress; ``running`` counts those jobs by role.
    Items waiting on a person (human QA, holds, frozen; without ``auto_start``, backlog items no
    person started or set a timer for) are neither jobs nor ``waiting``.
    """
    free = {role: limits[role] - running.get(role, 0) for role in PIPELINE_ROLES}
    jobs: list[Job] = []
    due: list[float] = []
    waiting = 0
    for item in sorted(items, key=_order):
        if item.id in busy or item.state.frozen or item.state.hold is not None:
            continue
        step, role, when = _step_for(item, default_qa, auto_start)
        if step is None:
            continue
        if when is not None and when > now:
            due.append(when)
            waiting += step is not Step.ARCHIVE  # done is done: archiving later is not work waiting
            continue
        if role is not None:
            if step is Step.MERGE and merging:
                waiting += 1
                continue
            if free[role] <= 0:
                waiting += 1
                continue
            free[role] -= 1
            if step is Step.MERGE:
                merging = True  # one merge workspace: one merge at a time
        jobs.append(Job(step, item.id))
    return Plan(tuple(jobs), min(due) if due else None, waiting)


def _order(item: Candidate) -> tuple[int, int, int]:
    # Finish what is started before starting more; then priority; then age.
    return (0 if item.stage is not Stage.BACKLOG else 1, -item.priority, item.id)


def _step_for(item: Candidate, default_qa: QaMode, auto_start: bool) -> tuple[Step | None, Role | None, float | None]:
    stage = item.stage
    if stage is Stage.BACKLOG:
        if item.waiting_on or (not auto_start and item.start_after is None):  # triage: a person starts it
            return None, None, None
        return Step.START, Role.CODER, item.start_after
    if stage is Stage.CODING:
        return Step.CODE, Role.CODER, item.parked_until
    if stage is Stage.QA:
        mode = item.qa_mode or default_qa
        if mode is QaMode.HUMAN:
            return None, None, None
        return Step.REVIEW, (Role.QA if mode is QaMode.AGENT else None), item.parked_until
    if stage is Stage.MERGE:
        return Step.MERGE, Role.MERGEMASTER, None
    if stage is Stage.DONE and item.archive_at is not None:
        return Step.ARCHIVE, None, item.archive_at
    return None, None, None
