"""Item files: Markdown with YAML front matter, read, rendered, exported and read back."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from gangline.core.errors import ConfigError
from gangline.core.items import Criterion, Item, ItemDraft, Kind
from gangline.core.profiles import QaMode
from gangline.core.stages import ItemState, Stage
from gangline.project.itemfile import (
    ItemFile,
    export_items,
    item_filename,
    parse_item_markdown,
    read_item_dir,
    read_item_file,
    render_item_markdown,
)
from kits import helpers

EXAMPLE = """\
---
id: 12                  # present on export
kind: story
title: Add login
priority: 0
depends_on: [3, 4]
pinned_agent: coder-opus
qa_mode: agent
frozen: false
stage: coding           # informational
---
Body markdown...

## Acceptance criteria

- [ ] first criterion
- [x] second criterion
"""


def make_item(**fields: Any) -> Item:
    return helpers.make_item(**{**{"id": 12}, **fields})


def item_text(front: str, rest: str = "") -> str:
    return f"---\n{front}\n---\n{rest}"


def parse(text: str) -> ItemFile:
    return parse_item_markdown(text, "items/12-add-login.md")


def problem(text: str) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        parse(text)
    return caught.value


# --- reading -----------------------------------------------------------------------------------


def test_the_documented_example_reads_as_a_draft_and_ignores_the_stage() -> None:
    parsed = parse(EXAMPLE)
    assert parsed.id == 12
    assert parsed.draft == ItemDraft(
        title="Add login",
        body="Body markdown...",
        criteria=(Criterion(text="first criterion"), Criterion(text="second criterion", checked=True)),
        depends_on=(3, 4),
        pinned_agent="coder-opus",
        qa_mode=QaMode.AGENT,
    )


def test_a_hand_written_file_needs_only_a_title() -> None:
    parsed = parse(item_text("title: Fix the thing", "It broke."))
    assert parsed.id is None
    assert parsed.draft == ItemDraft(title="Fix the thing", body="It broke.")


def test_windows_line_endings_and_a_byte_order_mark_are_accepted() -> None:
    parsed = parse("\ufeff" + EXAMPLE.replace("\n", "\r\n"))
    assert parsed.draft.title == "Add login"
    assert len(parsed.draft.criteria) == 2


def test_criteria_accept_any_bullet_and_either_case_of_x() -> None:
    parsed = parse(item_text("title: t", "## ACCEPTANCE Criteria\n* [X] one\n+ [ ] two\n   - [x] three"))
    assert [(c.text, c.checked) for c in parsed.draft.criteria] == [("one", True), ("two", False), ("three", True)]


def test_a_criterion_may_wrap_onto_indented_lines() -> None:
    parsed = parse(item_text("title: t", "## Acceptance criteria\n- [ ] a long\n  criterion\n- [ ] short"))
    assert [c.text for c in parsed.draft.criteria] == ["a long criterion", "short"]


def test_the_last_criteria_heading_wins_and_earlier_ones_stay_in_the_body() -> None:
    rest = "Intro\n\n## Acceptance criteria\n\n- [ ] old draft\n\n## Acceptance criteria\n\n- [ ] real"
    parsed = parse(item_text("title: t", rest))
    assert [c.text for c in parsed.draft.criteria] == ["real"]
    assert parsed.draft.body == "Intro\n\n## Acceptance criteria\n\n- [ ] old draft"


def test_a_criteria_heading_inside_a_code_fence_is_body_text() -> None:
    rest = "Example:\n\n~~~markdown\n## Acceptance criteria\n- [ ] quoted\n~~~"
    parsed = parse(item_text("title: t", rest))
    assert parsed.draft.criteria == ()
    assert parsed.draft.body == rest


def test_text_after_the_criteria_section_is_body() -> None:
    rest = "Intro\n\n## Acceptance criteria\n- [ ] one\n\n## Notes\nLater."
    parsed = parse(item_text("title: t", rest))
    assert [c.text for c in parsed.draft.criteria] == ["one"]
    assert parsed.draft.body == "Intro\n\n## Notes\nLater."


# --- errors a writer sees ----------------------------------------------------------------------


def test_a_file_without_front_matter_says_front_matter_is_expected() -> None:
    err = problem("# Add login\n\nSome text")
    assert err.field == "items/12-add-login.md"
    assert "`---` YAML front matter" in str(err)
    assert "'# Add login'" in str(err)


def test_front_matter_that_is_never_closed_is_reported() -> None:
    assert "never closed" in str(problem("---\ntitle: t\n\nBody"))


def test_invalid_yaml_names_the_file_and_line() -> None:
    err = problem(item_text("kind: story\ntitle: [unclosed\npriority: 1"))
    assert err.field.startswith("items/12-add-login.md: line ")
    assert "not valid YAML" in str(err)


def test_yaml_errors_count_lines_from_the_top_of_the_file() -> None:
    err = problem(item_text("title: t\nkind: story\n  bad: indent"))
    assert err.field == "items/12-add-login.md: line 4"


def test_front_matter_must_be_a_mapping() -> None:
    assert "must be a mapping" in str(problem(item_text("- title: t")))


def test_an_unknown_key_is_named() -> None:
    err = problem(item_text("title: t\nowner: me"))
    assert err.field == "items/12-add-login.md: 'owner'"
    assert "expected one of id, kind, title" in str(err)


@pytest.mark.parametrize(
    ("front", "key", "says"),
    [
        ("title: 2024-01-01", "title", "valid string"),
        ("title: t\nkind: epic", "kind", "found 'epic'"),
        ("title: t\ndepends_on: 3", "depends_on", "should be a list"),
        ("title: t\ndepends_on: [1, -2]", "depends_on[1]", "greater than 0"),
        ("title: t\npriority: high", "priority", "valid integer; found 'high'"),
        ("title: t\nid: 0", "id", "positive whole number"),
        ("title: t\nid: 'twelve'", "id", "positive whole number"),
        ("title: t\nqa_mode: robots", "qa_mode", "'server', 'agent' or 'human'"),
        ("kind: bug", "title", "required"),
    ],
)
def test_a_bad_value_names_the_file_and_key(front: str, key: str, says: str) -> None:
    err = problem(item_text(front))
    assert err.field == f"items/12-add-login.md: {key}"
    assert says in str(err)


def test_a_stray_line_in_the_criteria_section_names_its_line() -> None:
    err = problem(item_text("title: t", "Body\n\n## Acceptance criteria\n- [ ] ok\n- forgot the box"))
    assert err.field == "items/12-add-login.md: line 8"
    assert "checkbox items like `- [ ] text`" in str(err)
    assert "'- forgot the box'" in str(err)


def test_an_empty_criterion_names_its_line() -> None:
    err = problem(item_text("title: t", "## Acceptance criteria\n- [x]"))
    assert err.field == "items/12-add-login.md: line 5"
    assert "must not be empty" in str(err)


@pytest.mark.parametrize(
    "front",
    [
        "title: !!python/object/apply:os.system ['touch pwned']",
        "title: !!python/name:os.system",
        "!!python/object:__main__.X {}",
    ],
)
def test_python_tags_in_front_matter_are_rejected_not_run(
    front: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    err = problem(item_text(front))
    assert "not valid YAML" in str(err)
    assert not (tmp_path / "pwned").exists()


def test_a_file_that_is_not_utf8_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "1-x.md"
    path.write_bytes(b"---\ntitle: caf\xe9\n---\n")
    with pytest.raises(ConfigError, match="must be UTF-8 text; line 2 is not"):
        read_item_file(path)


def test_an_oversized_file_is_refused_before_parsing(tmp_path: Path) -> None:
    path = tmp_path / "1-x.md"
    path.write_bytes(b"---\ntitle: t\n---\n" + b"a" * (3 * 1024 * 1024))
    with pytest.raises(ConfigError, match="at most 2097152 bytes"):
        read_item_file(path)


# --- round trips -------------------------------------------------------------------------------

HOSTILE_TITLES = [
    "Add login: the sequel",
    "# not a comment",
    "\"double\" and 'single' quotes",
    "- looks like a list",
    "--- ",
    "...",
    "!!python/object/apply:os.system ['id']",
    "&anchor *alias",
    "{flow: map} [flow, seq]",
    "yes",
    "null",
    "~",
    "0x1F",
    "1e3",
    "2024-01-01",
    "=",
    "<<",
    "% directive",
    "@reserved `backtick",
    "| literal > folded",
    "? complex key",
    "Ελληνικά, العربية, עברית, 日本語, 한국어 🎉👨‍👩‍👧",
    "zero\u200bwidth\ufeffbom",
    "x" * 200,
    "word " * 39 + "end",
]


@pytest.mark.parametrize("title", HOSTILE_TITLES)
def test_any_valid_title_survives_a_round_trip(title: str) -> None:
    item = make_item(title=title, criteria=(Criterion(text="title: still a criterion", checked=True),))
    parsed = parse(render_item_markdown(item))
    assert (parsed.id, parsed.draft) == (12, item.draft())


HOSTILE_BODIES = [
    "",
    "Plain text.",
    "---\ntitle: injected\n---",
    "## Acceptance criteria\n\n- [x] a criterion the body only talks about",
    "```markdown\n## Acceptance criteria\n- [ ] inside a fence\n```",
    "```\nan unclosed fence swallows nothing",
    "~~~~\n```\n## Acceptance criteria\n~~~~\ntrailing",
    "# Title\n\n## Notes\n\n- [ ] a checkbox in the notes",
    "    ## Acceptance criteria (indented code, not a heading)",
    "\tleading tab\n\nform\x0cfeed and \x1b[31mescape\x1b[0m",
    "Unicode line\u2028separator and next\x85line",
]


@pytest.mark.parametrize("body", HOSTILE_BODIES)
@pytest.mark.parametrize("criteria", [(), (Criterion(text="real one"), Criterion(text="[x] two", checked=True))])
def test_any_valid_body_survives_a_round_trip(body: str, criteria: tuple[Criterion, ...]) -> None:
    item = make_item(body=body, criteria=criteria)
    assert parse(render_item_markdown(item)).draft == item.draft()


def test_every_field_survives_a_round_trip() -> None:
    item = make_item(
        kind=Kind.REFACTOR,
        depends_on=(4, 3),
        priority=-7,
        pinned_agent="coder.v2_x-1",
        qa_mode=QaMode.HUMAN,
        state=ItemState(Stage.MERGE, frozen=True),
    )
    assert parse(render_item_markdown(item)).draft == item.draft()


def test_the_rendered_file_reads_like_the_documented_example() -> None:
    item = make_item(
        body="Body markdown...",
        criteria=(Criterion(text="first criterion"), Criterion(text="second criterion", checked=True)),
        depends_on=(3, 4),
        pinned_agent="coder-opus",
        qa_mode=QaMode.AGENT,
        state=ItemState(Stage.CODING),
    )
    expected = "".join(line.split("  #")[0].rstrip() + "\n" for line in EXAMPLE.splitlines())
    assert render_item_markdown(item) == expected


def test_a_hostile_title_stays_a_quoted_string_in_the_front_matter() -> None:
    text = render_item_markdown(make_item(title="!!python/object/apply:os.system ['id']"))
    assert "title: '!!python/object/apply:os.system [''id'']'\n" in text


# --- export and directories --------------------------------------------------------------------


def test_export_writes_one_file_per_item_and_reads_back_in_id_order(tmp_path: Path) -> None:
    items = [make_item(id=10, slug="ten", title="Ten"), make_item(id=2, slug="two", title="Two")]
    written = export_items(items, tmp_path / "items")
    assert [p.name for p in written] == ["10-ten.md", "2-two.md"]
    read = read_item_dir(tmp_path / "items")
    assert [(p.name, f.id, f.draft.title) for p, f in read] == [("2-two.md", 2, "Two"), ("10-ten.md", 10, "Ten")]
    assert sorted(os.listdir(tmp_path / "items")) == ["10-ten.md", "2-two.md"]  # no temp files left


def test_export_overwrites_an_older_export(tmp_path: Path) -> None:
    export_items([make_item(body="old")], tmp_path)
    export_items([make_item(body="new")], tmp_path)
    assert read_item_file(tmp_path / "12-add-login.md").draft.body == "new"


def test_export_never_writes_outside_its_directory(tmp_path: Path) -> None:
    outside = tmp_path / "outside.md"
    outside.write_text("precious")
    items_dir = tmp_path / "items"
    items_dir.mkdir()
    (items_dir / "12-add-login.md").symlink_to(outside)
    [path] = export_items([make_item(slug="../../outside")], items_dir)
    assert outside.read_text() == "precious"
    assert path.parent == items_dir
    assert item_filename(make_item(slug="../../outside")) == "12-outside.md"


def test_reading_a_directory_reports_the_file_at_fault(tmp_path: Path) -> None:
    export_items([make_item()], tmp_path)
    (tmp_path / "13-broken.md").write_text("no front matter\n")
    with pytest.raises(ConfigError) as caught:
        read_item_dir(tmp_path)
    assert caught.value.field == str(tmp_path / "13-broken.md")


def test_two_files_claiming_one_id_are_an_error(tmp_path: Path) -> None:
    export_items([make_item(slug="old-name")], tmp_path)
    export_items([make_item(slug="new-name")], tmp_path)
    with pytest.raises(ConfigError, match=r"item 12 is also defined by .*12-new-name\.md"):
        read_item_dir(tmp_path)


def test_only_markdown_files_are_read(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("ignored")
    (tmp_path / ".hidden.md").write_text("ignored")
    (tmp_path / "dir.md").mkdir()
    (tmp_path / "new.md").write_text(item_text("title: New"))
    assert [(p.name, f.id) for p, f in read_item_dir(tmp_path)] == [("new.md", None)]
