"""Properties, checked on generated input: the stream parser (line framer plus each CLI's decoder)
does not depend on how the PTY chunks its reads, never crashes and never drops a byte; the stage
table never breaks an invariant of SPEC.md §13 whatever sequence of triggers reaches it."""

from __future__ import annotations

import itertools
import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from gangline.agents.claude import ClaudeDecoder
from gangline.agents.codex import CodexDecoder
from gangline.agents.decoding import LineDecoder
from gangline.agents.framing import LineFramer
from gangline.agents.gemini import GeminiDecoder
from gangline.core.errors import StateConflict
from gangline.core.events import Event, Malformed
from gangline.core.items import ItemDraft
from gangline.core.stages import Facts, Hold, IllegalTransition, ItemState, Stage, Trigger, apply
from gangline.store import open_sqlite

NOW = 1_800_000_000.0
MAX_LINE = 2048  # small, so generated lines cross the bound often
BOUNDED = settings(
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=150,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

ROOT = Path(__file__).resolve().parents[2]
RECORDED = [
    ROOT / "src/gangline/fake/transcripts/write.jsonl",
    ROOT / "tests/transcripts/claude_text.jsonl",
    ROOT / "tests/transcripts/claude_write.jsonl",
]
CLAUDE_LINES = [line for path in RECORDED for line in path.read_bytes().splitlines() if line]

# Codex and Gemini have no recorded transcripts in the repo: these are the shapes the pinned CLIs
# print, as tests/test_parse_agents.py writes them out.
CODEX_OBJECTS: list[dict[str, Any]] = [
    {"type": "thread.started", "thread_id": "th-1"},
    {"type": "turn.started"},
    {
        "type": "item.started",
        "item": {"id": "c1", "type": "command_execution", "command": "ls", "status": "in_progress"},
    },
    {
        "type": "item.completed",
        "item": {
            "id": "c1",
            "type": "command_execution",
            "command": "ls",
            "aggregated_output": "a\n",
            "exit_code": 0,
            "status": "completed",
        },
    },
    {"type": "item.completed", "item": {"id": "m1", "type": "agent_message", "text": "done"}},
    {"type": "item.completed", "item": {"id": "r1", "type": "reasoning", "text": "thinking"}},
    {
        "type": "item.completed",
        "item": {
            "id": "f1",
            "type": "file_change",
            "changes": [{"path": "/w/a", "kind": "add"}],
            "status": "completed",
        },
    },
    {"type": "error", "message": "Reconnecting... 2/5 (429 Too Many Requests)"},
    {"type": "turn.failed", "error": {"message": "boom"}},
    {"type": "turn.completed", "usage": {"input_tokens": 10, "cached_input_tokens": 2, "output_tokens": 5}},
]
GEMINI_OBJECTS: list[dict[str, Any]] = [
    {"type": "init", "session_id": "s-1", "model": "gemini-2.5-flash"},
    {"type": "message", "role": "user", "content": "go"},
    {"type": "message", "role": "assistant", "content": "Let me ", "delta": True},
    {"type": "tool_use", "tool_name": "run_shell_command", "tool_id": "c1", "parameters": {"command": "ls"}},
    {"type": "tool_result", "tool_id": "c1", "status": "success", "output": "a b"},
    {"type": "tool_use", "tool_name": "replace", "tool_id": "e1", "parameters": {"file_path": "/w/a"}},
    {"type": "tool_result", "tool_id": "e1", "status": "error", "error": {"type": "x", "message": "no match"}},
    {"type": "error", "severity": "warning", "message": "loop detected"},
    {
        "type": "result",
        "status": "success",
        "stats": {"total_tokens": 1300, "input_tokens": 1000, "output_tokens": 300, "duration_ms": 5, "tool_calls": 1},
    },
]

DECODERS: dict[str, tuple[Callable[[], LineDecoder], list[bytes]]] = {
    "claude": (ClaudeDecoder, CLAUDE_LINES),
    "codex": (CodexDecoder, [json.dumps(o).encode() for o in CODEX_OBJECTS]),
    "gemini": (GeminiDecoder, [json.dumps(o).encode() for o in GEMINI_OBJECTS]),
}

# --- generated input ------------------------------------------------------------------------------

odd_numbers = st.sampled_from([10**30, -(10**30), 2**63, -(2**63) - 1, 1e308, -1e308, 5e-324, -0.0, 0, -1])
json_leaf = st.one_of(
    st.none(), st.booleans(), odd_numbers, st.integers(), st.floats(allow_nan=False), st.text(max_size=20)
)
json_value = st.recursive(
    json_leaf,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=12,
)


def _paths(obj: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key path inside a JSON object, so a generated value can replace any one of them."""
    out = [prefix] if prefix else []
    if isinstance(obj, dict):
        for key, value in obj.items():
            out += _paths(value, (*prefix, key))
    elif isinstance(obj, list):
        for i, value in enumerate(obj):
            out += _paths(value, (*prefix, i))
    return out


def _replaced(obj: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    copy = dict(obj) if isinstance(obj, dict) else list(obj)
    copy[path[0]] = _replaced(obj[path[0]], path[1:], value)
    return copy


@st.composite
def wrong_shape(draw: st.DrawFn, base: list[bytes]) -> bytes:
    """A real line with one value, anywhere in it, swapped for arbitrary JSON: a known type, wrong shape."""
    obj = json.loads(draw(st.sampled_from(base)))
    paths = _paths(obj)
    if paths:
        obj = _replaced(obj, draw(st.sampled_from(paths)), draw(json_value))
    return json.dumps(obj).encode()


def hostile_line(base: list[bytes]) -> st.SearchStrategy[bytes]:
    """Lines of every kind a CLI or a broken terminal can print (without their newline)."""
    real = st.sampled_from(base)
    return st.one_of(
        real,
        wrong_shape(base),
        real.flatmap(lambda line: st.integers(1, max(1, len(line) - 1)).map(lambda cut: line[:cut])),  # partial JSON
        real.map(lambda line: line + b"\r"),  # CRLF
        st.binary(max_size=64).map(lambda b: b.replace(b"\n", b"")),  # arbitrary bytes, invalid UTF-8, NUL
        st.sampled_from([b"\xff\xfe{", b"\x00\x00", b"\x1b[0m\x1b]0;t\x07", b"\r", b"{", b"[]", b"3", b'"s"']),
        st.integers(1, 3000).map(lambda n: b"[" * n + b"]" * n),  # deeply nested JSON
        st.integers(1, 3000).map(lambda n: b'{"type":"result","x":' + b"[" * n + b"]" * n + b"}"),
        st.integers(MAX_LINE - 2, MAX_LINE * 3).map(lambda n: b'{"type":"x","t":"' + b"a" * n + b'"}'),  # huge
        json_value.map(lambda v: json.dumps(v).encode()),
    )


@st.composite
def stream_and_chunks(draw: st.DrawFn, base: list[bytes]) -> tuple[bytes, list[bytes]]:
    lines = draw(st.lists(hostile_line(base), min_size=1, max_size=12))
    stream = b"\n".join(lines) + draw(st.sampled_from([b"\n", b"", b"\r\n"]))
    cuts = sorted(draw(st.lists(st.integers(0, len(stream)), max_size=20)))
    bounds = [0, *cuts, len(stream)]
    return stream, [stream[a:b] for a, b in itertools.pairwise(bounds)]


def framed(chunks: list[bytes]) -> list[bytes | Malformed]:
    framer = LineFramer(MAX_LINE)
    out: list[bytes | Malformed] = []
    for chunk in chunks:
        out += framer.feed(chunk)
    return out + framer.flush()


def expected_frames(stream: bytes) -> list[tuple[str, bytes | int]]:
    """What the framer must give, written out from the whole stream: every line but a blank one,
    a line over the bound as ``malformed`` with its size."""
    out: list[tuple[str, bytes | int]] = []
    for line in stream.split(b"\n"):
        if len(line) > MAX_LINE:
            out.append(("malformed", len(line)))
        elif line not in (b"", b"\r"):
            out.append(("line", line))
    return out


def decoded(make: Callable[[], LineDecoder], frames: list[bytes | Malformed]) -> list[Event]:
    decoder = make()
    events: list[Event] = []
    for frame in frames:
        if isinstance(frame, Malformed):
            events.append(frame)
            continue
        parsed, raw = decoder(frame, NOW)
        # Nothing silently dropped: every line gives an event, and its raw text is stored with it.
        assert parsed, f"line {frame[:80]!r} gave no event"
        assert raw is not None, f"line {frame[:80]!r} lost its raw text"
        events += parsed
    return events


# --- stream parser properties ---------------------------------------------------------------------


@pytest.mark.parametrize("cli", sorted(DECODERS))
def test_how_the_output_is_chunked_never_changes_the_events_and_no_line_is_lost(cli: str) -> None:
    make, base = DECODERS[cli]

    @BOUNDED
    @given(stream_and_chunks(base))
    def check(case: tuple[bytes, list[bytes]]) -> None:
        stream, chunks = case
        chunked, whole = framed(chunks), framed([stream])
        shape = [("malformed", f.size) if isinstance(f, Malformed) else ("line", f) for f in chunked]
        assert shape == expected_frames(stream)
        assert chunked == whole
        assert decoded(make, chunked) == decoded(make, whole)

    check()


@pytest.mark.parametrize("cli", sorted(DECODERS))
def test_a_line_of_any_bytes_gives_at_least_one_event_and_keeps_its_raw_text(cli: str) -> None:
    make, base = DECODERS[cli]

    @BOUNDED
    @given(st.lists(hostile_line(base), min_size=1, max_size=8))
    def check(lines: list[bytes]) -> None:
        decoded(make, [line for line in lines if line not in (b"", b"\r")])

    check()


def test_the_recorded_transcripts_read_byte_by_byte_give_the_same_events_as_read_whole() -> None:
    stream = b"".join(path.read_bytes() for path in RECORDED)
    big = LineFramer(10 * 1024 * 1024)
    whole = big.feed(stream) + big.flush()
    byte_framer = LineFramer(10 * 1024 * 1024)
    one_by_one = [frame for i in range(len(stream)) for frame in byte_framer.feed(stream[i : i + 1])]
    one_by_one += byte_framer.flush()
    assert len(whole) == len(CLAUDE_LINES)
    assert decoded(ClaudeDecoder, one_by_one) == decoded(ClaudeDecoder, whole)


def test_an_oversized_line_split_across_reads_is_one_malformed_event_with_its_full_size() -> None:
    line = b'{"type":"assistant","x":"' + b"y" * (MAX_LINE * 4) + b'"}'
    frames = framed([line[:100], line[100 : MAX_LINE + 7], line[MAX_LINE + 7 :] + b"\nnext\n"])
    assert len(frames) == 2
    (malformed, after) = frames
    assert isinstance(malformed, Malformed) and malformed.size == len(line)
    assert malformed.head.startswith('{"type":"assistant"')
    assert after == b"next"


def test_json_nested_deeper_than_the_decoder_reads_is_a_malformed_line_not_a_crash() -> None:
    line = b'{"type":"result","x":' + b"[" * 5000 + b"]" * 5000 + b"}"
    (event,), raw = ClaudeDecoder()(line, NOW)
    assert isinstance(event, Malformed) and "nested too deeply" in event.reason and event.size == len(line)
    assert raw is not None


# --- the stage table --------------------------------------------------------------------------------

MOVES_INTO = {
    Stage.CODING: {(Stage.BACKLOG, Trigger.START), (Stage.QA, Trigger.QA_FAILED)},
    Stage.QA: {(Stage.CODING, Trigger.CODED), (Stage.CODING, Trigger.REPORTED)},
    Stage.MERGE: {(Stage.QA, Trigger.QA_PASSED)},
    Stage.DONE: {(Stage.MERGE, Trigger.MERGED)},
    Stage.ARCHIVED: {(Stage.DONE, Trigger.ARCHIVE)},
}
HOLD_CLEARED_BY = {
    Trigger.UNBLOCK: Hold.BLOCKED,
    Trigger.RELEASE: Hold.REVIEW_HOLD,
    Trigger.RETRY_MERGE: Hold.MERGE_FAILURE,
}
HOLD_SET_BY = {
    Trigger.BLOCK: Hold.BLOCKED,
    Trigger.HOLD_FOR_REVIEW: Hold.REVIEW_HOLD,
    Trigger.MERGE_FAILED: Hold.MERGE_FAILURE,
}

facts = st.builds(
    Facts,
    reason=st.one_of(st.none(), st.sampled_from(["", "flaky gate", "needs a person"])),
    commits_ahead=st.one_of(st.none(), st.integers(-3, 3)),
    files_changed=st.one_of(st.none(), st.integers(-3, 3)),
)


@pytest.mark.parametrize(
    ("state", "trigger", "seen"),
    [
        (ItemState(Stage.CODING), Trigger.CODED, Facts(commits_ahead=-1)),
        (ItemState(Stage.QA), Trigger.QA_PASSED, Facts(commits_ahead=-2)),
        (ItemState(Stage.MERGE), Trigger.MERGED, Facts(files_changed=-1)),
    ],
)
def test_a_negative_count_of_commits_or_changed_files_does_not_pass_a_guard(
    state: ItemState, trigger: Trigger, seen: Facts
) -> None:
    with pytest.raises(IllegalTransition, match=r"no commits ahead|changed no files"):
        apply(state, trigger, seen)


class StageMachine(RuleBasedStateMachine):
    """One item driven by any sequence of triggers with any facts, through the pure ``apply``."""

    def __init__(self) -> None:
        super().__init__()
        self.state = ItemState(Stage.BACKLOG)

    @rule(trigger=st.sampled_from(list(Trigger)), seen=facts)
    def fire(self, trigger: Trigger, seen: Facts) -> None:
        before = self.state
        try:
            after = apply(before, trigger, seen)
        except IllegalTransition as err:
            assert err.state == before and err.trigger is trigger and err.why
            return
        self.check_accepted(before, trigger, seen, after)
        self.state = after

    def check_accepted(self, before: ItemState, trigger: Trigger, seen: Facts, after: ItemState) -> None:
        assert after != before, f"{trigger} from {before.describe()} was accepted as a no-op"
        if trigger is Trigger.UNFREEZE:
            assert before.frozen and after == ItemState(before.stage, before.hold, before.hold_reason)
            return
        assert not before.frozen, f"{trigger} changed a frozen item"
        if trigger is Trigger.FREEZE:
            assert before.stage is not Stage.ARCHIVED and after.frozen and after.stage is before.stage
        elif trigger in HOLD_CLEARED_BY:
            assert before.hold is HOLD_CLEARED_BY[trigger] and after.hold is None and after.stage is before.stage
        elif trigger in HOLD_SET_BY:
            assert before.hold is None and seen.reason, "a hold needs a reason and no other hold"
            assert after.hold is HOLD_SET_BY[trigger] and after.hold_reason == seen.reason
            assert after.stage is before.stage
            if trigger is Trigger.MERGE_FAILED:
                assert before.stage is Stage.MERGE
        elif trigger is Trigger.DEMOTE:
            assert before.stage in (Stage.CODING, Stage.QA, Stage.MERGE)
            assert after == ItemState(Stage.BACKLOG)
        elif trigger in (Trigger.ABANDON, Trigger.SUPERSEDE):  # a person ends it unfinished, whatever held it
            assert before.stage in (Stage.BACKLOG, Stage.CODING, Stage.QA, Stage.MERGE) and seen.reason
            assert after == ItemState(Stage.ARCHIVED)
        elif trigger is Trigger.CLOSE:  # a person closes a spike on its report: done, nothing merged
            assert before.stage is Stage.QA and after == ItemState(Stage.DONE)
        else:
            assert before.hold is None, f"{trigger} moved an item held as {before.hold}"
            assert (before.stage, trigger) in MOVES_INTO[after.stage], f"{trigger} did not start at {before.stage}"
            if trigger is Trigger.REPORTED:  # a spike moves on with its report, not with code
                assert (seen.reason or "").strip(), "a spike moved on without a report"
            elif after.stage in (Stage.QA, Stage.MERGE):
                assert seen.commits_ahead is not None and seen.commits_ahead > 0, "moved on with no commits ahead"
            if after.stage is Stage.DONE:
                assert seen.files_changed is not None and seen.files_changed > 0, (
                    "done without a merge that changed files"
                )

    @invariant()
    def a_hold_always_has_a_reason_and_archived_items_hold_nothing(self) -> None:
        assert (self.state.hold is None) == (self.state.hold_reason is None)
        if self.state.stage is Stage.ARCHIVED:
            assert self.state.hold is None and not self.state.frozen


StageMachine.TestCase.settings = settings(
    derandomize=True, database=None, deadline=None, max_examples=300, stateful_step_count=40
)
test_no_sequence_of_triggers_breaks_a_stage_invariant = StageMachine.TestCase


class StoredStageMachine(RuleBasedStateMachine):
    """The same random triggers through the real Store (SQLite in a temporary directory): its
    compare-and-set agrees with the pure table and its event log is an unbroken chain of states."""

    def __init__(self) -> None:
        super().__init__()
        self.dir = tempfile.TemporaryDirectory()
        self.store = open_sqlite(Path(self.dir.name) / "state.db")
        self.item_id = self.store.create_item(ItemDraft.model_validate({"title": "Add login"}), "ann").id
        self.model = ItemState(Stage.BACKLOG)

    def teardown(self) -> None:
        self.store.close()
        self.dir.cleanup()

    @rule(trigger=st.sampled_from(list(Trigger)), seen=facts, pass_expected=st.booleans())
    def fire(self, trigger: Trigger, seen: Facts, pass_expected: bool) -> None:
        events_before = self.store.last_event_id()
        try:
            wanted = apply(self.model, trigger, seen)
        except IllegalTransition:
            with pytest.raises(IllegalTransition) as raised:
                self.store.transition(
                    self.item_id, trigger, "bot", expected=self.model if pass_expected else None, facts=seen
                )
            assert raised.value.item_id == self.item_id and raised.value.state == self.model
            assert self.store.last_event_id() == events_before, "a refused transition was logged"
            return
        item = self.store.transition(
            self.item_id, trigger, "bot", expected=self.model if pass_expected else None, facts=seen
        )
        assert item.state == wanted
        self.model = wanted

    @rule(trigger=st.sampled_from(list(Trigger)))
    def a_stale_expected_state_is_a_conflict(self, trigger: Trigger) -> None:
        stale = ItemState(Stage.ARCHIVED) if self.model.stage is not Stage.ARCHIVED else ItemState(Stage.BACKLOG)
        events_before = self.store.last_event_id()
        with pytest.raises(StateConflict):
            self.store.transition(self.item_id, trigger, "bot", expected=stale, facts=Facts("r", 1, 1))
        assert self.store.last_event_id() == events_before and self.store.get_item(self.item_id).state == self.model

    @invariant()
    def the_event_log_is_an_unbroken_chain_ending_at_the_stored_state(self) -> None:
        rows = self.store.events_after(0, item_id=self.item_id)
        assert rows[0].kind == "created"
        at = (rows[0].to_stage, rows[0].to_hold)
        for row in rows[1:]:
            assert row.kind == "transition"
            assert (row.from_stage, row.from_hold) == at, f"event {row.id} starts where the last did not end"
            at = (row.to_stage, row.to_hold)
        state = self.store.get_item(self.item_id).state
        assert state == self.model and at == (state.stage.value, state.hold.value if state.hold else None)


StoredStageMachine.TestCase.settings = settings(
    derandomize=True, database=None, deadline=None, max_examples=25, stateful_step_count=25
)
test_the_store_applies_any_sequence_of_triggers_as_the_table_does_and_logs_an_unbroken_chain = (
    StoredStageMachine.TestCase
)
