"""The stage machine: every legal and illegal (state, trigger) pair, written out as a table."""

from __future__ import annotations

import pytest

from gangline.core.stages import Facts, Hold, IllegalTransition, ItemState, Stage, Trigger, apply, legal_triggers

B, C, Q, M, D, A = Stage.BACKLOG, Stage.CODING, Stage.QA, Stage.MERGE, Stage.DONE, Stage.ARCHIVED
BLOCKED, REVIEW, MFAIL = Hold.BLOCKED, Hold.REVIEW_HOLD, Hold.MERGE_FAILURE
T = Trigger
OK = Facts(reason="why", commits_ahead=2, files_changed=3)


def s(stage: Stage, hold: Hold | None = None, frozen: bool = False) -> ItemState:
    return ItemState(stage, hold, "why" if hold else None, frozen)


def held(stage: Stage) -> dict[Trigger, ItemState]:
    """What every un-held, unfrozen active stage allows besides its own moves."""
    return {
        T.BLOCK: s(stage, BLOCKED),
        T.HOLD_FOR_REVIEW: s(stage, REVIEW),
        T.FREEZE: s(stage, frozen=True),
    }


def ended() -> dict[Trigger, ItemState]:
    """A person ends an active item without finishing it, held or not: archived."""
    return {T.ABANDON: s(A), T.SUPERSEDE: s(A)}


# The whole table, written independently of the implementation: state -> {trigger: next state}.
LEGAL: dict[ItemState, dict[Trigger, ItemState]] = {
    s(B): {T.START: s(C), **held(B), **ended()},
    s(C): {T.CODED: s(Q), T.REPORTED: s(Q), T.DEMOTE: s(B), **held(C), **ended()},
    s(Q): {T.QA_PASSED: s(M), T.QA_FAILED: s(C), T.DEMOTE: s(B), T.CLOSE: s(D), **held(Q), **ended()},
    s(M): {T.MERGED: s(D), T.MERGE_FAILED: s(M, MFAIL), T.DEMOTE: s(B), **held(M), **ended()},
    s(D): {T.ARCHIVE: s(A), T.FREEZE: s(D, frozen=True)},
    s(A): {},
}
for stage in (B, C, Q, M):
    LEGAL[s(stage, BLOCKED)] = {T.UNBLOCK: s(stage), T.FREEZE: s(stage, BLOCKED, True)}
    LEGAL[s(stage, REVIEW)] = {T.RELEASE: s(stage), T.FREEZE: s(stage, REVIEW, True)}
    LEGAL[s(stage, BLOCKED)].update(ended())
    LEGAL[s(stage, REVIEW)].update(ended())
    if stage is not B:
        LEGAL[s(stage, BLOCKED)][T.DEMOTE] = s(B)
        LEGAL[s(stage, REVIEW)][T.DEMOTE] = s(B)
    if stage is Q:
        LEGAL[s(stage, BLOCKED)][T.CLOSE] = s(D)
        LEGAL[s(stage, REVIEW)][T.CLOSE] = s(D)
LEGAL[s(M, MFAIL)] = {T.RETRY_MERGE: s(M), T.DEMOTE: s(B), T.FREEZE: s(M, MFAIL, True), **ended()}
# Frozen: only unfreeze, back to the same state.
for state in list(LEGAL):
    if state.stage is not A:
        frozen = ItemState(state.stage, state.hold, state.hold_reason, True)
        LEGAL[frozen] = {T.UNFREEZE: state}

PAIRS = [(state, trigger) for state in LEGAL for trigger in Trigger]


@pytest.mark.parametrize(("state", "trigger"), PAIRS, ids=lambda v: v.describe() if isinstance(v, ItemState) else v)
def test_every_pair_is_legal_exactly_when_the_table_says(state: ItemState, trigger: Trigger) -> None:
    expected = LEGAL[state].get(trigger)
    if expected is None:
        with pytest.raises(IllegalTransition) as err:
            apply(state, trigger, OK)
        assert err.value.state == state
        assert err.value.trigger is trigger
        assert state.stage.value in str(err.value) and trigger.value in str(err.value)
    else:
        assert apply(state, trigger, OK) == expected


def test_legal_triggers_lists_the_table_row() -> None:
    for state, row in LEGAL.items():
        assert set(legal_triggers(state)) == set(row), state.describe()


def test_an_item_without_commits_cannot_leave_coding_or_enter_merge() -> None:
    for trigger, stage in ((T.CODED, C), (T.QA_PASSED, Q)):
        for ahead in (None, 0):
            with pytest.raises(IllegalTransition, match="no commits ahead"):
                apply(s(stage), trigger, Facts(commits_ahead=ahead))


def test_a_spike_leaves_coding_only_with_a_report_and_nobody_ends_an_item_without_a_reason() -> None:
    for report in (None, "", "  "):
        with pytest.raises(IllegalTransition, match="a spike needs a written report"):
            apply(s(C), T.REPORTED, Facts(reason=report))
    for trigger in (T.ABANDON, T.SUPERSEDE):
        with pytest.raises(IllegalTransition, match="it needs a reason"):
            apply(s(Q, REVIEW), trigger, Facts())


def test_an_empty_merge_never_reaches_done() -> None:
    for changed in (None, 0):
        with pytest.raises(IllegalTransition, match="changed no files"):
            apply(s(M), T.MERGED, Facts(files_changed=changed))


def test_a_hold_needs_a_reason_and_keeps_it() -> None:
    with pytest.raises(IllegalTransition, match="needs a reason"):
        apply(s(C), T.BLOCK, Facts())
    after = apply(s(C), T.BLOCK, Facts(reason="gates failed 3 times"))
    assert after.hold is BLOCKED and after.hold_reason == "gates failed 3 times"
    assert apply(after, T.UNBLOCK).hold_reason is None


def test_a_coder_is_never_started_on_an_item_in_merge() -> None:
    # The only way into coding is START from backlog or QA_FAILED from qa.
    for trigger in Trigger:
        try:
            after = apply(s(M), trigger, OK)
        except IllegalTransition:
            continue
        assert after.stage is not C
