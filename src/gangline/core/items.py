"""Work items: the draft a person writes, a patch to it, the stored item, slugs and templates."""

from __future__ import annotations

import enum
import re
import unicodedata
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictInt, model_validator
from pydantic_core import PydanticCustomError

from gangline.core.profiles import QaMode
from gangline.core.stages import ItemState, Stage

MAX_TITLE_CHARS = 200
MAX_CRITERION_CHARS = 2000
MAX_BODY_BYTES = 1024 * 1024
MAX_SLUG_CHARS = 48
# Line and paragraph separators break a "single line" as surely as a newline does.
_LINE_BREAKING_CATEGORIES = frozenset({"Cc", "Zl", "Zp", "Cs"})
_AGENT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


class Kind(enum.StrEnum):
    STORY = "story"
    BUG = "bug"
    SPIKE = "spike"
    REFACTOR = "refactor"


def _invalid(kind: str, message: str) -> PydanticCustomError:
    # pydantic formats "{name}" placeholders in the template; none of ours come from user text.
    return PydanticCustomError(f"item_{kind}", message.replace("{", "(").replace("}", ")"))


def _first_line_breaker(value: str) -> tuple[int, str] | None:
    for index, char in enumerate(value):
        if unicodedata.category(char) in _LINE_BREAKING_CATEGORIES:
            return index, char
    return None


def _check_one_line(value: str, what: str, max_chars: int) -> str:
    value = value.strip()
    bad = _first_line_breaker(value)
    if bad is not None:
        index, char = bad
        raise _invalid(
            "control_character",
            f"{what} must be a single line of text without control characters; "
            f"found U+{ord(char):04X} at character {index + 1}",
        )
    if not value:
        raise _invalid("empty", f"{what} is required and must not be empty or only whitespace")
    if len(value) > max_chars:
        raise _invalid("too_long", f"{what} must be at most {max_chars} characters; found {len(value)}")
    return value


def _check_title(value: str) -> str:
    return _check_one_line(value, "a title", MAX_TITLE_CHARS)


def _check_criterion_text(value: str) -> str:
    return _check_one_line(value, "a criterion", MAX_CRITERION_CHARS)


_LEADING_BLANK_LINES = re.compile(r"\A(?:[ \t]*\n)+")


def _check_body(value: str) -> str:
    # Normalised so that a body survives a round trip through an item file unchanged:
    # one newline convention, no blank lines before it, no whitespace after it.
    value = value.replace("\r\n", "\n").replace("\r", "\n")
    value = _LEADING_BLANK_LINES.sub("", value).rstrip()
    if "\x00" in value:
        raise _invalid(
            "nul_character", f"the body must not contain NUL (U+0000); found one at {value.index(chr(0)) + 1}"
        )
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError as err:
        raise _invalid(
            "not_unicode", f"the body is not valid Unicode text (a lone surrogate at {err.start + 1})"
        ) from None
    if size > MAX_BODY_BYTES:
        raise _invalid("too_large", f"the body must be at most {MAX_BODY_BYTES} bytes (1 MiB) as UTF-8; found {size}")
    return value


def _check_agent_name(value: str) -> str:
    if not _AGENT_NAME.fullmatch(value):
        raise _invalid(
            "agent_name",
            "an agent profile name is 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit",
        )
    return value


def _check_unique(ids: tuple[int, ...]) -> tuple[int, ...]:
    seen: set[int] = set()
    for item_id in ids:
        if item_id in seen:
            raise _invalid("duplicate", f"lists item {item_id} more than once")
        seen.add(item_id)
    return ids


Title = Annotated[str, AfterValidator(_check_title)]
Body = Annotated[str, AfterValidator(_check_body)]
ItemId = Annotated[StrictInt, Field(gt=0)]
DependsOn = Annotated[tuple[ItemId, ...], Field(max_length=500), AfterValidator(_check_unique)]
Priority = Annotated[StrictInt, Field(ge=-1000, le=1000)]
AgentName = Annotated[str, AfterValidator(_check_agent_name)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Criterion(_Strict):
    """One acceptance criterion: a single line of text, checked or not. A bare string is accepted."""

    text: Annotated[str, AfterValidator(_check_criterion_text)]
    checked: bool = False

    @model_validator(mode="before")
    @classmethod
    def _from_text(cls, data: Any) -> Any:
        return {"text": data} if isinstance(data, str) else data


Criteria = Annotated[tuple[Criterion, ...], Field(max_length=500)]


class ItemDraft(_Strict):
    """The part of a work item a person writes and edits."""

    kind: Kind = Kind.STORY
    title: Title
    body: Body = ""
    criteria: Criteria = ()
    depends_on: DependsOn = ()
    priority: Priority = 0  # higher runs first
    pinned_agent: AgentName | None = None
    qa_mode: QaMode | None = None  # None: the project's default
    frozen: bool = False


ClearableField = Literal["pinned_agent", "qa_mode"]


class ItemPatch(_Strict):
    """A change to a draft: ``None`` leaves a field as it is; ``clear`` resets optional fields to ``None``."""

    kind: Kind | None = None
    title: Title | None = None
    body: Body | None = None
    criteria: Criteria | None = None
    depends_on: DependsOn | None = None
    priority: Priority | None = None
    pinned_agent: AgentName | None = None
    qa_mode: QaMode | None = None
    frozen: bool | None = None
    clear: tuple[ClearableField, ...] = ()

    @model_validator(mode="after")
    def _clear_is_not_also_set(self) -> ItemPatch:
        for name in self.clear:
            if getattr(self, name) is not None:
                raise _invalid("conflict", f"{name} is both set and cleared; do one or the other")
        return self

    def apply_to(self, draft: ItemDraft) -> ItemDraft:
        """``draft`` with this patch's changes, validated again as a whole."""
        changes = {name: value for name, value in self if name != "clear" and value is not None}
        changes.update(dict.fromkeys(self.clear))
        return ItemDraft.model_validate({**dict(draft), **changes})


@dataclass(frozen=True)
class Item:
    """A stored work item: the draft's fields plus its pipeline state and bookkeeping."""

    id: int
    slug: str
    kind: Kind
    title: str
    body: str
    criteria: tuple[Criterion, ...]
    depends_on: tuple[int, ...]
    priority: int
    pinned_agent: str | None
    qa_mode: QaMode | None
    state: ItemState
    retries: int  # failed coder attempts counted against max_retries
    merge_attempts: int  # mergemaster attempts used
    session_id: str | None  # the coder session resumed on retry
    parked_until: float | None  # epoch s: a hard rate limit; resume the session then
    start_after: float | None  # epoch s: scheduled start, not before
    archive_at: float | None  # epoch s: done -> archived then
    merged_commit: str | None  # base-branch commit the merge produced
    merged_tip: str | None  # feature-branch tip that merge squashed
    created_at: float
    updated_at: float
    feedback: str | None = None  # why the last attempt failed: the next attempt's prompt
    report: str | None = None  # a spike's written report (its result; a spike is closed, never merged)

    @property
    def name(self) -> str:
        return f"{self.id}-{self.slug}"

    @property
    def stage(self) -> Stage:
        return self.state.stage

    def draft(self) -> ItemDraft:
        """The editable part of this item."""
        return ItemDraft(
            kind=self.kind,
            title=self.title,
            body=self.body,
            criteria=self.criteria,
            depends_on=self.depends_on,
            priority=self.priority,
            pinned_agent=self.pinned_agent,
            qa_mode=self.qa_mode,
            frozen=self.state.frozen,
        )


def slugify(title: str) -> str:
    """A file- and branch-safe slug: ASCII ``[a-z0-9]`` words joined by ``-``, at most 48 chars."""
    ascii_text = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode("ascii")
    slug = "-".join(re.findall(r"[a-z0-9]+", ascii_text.lower()))
    return slug[:MAX_SLUG_CHARS].strip("-") or "item"


_TEMPLATES: dict[Kind, tuple[tuple[str, ...], tuple[str, ...]]] = {
    Kind.STORY: (("Context", "Notes"), ()),
    Kind.BUG: (
        ("Steps to reproduce", "Expected", "Actual"),
        ("The bug no longer reproduces", "A regression test covers it"),
    ),
    Kind.SPIKE: (("Question", "Time box", "Findings"), ()),
    Kind.REFACTOR: (("Motivation", "Constraints"), ("Behaviour is unchanged: the existing tests pass",)),
}


def template(kind: Kind) -> tuple[str, tuple[Criterion, ...]]:
    """The body skeleton (section headings) and starting criteria for a new item of ``kind``."""
    headings, criteria = _TEMPLATES[kind]
    body = "\n\n".join(f"## {heading}" for heading in headings)
    return body, tuple(Criterion(text=text) for text in criteria)
