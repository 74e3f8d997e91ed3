"""Work items as Markdown files with YAML front matter, so they can live in a repo and be reviewed as text.

The format::

    ---
    id: 12            # optional on import
    kind: story
    title: Add login
    ---
    Body markdown...

    ## Acceptance criteria

    - [ ] first criterion
    - [x] second criterion

Rules a writer can rely on:

- The front matter is the first lines of the file, between two lines that are exactly ``---``.
  It is read with ``yaml.safe_load`` and must be a mapping of the keys in ``FRONT_MATTER_KEYS``.
  ``stage`` is written on export for the reader's benefit and ignored on import. YAML reads
  ``yes``, ``null`` or ``2024-01-01`` as other things than text: quote such a title.
- The criteria are the checkbox items (``- [ ]``, ``- [x]``, ``* [X]``, ``+ [ ]``) of the LAST
  ``## Acceptance criteria`` heading (any letter case) that is not inside a fenced code block.
  That section runs to the next ``#`` or ``##`` heading; every other line is the body. A criterion
  may wrap onto indented continuation lines. Any other text inside the section is an error, so
  nothing a person writes there is silently dropped.
- A fenced code block opens with a line of three or more backticks or tildes (at most three spaces
  in) and closes with a line of at least as many of the same character. A fence that is never
  closed is plain text: this keeps an export's own criteria section visible after a body that
  ends in an unclosed fence.
- Export always writes the criteria heading, even with no criteria, and writes it last, so
  ``parse_item_markdown(render_item_markdown(item)).draft == item.draft()`` for every valid item.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from gangline.core.errors import ConfigError
from gangline.core.items import MAX_BODY_BYTES, Criterion, Item, ItemDraft, slugify
from gangline.core.validation import describe_validation_error

FRONT_MATTER_KEYS = (
    "id",
    "kind",
    "title",
    "priority",
    "depends_on",
    "pinned_agent",
    "qa_mode",
    "frozen",
    "stage",
)
# Front matter, criteria and markup around a body that is at most MAX_BODY_BYTES.
MAX_FILE_BYTES = 2 * MAX_BODY_BYTES
CRITERIA_HEADING = "## Acceptance criteria"

_DELIMITER = "---"
_CRITERIA_HEADING = re.compile(r" {0,3}##[ \t]+acceptance[ \t]+criteria[ \t]*(?:#+[ \t]*)?", re.IGNORECASE)
_SECTION_END = re.compile(r" {0,3}#{1,2}(?:[ \t]|$)")
_FENCE = re.compile(r" {0,3}(`{3,}|~{3,})(.*)")
_CHECKBOX = re.compile(r" {0,3}[-*+][ \t]+\[([ xX])\](?:[ \t]+(.*))?")
_CONTINUATION = re.compile(r"[ \t]{2,}\S")


@dataclass(frozen=True)
class ItemFile:
    """What one item file says: the item id it names, if any, and the draft."""

    id: int | None
    draft: ItemDraft


# --- parsing -----------------------------------------------------------------------------------


def read_item_file(path: Path) -> ItemFile:
    """Read and parse one item file; any problem is a ConfigError naming the file."""
    where = str(path)
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
    except OSError as err:
        raise ConfigError(where, f"cannot read the item file: {err.strerror or err}") from None
    if len(data) > MAX_FILE_BYTES:
        raise ConfigError(where, f"an item file must be at most {MAX_FILE_BYTES} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        raise ConfigError(where, f"an item file must be UTF-8 text; line {line} is not") from None
    return parse_item_markdown(text, where)


def parse_item_markdown(text: str, where: str) -> ItemFile:
    """Parse an item file's text; ``where`` names it in errors (``"<where>: <key>"``)."""
    lines = text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n").split("\n")
    close = _front_matter_end(lines, where)
    front = _load_front_matter("\n".join(lines[1:close]), where)
    item_id = _item_id(front.pop("id", None), where)
    front.pop("stage", None)
    body, criteria = _split_body(lines[close + 1 :], first_line=close + 2, where=where)
    try:
        draft = ItemDraft.model_validate({**front, "body": body, "criteria": criteria})
    except ValidationError as err:
        location, message = describe_validation_error(err)
        raise ConfigError(f"{where}: {location}", message) from None
    return ItemFile(id=item_id, draft=draft)


def _front_matter_end(lines: list[str], where: str) -> int:
    """The index of the line closing the front matter."""
    if lines[0].rstrip() != _DELIMITER:
        raise ConfigError(
            where,
            f"expected the file to start with a `---` YAML front matter block (kind, title, ...); "
            f"found {_excerpt(lines[0])}",
        )
    for index in range(1, len(lines)):
        if lines[index].rstrip() == _DELIMITER:
            return index
    raise ConfigError(where, "the `---` front matter block on line 1 is never closed by a `---` line")


def _load_front_matter(source: str, where: str) -> dict[str, Any]:
    try:
        data = yaml.safe_load(source)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        # +2: the YAML starts on the file's second line, and marks count from zero.
        line = f"line {mark.line + 2}" if mark is not None else "front matter"
        problem = getattr(err, "problem", None) or str(err)
        raise ConfigError(f"{where}: {line}", f"the front matter is not valid YAML: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(where, f"the front matter must be a mapping of keys to values; found a {type(data).__name__}")
    for key in data:
        if key not in FRONT_MATTER_KEYS:
            raise ConfigError(
                f"{where}: {_excerpt(str(key))}", f"unknown key; expected one of {', '.join(FRONT_MATTER_KEYS)}"
            )
    return data


def _item_id(value: object, where: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(f"{where}: id", f"expected a positive whole number; found {_excerpt(repr(value))}")
    return value


def _split_body(lines: list[str], first_line: int, where: str) -> tuple[str, list[Criterion]]:
    """The body text and the criteria of the last criteria section; ``first_line`` numbers ``lines[0]``."""
    outside = _lines_outside_fences(lines)
    headings = [i for i in outside if _CRITERIA_HEADING.fullmatch(lines[i])]
    if not headings:
        return "\n".join(lines), []
    start = headings[-1]
    end = next((i for i in outside if i > start and _SECTION_END.match(lines[i])), len(lines))
    criteria = _parse_criteria(lines[start + 1 : end], first_line + start + 1, where)
    before = "\n".join(lines[:start]).rstrip()
    after = "\n".join(lines[end:]).strip("\n")
    return (f"{before}\n\n{after}" if before and after else before or after), criteria


def _parse_criteria(lines: list[str], first_line: int, where: str) -> list[Criterion]:
    texts: list[tuple[int, list[str], bool]] = []  # (line number, text parts, checked)
    for offset, line in enumerate(lines):
        number = first_line + offset
        box = _CHECKBOX.fullmatch(line.rstrip())
        if box is not None:
            texts.append((number, [box.group(2) or ""], box.group(1) != " "))
        elif texts and _CONTINUATION.match(line):
            texts[-1][1].append(line.strip())
        elif line.strip():
            raise ConfigError(
                f"{where}: line {number}",
                "the acceptance criteria section holds only checkbox items like `- [ ] text` or `- [x] text`; "
                f"found {_excerpt(line.strip())}",
            )
    return [_criterion(" ".join(parts), checked, number, where) for number, parts, checked in texts]


def _criterion(text: str, checked: bool, number: int, where: str) -> Criterion:
    try:
        return Criterion(text=text, checked=checked)
    except ValidationError as err:
        _, message = describe_validation_error(err)
        raise ConfigError(f"{where}: line {number}", message) from None


def _lines_outside_fences(lines: list[str]) -> list[int]:
    """Indices of the lines that are not part of a closed fenced code block."""
    best_closer = _longest_closer_from(lines)
    outside: list[int] = []
    index = 0
    while index < len(lines):
        opener = _FENCE.match(lines[index])
        if opener is not None:
            char, length = opener.group(1)[0], len(opener.group(1))
            # A backtick fence's info string may not hold a backtick (CommonMark); such a line is text.
            info_ok = char == "~" or "`" not in opener.group(2)
            if info_ok and best_closer[char][index + 1] >= length:
                index = _closer_index(lines, index + 1, char, length) + 1
                continue
        outside.append(index)
        index += 1
    return outside


def _fence_closer(line: str) -> tuple[str, int] | None:
    match = _FENCE.fullmatch(line.rstrip())
    if match is None or match.group(2):
        return None
    return match.group(1)[0], len(match.group(1))


def _longest_closer_from(lines: list[str]) -> dict[str, list[int]]:
    """For each fence character, the longest closing fence at or after each line (0: none).

    Knowing this up front decides whether an opener is ever closed in constant time, so a hostile
    body full of unclosed fences costs linear, not quadratic, time.
    """
    longest = {"`": [0] * (len(lines) + 1), "~": [0] * (len(lines) + 1)}
    for index in range(len(lines) - 1, -1, -1):
        for char in longest:
            longest[char][index] = longest[char][index + 1]
        closer = _fence_closer(lines[index])
        if closer is not None:
            char, length = closer
            longest[char][index] = max(longest[char][index], length)
    return longest


def _closer_index(lines: list[str], start: int, char: str, length: int) -> int:
    for index in range(start, len(lines)):
        closer = _fence_closer(lines[index])
        if closer is not None and closer[0] == char and closer[1] >= length:
            return index
    raise AssertionError("a closer was promised by _longest_closer_from")


def _excerpt(text: str, limit: int = 60) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "...")


# --- rendering and export ----------------------------------------------------------------------


def render_item_markdown(item: Item) -> str:
    """The item as an item file's text (front matter with ``id`` and ``stage``, body, criteria)."""
    draft = item.draft()
    front = {
        "id": item.id,
        "kind": draft.kind.value,
        "title": draft.title,
        "priority": draft.priority,
        "depends_on": list(draft.depends_on),
        "pinned_agent": draft.pinned_agent,
        "qa_mode": draft.qa_mode.value if draft.qa_mode is not None else None,
        "frozen": draft.frozen,
        "stage": item.stage.value,
    }
    # safe_dump quotes anything YAML would read as more than a plain string; a wide width keeps
    # every value on its own single line, so no line of the front matter can be a bare `---`.
    yaml_text = yaml.safe_dump(front, sort_keys=False, allow_unicode=True, default_flow_style=None, width=1_000_000)
    criteria = "".join(f"- [{'x' if c.checked else ' '}] {c.text}\n" for c in draft.criteria)
    parts = [f"{_DELIMITER}\n{yaml_text}{_DELIMITER}\n"]
    if draft.body:
        parts.append(f"{draft.body}\n\n")
    parts.append(f"{CRITERIA_HEADING}\n\n{criteria}")
    return "".join(parts)


def item_filename(item: Item) -> str:
    """``<id>-<slug>.md``; the slug is made safe again so a bad stored slug cannot name another path."""
    return f"{int(item.id)}-{slugify(item.slug)}.md"


def export_items(items: Iterable[Item], directory: Path) -> list[Path]:
    """Write each item to ``directory/<id>-<slug>.md`` atomically; returns the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for item in items:
        target = directory / item_filename(item)
        _write_atomically(target, render_item_markdown(item).encode("utf-8"))
        written.append(target)
    return written


def _write_atomically(target: Path, data: bytes) -> None:
    # rename replaces a symlink at ``target`` rather than writing through it, so an export never
    # writes outside its directory, and a reader never sees half a file.
    fd, temp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp_name, target)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise


def read_item_dir(directory: Path) -> list[tuple[Path, ItemFile]]:
    """Every ``*.md`` item file in ``directory``, in id order; two files naming one id is an error."""
    parsed = [(path, read_item_file(path)) for path in _item_paths(directory)]
    seen: dict[int, Path] = {}
    for path, item_file in parsed:
        if item_file.id is None:
            continue
        if item_file.id in seen:
            raise ConfigError(f"{path}: id", f"item {item_file.id} is also defined by {seen[item_file.id]}")
        seen[item_file.id] = path
    return parsed


def _item_paths(directory: Path) -> Iterator[Path]:
    if not directory.is_dir():
        raise ConfigError(str(directory), "expected a directory of item files")
    paths = [p for p in directory.glob("*.md") if not p.name.startswith(".") and p.is_file()]
    yield from sorted(paths, key=_natural_key)


def _natural_key(path: Path) -> tuple[int, int, str]:
    # "2-x.md" before "10-y.md": files exported from one project list in id order.
    prefix = re.match(r"\d+", path.name)
    return (0, int(prefix.group()), path.name) if prefix else (1, 0, path.name)
