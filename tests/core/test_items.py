"""Work item drafts, patches, slugs and templates."""

from __future__ import annotations

import re
from typing import Any

import pytest
from pydantic import ValidationError

from gangline.core.errors import ConfigError
from gangline.core.items import (
    MAX_BODY_BYTES,
    Criterion,
    Item,
    ItemDraft,
    ItemPatch,
    Kind,
    slugify,
    template,
)
from gangline.core.profiles import QaMode
from gangline.core.stages import ItemState, Stage
from gangline.core.validation import validated
from kits import helpers

SLUG = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")


def problem(data: dict[str, object]) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        validated(ItemDraft, data, "items/1-x.md")
    return caught.value


def make_item(**fields: Any) -> Item:
    return helpers.make_item(
        **{
            **{
                "id": 7,
                "body": "Users sign in.",
                "criteria": (Criterion(text="a form"),),
                "depends_on": (3,),
                "priority": 5,
                "pinned_agent": "coder-opus",
                "qa_mode": QaMode.AGENT,
                "state": ItemState(Stage.QA, frozen=True),
                "created_at": 1.0,
                "updated_at": 2.0,
            },
            **fields,
        }
    )


def test_a_title_loses_its_surrounding_whitespace() -> None:
    assert ItemDraft(title="  Add login \n").title == "Add login"


@pytest.mark.parametrize(
    "title",
    ["Add\nlogin", "Add\x00login", "\x1b[31mred\x1b[0m", "tab\there", "next\x85line", "line\u2028separator"],
)
def test_a_title_with_a_control_character_is_rejected_saying_so(title: str) -> None:
    err = problem({"title": title})
    assert err.field == "items/1-x.md: title"
    assert "control characters" in str(err)


@pytest.mark.parametrize(
    "title", ["Ελληνικά και English", "العربية", "日本語のタイトル", "Ship it 🚀 👨‍👩‍👧", "Crème brûlée"]
)
def test_titles_in_any_script_and_with_emoji_are_kept_as_written(title: str) -> None:
    assert ItemDraft(title=title).title == title


@pytest.mark.parametrize("title", ["", "   ", "\n"])
def test_an_empty_title_is_rejected(title: str) -> None:
    assert "must not be empty" in str(problem({"title": title}))


def test_a_title_may_be_200_characters_but_not_201() -> None:
    assert len(ItemDraft(title="a" * 200).title) == 200
    assert "at most 200 characters; found 201" in str(problem({"title": "a" * 201}))


def test_a_missing_title_is_named() -> None:
    err = problem({"kind": "bug"})
    assert err.field == "items/1-x.md: title"
    assert "required" in str(err)


def test_a_title_that_is_not_text_says_what_was_found() -> None:
    assert "found True" in str(problem({"title": True}))


# --- bodies ------------------------------------------------------------------------------------


def test_a_body_with_nul_is_rejected() -> None:
    err = problem({"title": "t", "body": "before\x00after"})
    assert err.field == "items/1-x.md: body"
    assert "NUL" in str(err)


def test_a_body_is_capped_at_one_mebibyte_of_utf8() -> None:
    assert len(ItemDraft(title="t", body="a" * MAX_BODY_BYTES).body) == MAX_BODY_BYTES
    # Three bytes per character: far fewer characters than the cap, still too large.
    err = problem({"title": "t", "body": "語" * (MAX_BODY_BYTES // 3 + 1)})
    assert "at most 1048576 bytes" in str(err)


def test_a_body_keeps_its_markdown_but_not_its_outer_blank_lines_or_carriage_returns() -> None:
    draft = ItemDraft(title="t", body="\n\n    code\r\n\r\n- item\t\x1b \n\n")
    assert draft.body == "    code\n\n- item\t\x1b"


# --- the other fields --------------------------------------------------------------------------


def test_a_new_draft_is_a_story_with_nothing_else_set() -> None:
    draft = ItemDraft(title="t")
    assert (draft.kind, draft.body, draft.criteria, draft.depends_on, draft.priority) == (Kind.STORY, "", (), (), 0)
    assert (draft.pinned_agent, draft.qa_mode, draft.frozen) == (None, None, False)


@pytest.mark.parametrize(
    ("depends_on", "field", "says"),
    [
        ([1, 1], "depends_on", "lists item 1 more than once"),
        ([4, 0], "depends_on[1]", "greater than 0"),
        ([True], "depends_on[0]", "valid integer"),
        (["3"], "depends_on[0]", "valid integer"),
        (3, "depends_on", "should be a list; found 3"),
    ],
)
def test_bad_dependencies_are_named_with_their_position(depends_on: object, field: str, says: str) -> None:
    err = problem({"title": "t", "depends_on": depends_on})
    assert err.field == f"items/1-x.md: {field}"
    assert says in str(err)


@pytest.mark.parametrize(("priority", "ok"), [(-1000, True), (1000, True), (1001, False), (-1001, False)])
def test_priority_runs_from_minus_1000_to_1000(priority: int, ok: bool) -> None:
    if ok:
        assert ItemDraft(title="t", priority=priority).priority == priority
    else:
        assert problem({"title": "t", "priority": priority}).field == "items/1-x.md: priority"


@pytest.mark.parametrize("name", ["../coder", "", "-x", "a b", "x" * 65])
def test_a_pinned_agent_must_be_a_profile_name(name: str) -> None:
    assert "agent profile name" in str(problem({"title": "t", "pinned_agent": name}))


def test_an_unknown_kind_lists_the_kinds() -> None:
    err = problem({"title": "t", "kind": "epic"})
    assert err.field == "items/1-x.md: kind"
    assert "'story', 'bug', 'spike' or 'refactor'; found 'epic'" in str(err)


def test_an_unknown_field_is_rejected_by_name() -> None:
    assert problem({"title": "t", "owner": "me"}).field == "items/1-x.md: owner"


def test_criteria_may_be_given_as_plain_text() -> None:
    draft = ItemDraft.model_validate({"title": "t", "criteria": [" works ", {"text": "tested", "checked": True}]})
    assert draft.criteria == (Criterion(text="works"), Criterion(text="tested", checked=True))


def test_a_criterion_is_one_line() -> None:
    err = problem({"title": "t", "criteria": ["fine", "two\nlines"]})
    assert err.field == "items/1-x.md: criteria[1].text"


# --- patches -----------------------------------------------------------------------------------


def test_a_patch_changes_only_the_fields_it_sets() -> None:
    draft = ItemDraft(title="Old", body="Body", priority=3, pinned_agent="coder")
    patched = ItemPatch(title="New", criteria=(Criterion(text="c"),)).apply_to(draft)
    assert patched == draft.model_copy(update={"title": "New", "criteria": (Criterion(text="c"),)})


def test_a_patch_clears_the_pinned_agent_and_qa_mode() -> None:
    draft = ItemDraft(title="t", pinned_agent="coder", qa_mode=QaMode.HUMAN)
    patched = ItemPatch(clear=("pinned_agent", "qa_mode")).apply_to(draft)
    assert (patched.pinned_agent, patched.qa_mode) == (None, None)


def test_a_patch_can_set_false_and_zero() -> None:
    draft = ItemDraft(title="t", frozen=True, priority=9)
    assert ItemPatch(frozen=False, priority=0).apply_to(draft) == ItemDraft(title="t")


def test_a_patch_cannot_both_set_and_clear_a_field() -> None:
    with pytest.raises(ValidationError, match="both set and cleared"):
        ItemPatch(pinned_agent="coder", clear=("pinned_agent",))


def test_a_patch_can_clear_only_optional_fields() -> None:
    with pytest.raises(ValidationError, match="clear"):
        ItemPatch.model_validate({"clear": ["title"]})


def test_a_patch_is_validated_like_a_draft() -> None:
    with pytest.raises(ValidationError, match="control characters"):
        ItemPatch(title="a\nb")


# --- stored items ------------------------------------------------------------------------------


def test_an_item_gives_back_its_editable_draft() -> None:
    item = make_item()
    assert item.draft() == ItemDraft(
        title="Add login",
        body="Users sign in.",
        criteria=(Criterion(text="a form"),),
        depends_on=(3,),
        priority=5,
        pinned_agent="coder-opus",
        qa_mode=QaMode.AGENT,
        frozen=True,
    )
    assert (item.name, item.stage) == ("7-add-login", Stage.QA)


# --- slugs -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("title", "slug"),
    [
        ("Add login", "add-login"),
        ("../../etc/passwd", "etc-passwd"),
        ("rm -rf /; echo", "rm-rf-echo"),
        ("日本語のタイトル", "item"),
        ("", "item"),
        ("Crème brûlée ﬁx", "creme-brulee-fix"),
        ("--Already--slugged--", "already-slugged"),
    ],
)
def test_slugify_keeps_ascii_words_only(title: str, slug: str) -> None:
    assert slugify(title) == slug


@pytest.mark.parametrize(
    "title", ["x" * 500, "word " * 100, "a-" * 300, "\x00\x1b[2J..\\..", "Ω" * 60 + " end", "a" * 47 + " bc"]
)
def test_slugify_is_always_a_short_safe_name(title: str) -> None:
    slug = slugify(title)
    assert SLUG.match(slug)
    assert len(slug) <= 48
    assert slugify(slug) == slug


# --- templates ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "headings", "criteria"),
    [
        (Kind.STORY, ["Context", "Notes"], []),
        (
            Kind.BUG,
            ["Steps to reproduce", "Expected", "Actual"],
            ["The bug no longer reproduces", "A regression test covers it"],
        ),
        (Kind.SPIKE, ["Question", "Time box", "Findings"], []),
        (Kind.REFACTOR, ["Motivation", "Constraints"], ["Behaviour is unchanged: the existing tests pass"]),
    ],
)
def test_each_kind_has_a_template(kind: Kind, headings: list[str], criteria: list[str]) -> None:
    body, starting = template(kind)
    assert re.findall(r"^## (.+)$", body, re.MULTILINE) == headings
    assert [c.text for c in starting] == criteria
    assert not any(c.checked for c in starting)


def test_a_draft_from_a_template_is_valid_and_keeps_the_template() -> None:
    body, criteria = template(Kind.BUG)
    fields = {"kind": Kind.BUG, "title": " Crash on save ", "priority": 2, "qa_mode": QaMode.HUMAN}
    draft = validated(ItemDraft, {**fields, "body": body, "criteria": criteria})
    assert (draft.title, draft.priority, draft.qa_mode) == ("Crash on save", 2, QaMode.HUMAN)
    assert (draft.body, draft.criteria) == template(Kind.BUG)
