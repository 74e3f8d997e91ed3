"""What QA and mergemaster agents report: one JSON object in their final message (or through MCP), checked.

Prose is never scraped: anything but exactly one object of the asked-for shape is a VerdictError.
"""

from __future__ import annotations

import json
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gangline.core.errors import VerdictError
from gangline.core.profiles import Role


class _Report(BaseModel):
    # Strict: "yes" is not a boolean and "1" is not an index; the prompt asked for JSON types.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class CriterionVerdict(_Report):
    index: int = Field(ge=1)
    passed: bool
    note: str = ""


class QaVerdict(_Report):
    verdict: Literal["pass", "fail"]
    criteria: list[CriterionVerdict]
    summary: str = ""


class MergeReport(_Report):
    resolved: bool
    summary: str = ""


_FENCED = re.compile(r"\A```(?:json)?[ \t]*\n(?P<body>.*)\n[ \t]*```\Z", re.DOTALL | re.IGNORECASE)


def parse_qa_verdict(text: str | None, criteria_count: int) -> QaVerdict:
    """A QA agent's verdict, or VerdictError saying why it cannot be accepted."""
    verdict = _validated(QaVerdict, Role.QA, text)
    assert isinstance(verdict, QaVerdict)
    seen: set[int] = set()
    for c in verdict.criteria:
        if c.index > criteria_count:
            raise VerdictError(Role.QA, f"criterion {c.index} does not exist; the item has {criteria_count}")
        if c.index in seen:
            raise VerdictError(Role.QA, f"criterion {c.index} is reported twice")
        seen.add(c.index)
    failed = [c.index for c in verdict.criteria if not c.passed]
    if verdict.verdict == "pass" and failed:
        raise VerdictError(Role.QA, f'verdict is "pass" but criteria {failed} did not pass')
    return verdict


def parse_merge_report(text: str | None) -> MergeReport:
    """A mergemaster's report, or VerdictError saying why it cannot be accepted."""
    report = _validated(MergeReport, Role.MERGEMASTER, text)
    assert isinstance(report, MergeReport)
    return report


def _validated(model: type[_Report], role: Role, text: str | None) -> _Report:
    try:
        data = _final_object(text)
    except ValueError as err:
        raise VerdictError(role, str(err)) from None
    try:
        return model.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        loc = ".".join(str(part) for part in first["loc"]) or "(object)"
        raise VerdictError(role, f"{loc}: {first['msg']}") from None


def _final_object(text: str | None) -> dict[str, Any]:
    if text is None or not text.strip():
        raise ValueError("there is no final message")
    body = text.strip()
    fenced = _FENCED.match(body)
    if fenced:
        body = fenced.group("body").strip()
    if not body.startswith("{"):
        raise ValueError("the final message must be only a JSON object, and it does not start with '{'")
    try:
        data = json.loads(body, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except json.JSONDecodeError as err:
        raise ValueError(f"the final message is not one JSON object: {err.msg} at line {err.lineno}") from None
    if not isinstance(data, dict):
        raise ValueError("the final message is not a JSON object")
    return data


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    repeated = sorted({k for k in keys if keys.count(k) > 1})
    if repeated:
        raise ValueError(f"the final message repeats the key {repeated[0]!r}")
    return dict(pairs)


def _no_constant(name: str) -> Any:
    raise ValueError(f"the final message uses {name}, which is not JSON")
