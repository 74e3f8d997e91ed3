"""The scheduler's plan, as a table: slots, priorities, dependencies, holds, timers."""

from __future__ import annotations

from gangline.core.profiles import QaMode, Role
from gangline.core.scheduler import Candidate, Job, Step, plan
from gangline.core.stages import Hold, ItemState, Stage
from kits.helpers import make_item

NOW = 1000.0
LIMITS = {Role.CODER: 2, Role.QA: 1, Role.MERGEMASTER: 1}


def item(item_id: int, stage: Stage = Stage.BACKLOG, waiting_on: tuple[int, ...] = (), **fields: object) -> Candidate:
    full = make_item(
        **{"id": item_id, "slug": f"i{item_id}", "state": ItemState(stage), "depends_on": waiting_on, **fields}
    )
    return Candidate.of(full)


def steps(
    items: list[Candidate],
    busy: set[int] = frozenset(),
    running: dict[Role, int] | None = None,  # type: ignore[assignment]
    qa: QaMode = QaMode.SERVER,
    merging: bool = False,
) -> list[tuple[Step, int]]:
    result = plan(items, busy, running or {}, LIMITS, qa, merging, NOW)
    return [(a.step, a.item_id) for a in result.jobs]


def test_backlog_starts_by_priority_within_the_free_coder_slots() -> None:
    items = [item(1, priority=1), item(2, priority=9), item(3, priority=5)]
    assert steps(items) == [(Step.START, 2), (Step.START, 3)]
    assert steps(items, running={Role.CODER: 1}) == [(Step.START, 2)]


def test_started_work_is_finished_before_new_work_starts() -> None:
    items = [item(1, priority=9), item(2, Stage.CODING)]
    assert steps(items, running={Role.CODER: 1}) == [(Step.CODE, 2)]


def test_an_item_waits_for_its_dependencies_to_be_done() -> None:
    assert steps([item(2, waiting_on=(1,))]) == []
    assert steps([item(2)]) == [(Step.START, 2)]


def test_held_frozen_and_busy_items_are_not_planned() -> None:
    held = item(1, state=ItemState(Stage.CODING, Hold.BLOCKED, "x"))
    frozen = item(2, state=ItemState(Stage.BACKLOG, frozen=True))
    assert steps([held, frozen, item(3, Stage.CODING)], busy={3}) == []


def test_timers_hold_items_until_due_and_report_the_next_one() -> None:
    parked = item(1, Stage.CODING, parked_until=NOW + 30)
    later = item(2, start_after=NOW + 10)
    result = plan([parked, later], set(), {}, LIMITS, QaMode.SERVER, False, NOW)
    assert result.jobs == () and result.next_due == NOW + 10 and result.waiting == 2
    assert steps([item(1, Stage.CODING, parked_until=NOW - 1)]) == [(Step.CODE, 1)]


def test_qa_takes_a_slot_only_in_agent_mode_and_waits_for_a_person_in_human_mode() -> None:
    items = [item(1, Stage.QA), item(2, Stage.QA)]
    assert steps(items, qa=QaMode.SERVER) == [(Step.REVIEW, 1), (Step.REVIEW, 2)]
    assert steps(items, qa=QaMode.AGENT) == [(Step.REVIEW, 1)]
    assert steps(items, qa=QaMode.HUMAN) == []
    assert steps([item(1, Stage.QA, qa_mode=QaMode.HUMAN)], qa=QaMode.SERVER) == []


def test_one_merge_at_a_time() -> None:
    items = [item(1, Stage.MERGE), item(2, Stage.MERGE)]
    assert steps(items) == [(Step.MERGE, 1)]
    assert steps(items, merging=True) == []


def test_done_items_are_archived_when_due_and_do_not_count_as_waiting() -> None:
    due, later = item(1, Stage.DONE, archive_at=NOW), item(2, Stage.DONE, archive_at=NOW + 60)
    result = plan([due, later], set(), {}, LIMITS, QaMode.SERVER, False, NOW)
    assert result.jobs == (Job(Step.ARCHIVE, 1),) and result.waiting == 0 and result.next_due == NOW + 60


def test_without_auto_start_the_backlog_waits_for_a_person_but_started_work_and_timers_go_on() -> None:
    items = [item(1), item(2, start_after=NOW - 1), item(3, start_after=NOW + 60), item(4, Stage.CODING)]
    triaged = plan(items, set(), {}, LIMITS, QaMode.SERVER, False, NOW, auto_start=False)
    assert [(a.step, a.item_id) for a in triaged.jobs] == [(Step.CODE, 4), (Step.START, 2)]
    assert triaged.next_due == NOW + 60  # a timer a person set still fires
    assert [(a.step, a.item_id) for a in plan(items, set(), {}, LIMITS, QaMode.SERVER, False, NOW).jobs] == [
        (Step.CODE, 4), (Step.START, 1),
    ]  # fmt: skip
