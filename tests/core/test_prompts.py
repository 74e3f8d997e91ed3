"""Prompt templates render strictly, and QA / mergemaster reports are accepted only as one JSON object."""

from __future__ import annotations

import json
from typing import Any

import pytest

from gangline.core.errors import ConfigError, VerdictError
from gangline.core.guide import GUIDE
from gangline.core.items import Criterion, Item, Kind
from gangline.core.profiles import PIPELINE_ROLES, Role
from gangline.core.prompts import DEFAULT_TEMPLATES, PromptContext, render_prompt, validate_template
from gangline.core.reports import parse_merge_report, parse_qa_verdict
from gangline.core.stages import ItemState, Stage
from kits import helpers


def make_item(**fields: Any) -> Item:
    return helpers.make_item(
        **{
            **{
                "id": 42,
                "kind": Kind.BUG,
                "title": "Add a login page",
                "body": "Users need to sign in.",
                "criteria": (
                    Criterion(text="A form asks for name and password"),
                    Criterion(text="Bad passwords are refused"),
                ),
                "depends_on": (7, 9),
                "priority": 5,
                "state": ItemState(Stage.CODING),
            },
            **fields,
        }
    )


def context(role: Role = Role.CODER, **fields: Any) -> PromptContext:
    values: dict[str, Any] = {
        "item": make_item(),
        "role": role,
        "attempt": 1,
        "base_branch": "trunk",
        "branch": "gangline/42-add-login",
        "workspace": "/work/tree",
        "feedback": None,
        "diff": None,
        "gates": ("pytest -q",),
        "guide": GUIDE,
    }
    return PromptContext(**{**values, **fields})


def test_coder_prompt_states_the_task_its_numbered_criteria_and_the_git_rules() -> None:
    prompt = render_prompt(None, context(), "agent coder")
    assert prompt.startswith("# Add a login page\n")
    assert "bug 42-add-login" in prompt
    assert "Users need to sign in." in prompt
    assert "1. A form asks for name and password\n2. Bad passwords are refused\n" in prompt
    assert "Commit your work with git on this branch" in prompt
    assert "Never touch the base branch trunk" in prompt
    assert "`pytest -q`" in prompt
    assert "did not pass" not in prompt
    assert prompt.endswith(GUIDE)


def test_coder_retry_prompt_leads_with_what_failed() -> None:
    prompt = render_prompt(None, context(attempt=2, feedback="gate tests failed:\nE assert 1 == 2\n"), "coder")
    assert prompt.startswith("The previous attempt did not pass:\n\ngate tests failed:\nE assert 1 == 2\n\n")
    assert "(attempt 2)" in prompt


def test_qa_prompt_includes_the_diff_and_asks_for_only_a_json_verdict() -> None:
    diff = "diff --git a/login.py b/login.py\n+def login(): ...\n"
    prompt = render_prompt(None, context(Role.QA, diff=diff), "qa")
    assert "----- BEGIN DIFF -----\n" + diff.rstrip() + "\n----- END DIFF -----" in prompt
    assert "1. A form asks for name and password" in prompt
    assert "ONLY a JSON object" in prompt
    assert '"verdict": "pass" or "fail"' in prompt


def test_mergemaster_prompt_carries_the_conflict_report_and_the_json_report_shape() -> None:
    report = "CONFLICT (content): Merge conflict in login.py"
    prompt = render_prompt(None, context(Role.MERGEMASTER, feedback=report), "mergemaster")
    assert report in prompt
    assert "squash merge of branch gangline/42-add-login onto the latest trunk" in prompt
    assert "git commit" in prompt
    assert '{"resolved": true or false, "summary": "..."}' in prompt


def test_the_guide_describes_the_same_report_shapes_as_the_templates() -> None:
    assert '"verdict": "pass", "criteria": [{"index": 1, "passed": true' in GUIDE
    assert '{"resolved": true, "summary": "..."}' in GUIDE
    assert "uncommitted" in GUIDE.lower()


@pytest.mark.parametrize("role", PIPELINE_ROLES)
def test_every_default_template_validates(role: Role) -> None:
    validate_template(None, "default", role)
    validate_template(DEFAULT_TEMPLATES[role], "default", role)


def test_custom_template_sees_the_item_as_plain_fields() -> None:
    item = make_item(criteria=(Criterion(text="done", checked=True),))
    template = (
        "{{ item.id }} {{ item.name }} {{ item.kind }} {{ item.priority }} {{ item.depends_on | join(',') }}\n"
        "{% for c in item.criteria %}{{ c.index }}:{{ c.text }}:{{ c.checked }}{% endfor %}\n"
        "{{ role }} {{ attempt }} {{ base_branch }} {{ branch }} {{ workspace }} {{ gates | join(';') }}"
    )
    prompt = render_prompt(template, context(item=item), "agent custom")
    assert prompt == (
        "42 42-add-login bug 5 7,9\n1:done:True\ncoder 1 trunk gangline/42-add-login /work/tree pytest -q"
    )


def test_template_syntax_in_an_item_is_text_not_code() -> None:
    item = make_item(title="Show {{ guide }}", body="{% for x in range(3) %}loop{% endfor %}")
    prompt = render_prompt(None, context(item=item), "coder")
    assert "# Show {{ guide }}\n" in prompt
    assert "{% for x in range(3) %}loop{% endfor %}" in prompt


def test_undefined_variable_is_a_config_error_naming_where_and_the_line() -> None:
    with pytest.raises(ConfigError) as caught:
        render_prompt("line one\n{{ ticket.title }}\n", context(), "agent 'coder' prompt_template")
    assert caught.value.field == "agent 'coder' prompt_template"
    assert "line 2" in str(caught.value)
    assert "'ticket' is undefined" in str(caught.value)


def test_unknown_item_field_is_an_error_too() -> None:
    with pytest.raises(ConfigError, match=r"line 1: .*has no attribute 'session_id'"):
        render_prompt("{{ item.session_id }}", context(), "t")


def test_template_syntax_error_names_the_line() -> None:
    with pytest.raises(ConfigError, match="syntax error at line 3"):
        render_prompt("a\nb\n{% if %}\n", context(), "t")


def test_sandbox_refuses_reaching_python_internals() -> None:
    with pytest.raises(ConfigError, match=r"line 1: SecurityError: .*unsafe"):
        render_prompt("{{ guide.__class__.__mro__ }}", context(), "t")


def test_validation_renders_a_first_attempt_where_feedback_is_none() -> None:
    validate_template("{% if feedback %}{{ feedback.strip() }}{% endif %}", "t")
    with pytest.raises(ConfigError, match="line 1"):
        validate_template("{{ feedback.strip() }}", "t")


# --- verdicts -------------------------------------------------------------------------------------

PASS = {
    "verdict": "pass",
    "criteria": [{"index": 1, "passed": True, "note": "form is there"}, {"index": 2, "passed": True}],
    "summary": "good",
}


@pytest.mark.parametrize(
    "text",
    [
        json.dumps(PASS),
        "\n  " + json.dumps(PASS, indent=2) + "\n\n",
        "```json\n" + json.dumps(PASS) + "\n```",
        "  ```\n" + json.dumps(PASS, indent=1) + "\n```  \n",
    ],
)
def test_qa_verdict_is_accepted_as_bare_or_fenced_json(text: str) -> None:
    verdict = parse_qa_verdict(text, criteria_count=2)
    assert verdict.verdict == "pass"
    assert [c.index for c in verdict.criteria] == [1, 2]
    assert verdict.criteria[1].note == ""


def test_qa_fail_verdict_carries_the_failed_criteria() -> None:
    text = json.dumps({"verdict": "fail", "criteria": [{"index": 2, "passed": False, "note": "no check"}]})
    verdict = parse_qa_verdict(text, criteria_count=2)
    assert verdict.verdict == "fail"
    assert verdict.criteria[0].note == "no check"
    assert verdict.summary == ""


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (None, "no final message"),
        ("   ", "no final message"),
        ("Here is my verdict: " + json.dumps(PASS), "does not start with '{'"),
        ("I reviewed it.\n\n```json\n" + json.dumps(PASS) + "\n```", "does not start with '{'"),
        (json.dumps(PASS) + "\nAll criteria are met.", "not one JSON object"),
        (json.dumps(PASS) + json.dumps(PASS), "not one JSON object"),
        ("```json\n" + json.dumps(PASS) + "\n```\nThanks!", "does not start with '{'"),
        ("[" + json.dumps(PASS) + "]", "does not start with '{'"),
        ('{"verdict": "pass", "verdict": "fail", "criteria": []}', "repeats the key 'verdict'"),
        ('{"verdict": "pass", "criteria": [{"index": 1, "passed": true, "note": NaN}]}', "NaN"),
        (json.dumps({**PASS, "verdict": "ok"}), "verdict"),
        (json.dumps({**PASS, "confidence": 0.9}), "confidence"),
        (json.dumps({"verdict": "pass", "criteria": [{"index": 1, "passed": "yes"}]}), "criteria.0.passed"),
        (json.dumps({"verdict": "pass", "criteria": [{"index": "1", "passed": True}]}), "criteria.0.index"),
        (json.dumps({"verdict": "pass", "criteria": [{"index": 0, "passed": True}]}), "criteria.0.index"),
        (json.dumps({"verdict": "pass", "criteria": [{"index": 3, "passed": True}]}), "criterion 3 does not exist"),
        (
            json.dumps({"verdict": "fail", "criteria": [{"index": 1, "passed": True}, {"index": 1, "passed": False}]}),
            "criterion 1 is reported twice",
        ),
        (
            json.dumps({"verdict": "pass", "criteria": [{"index": 1, "passed": True}, {"index": 2, "passed": False}]}),
            'verdict is "pass" but criteria [2] did not pass',
        ),
    ],
)
def test_qa_verdict_is_rejected_unless_it_is_exactly_one_valid_object(text: str | None, reason: str) -> None:
    with pytest.raises(VerdictError) as caught:
        parse_qa_verdict(text, criteria_count=2)
    assert caught.value.role == "qa"
    assert reason in caught.value.reason


def test_a_report_in_a_json_fence_is_read_and_prose_around_it_is_not() -> None:
    assert parse_merge_report('```json\n{"resolved": true}\n```').resolved is True
    for text in ('Done. {"resolved": true}', None):
        with pytest.raises(VerdictError):
            parse_merge_report(text)


def test_merge_report_is_accepted_and_rejected_by_the_same_rules() -> None:
    report = parse_merge_report('{"resolved": true, "summary": "kept both changes"}')
    assert report.resolved is True
    assert report.summary == "kept both changes"
    assert parse_merge_report('{"resolved": false}').resolved is False
    with pytest.raises(VerdictError, match="mergemaster report rejected") as caught:
        parse_merge_report('I fixed it: {"resolved": true}')
    assert caught.value.role == "mergemaster"
    with pytest.raises(VerdictError, match="resolved"):
        parse_merge_report('{"resolved": "true"}')
