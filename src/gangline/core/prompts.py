"""Agent prompts: the guide, the default Jinja2 templates per role, rendered strictly in a sandbox."""

from __future__ import annotations

import functools
import traceback
from dataclasses import dataclass, replace
from typing import Any

from jinja2 import StrictUndefined, Template, TemplateSyntaxError, UndefinedError
from jinja2.sandbox import SandboxedEnvironment

from gangline.core.errors import ConfigError
from gangline.core.guide import GUIDE
from gangline.core.items import Criterion, Item, Kind
from gangline.core.profiles import Role
from gangline.core.stages import ItemState, Stage

_CODER = """\
{% if feedback and feedback.strip() -%}
The previous attempt did not pass:

{{ feedback | trim }}

Fix the cause, commit the fix, and finish. The task is repeated below.

{% endif -%}
# {{ item.title }}

You are the coder for {{ item.kind }} {{ item.name }}{% if attempt > 1 %} (attempt {{ attempt }}){% endif %}.
{% if item.body %}
{{ item.body }}
{% endif %}
{% if item.criteria -%}
## Acceptance criteria

{% for c in item.criteria -%}
{{ c.index }}. {{ c.text }}
{% endfor %}
{% endif -%}
{% if item.kind == "spike" -%}
## A spike

Its result is a written report, not code: investigate what the item asks, then give your
findings (what you learned, the options with their costs, what you recommend) as your final
message, or send them with gangline's `submit_report` tool if it is available. Nothing of a spike
is merged; a person reads the report.

{% elif item.kind == "bug" -%}
## A bug

First write a test that reproduces the bug and fails, and commit it; then fix the bug so the
test passes, and commit the fix. The test stays, so the bug cannot come back unnoticed.

{% elif item.kind == "refactor" -%}
## A refactor

Change the structure, not the behaviour: every existing test must pass unchanged, and nothing a
user of the code can observe may change.

{% endif -%}
## Rules

- Work in {{ workspace }}, on branch {{ branch }}.
{% if item.kind == "spike" -%}
- Your report is the result; files you change or commit are not merged.
{% else -%}
- Commit your work with git on this branch; uncommitted work is not merged.
{% endif -%}
- Never touch the base branch {{ base_branch }}, and never push.
{% if gates and item.kind != "spike" -%}
- After you exit, the server runs these gates in the worktree; they must pass:
{% for g in gates %}  - `{{ g }}`
{% endfor %}
{%- endif %}
{{ guide }}"""

_QA = """\
# Review: {{ item.title }}

You are QA for {{ item.kind }} {{ item.name }}. Review the change on branch {{ branch }} (in
{{ workspace }}) against the base branch {{ base_branch }}. Do not change files or commit.
{% if item.body %}
## The work item

{{ item.body }}
{% endif %}
## Acceptance criteria

{% for c in item.criteria -%}
{{ c.index }}. {{ c.text }}
{% else -%}
(none: judge the change by the title and description, and report an empty "criteria" list)
{% endfor %}
{% if feedback and feedback.strip() -%}
## Notes

{{ feedback | trim }}

{% endif -%}
{% if item.kind == "refactor" -%}
## A refactor

Besides the criteria, check that behaviour did not change: no test was weakened or removed, no
public interface or output changed, and the tests pass. Fail it for any change of behaviour.

{% elif item.kind == "bug" -%}
## A bug

Besides the criteria, check that a test reproduces the bug (it would fail without the fix).

{% endif -%}
{% if item.kind == "spike" -%}
## The report

A spike changes no code: its result is this report. Judge it against the criteria: does it
answer what the item asks, with evidence?

----- BEGIN REPORT -----
{{ item.report.rstrip() if item.report else "(no report was given)" }}
----- END REPORT -----
{% else -%}
## The diff

----- BEGIN DIFF -----
{{ diff.rstrip() if diff is not none else "(none was provided; run git diff " ~ base_branch ~ "..." ~ branch ~ ")" }}
----- END DIFF -----
{% endif %}
Check each numbered criterion against the {{ "report" if item.kind == "spike" else "diff" }}; you may read files and run
the tests.
If gangline's MCP tools are available, report with `report_qa_result`; either way,
your final message must be ONLY a JSON object, with no words before or after it:

{"verdict": "pass" or "fail", "criteria": [{"index": 1, "passed": true, "note": "..."}], "summary": "..."}

Give one entry per criterion, by its number. The verdict is "pass" only if every criterion passed.

{{ guide }}"""

_MERGEMASTER = """\
# Merge: {{ item.title }}

You are the mergemaster for {{ item.kind }} {{ item.name }}. The workspace {{ workspace }} holds
a squash merge of branch {{ branch }} onto the latest {{ base_branch }}, and it conflicts or
fails the gates. Details:

{{ feedback | trim if feedback is not none else "(no details were provided; run git status)" }}

Resolve it so the gates pass and the change still does what the work item asks, then
`git add` the files and `git commit`. Never push and never touch the base branch {{ base_branch }}.
{% if gates -%}
The gates:
{% for g in gates %}  - `{{ g }}`
{% endfor %}
{%- endif %}
Your final message must be ONLY a JSON object, with no words before or after it:

{"resolved": true or false, "summary": "..."}

{{ guide }}"""

DEFAULT_TEMPLATES: dict[Role, str] = {Role.CODER: _CODER, Role.QA: _QA, Role.MERGEMASTER: _MERGEMASTER}

_VARIABLES = "item, role, attempt, base_branch, branch, workspace, feedback, diff, gates, guide"
_ITEM_FIELDS = "id, name, kind, title, body, criteria (index, text, checked), depends_on, priority, report"


@dataclass(frozen=True)
class PromptContext:
    """Everything a prompt template may use."""

    item: Item
    role: Role
    attempt: int  # 1-based
    base_branch: str
    branch: str
    workspace: str
    feedback: str | None  # gate output, QA notes or a merge report: why this run is a retry
    diff: str | None  # for QA
    gates: tuple[str, ...]  # gate commands
    guide: str = GUIDE


def render_prompt(template: str | None, ctx: PromptContext, where: str) -> str:
    """Render ``template`` (None: the role's default) or raise ConfigError(where, ...) with its line."""
    source = DEFAULT_TEMPLATES[ctx.role] if template is None else template
    compiled = _compile(source, where)
    try:
        return compiled.render(_variables(ctx))
    except UndefinedError as err:
        hint = f"the variables are {_VARIABLES}; item has {_ITEM_FIELDS}"
        raise ConfigError(where, f"{_at_line(err)}{err.message} ({hint})") from None
    # The template is user code: whatever it raises (a sandbox violation, 1/0, a bad filter
    # argument) is a configuration problem to report, not a crash.
    except Exception as err:
        raise ConfigError(where, f"{_at_line(err)}{type(err).__name__}: {err}") from None


def validate_template(template: str | None, where: str, role: Role = Role.CODER) -> None:
    """Render ``template`` against sample contexts for ``role``: a first attempt and a retry."""
    for ctx in _samples(role):
        render_prompt(template, ctx, where)


@functools.lru_cache(maxsize=1)
def _environment() -> SandboxedEnvironment:
    return SandboxedEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)


@functools.lru_cache(maxsize=64)
def _compiled(source: str) -> Template:
    return _environment().from_string(source)


def _compile(source: str, where: str) -> Template:
    try:
        return _compiled(source)
    except TemplateSyntaxError as err:
        raise ConfigError(where, f"template syntax error at line {err.lineno}: {err.message}") from None


def _at_line(err: BaseException) -> str:
    # Jinja rewrites tracebacks so that template code shows up as frames of "<template>".
    lines = [f.lineno for f in traceback.extract_tb(err.__traceback__) if f.filename == "<template>"]
    return f"template error at line {lines[-1]}: " if lines and lines[-1] else "template error: "


def _variables(ctx: PromptContext) -> dict[str, Any]:
    # Plain data only: the sandbox then exposes nothing of the store's objects.
    item = ctx.item
    criteria = [{"index": i, "text": c.text, "checked": c.checked} for i, c in enumerate(item.criteria, 1)]
    return {
        "item": {
            "id": item.id,
            "name": item.name,
            "kind": item.kind.value,
            "title": item.title,
            "body": item.body,
            "criteria": criteria,
            "depends_on": list(item.depends_on),
            "priority": item.priority,
            "report": item.report,
        },
        "role": ctx.role.value,
        "attempt": ctx.attempt,
        "base_branch": ctx.base_branch,
        "branch": ctx.branch,
        "workspace": ctx.workspace,
        "feedback": ctx.feedback,
        "diff": ctx.diff,
        "gates": list(ctx.gates),
        "guide": ctx.guide,
    }


def _samples(role: Role) -> list[PromptContext]:
    item = Item(
        id=7,
        slug="sample-item",
        kind=Kind.STORY,
        title="Sample item",
        body="What to do and why.",
        criteria=(Criterion(text="It works"), Criterion(text="It is tested", checked=True)),
        depends_on=(3,),
        priority=0,
        pinned_agent=None,
        qa_mode=None,
        state=ItemState(Stage.CODING),
        retries=0,
        merge_attempts=0,
        session_id=None,
        parked_until=None,
        start_after=None,
        archive_at=None,
        merged_commit=None,
        merged_tip=None,
        created_at=0.0,
        updated_at=0.0,
    )
    base = PromptContext(item, role, 1, "main", "gangline/7-sample-item", "/tmp/worktree", None, None, ("make test",))
    diff = "diff --git a/x b/x\n+new line\n"
    if role is Role.QA:  # a spike's review reads its report instead of a diff
        return [replace(base, diff=diff), replace(base, item=replace(item, kind=Kind.SPIKE, report="Findings."))]
    retry = replace(base, attempt=2, feedback="gate `make test` failed:\n1 failed")
    return [retry] if role is Role.MERGEMASTER else [base, retry]
