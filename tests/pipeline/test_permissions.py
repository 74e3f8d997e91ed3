"""Permission rules as tables, and the permission service on a real store: ask, answer, time out, unattended."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from gangline.core.errors import NotFoundError
from gangline.core.rules import Answer, Decision, Rule, parse_rule, rule_decision, rule_for
from gangline.pipeline.permissions import Permissions
from gangline.store import Store, open_store

CWD = Path("/work/tree")


@pytest.mark.parametrize(
    ("rule", "tool", "tool_input", "allows"),
    [
        ("Write", "Write", {"file_path": "/anywhere/x"}, True),
        ("Write", "Edit", {"file_path": "/work/tree/x"}, False),
        ("mcp__gangline__*", "mcp__gangline__status", {}, True),
        ("mcp__*", "mcp__other__tool", {}, True),
        ("Bash(git status:*)", "Bash", {"command": "git status"}, True),
        ("Bash(git status:*)", "Bash", {"command": "git status --short"}, True),
        ("Bash(git status:*)", "Bash", {"command": "git statusx"}, False),
        ("Bash(git status:*)", "Bash", {"command": "git status && rm -rf /"}, False),  # chained: asked instead
        ("Bash(git status:*)", "Bash", {"command": "git status > out.txt"}, False),  # redirected
        ("Bash(git status:*)", "Bash", {"command": "git status $(rm x)"}, False),  # substituted
        ("Bash(npm test)", "Bash", {"command": "npm test"}, True),
        ("Bash(npm test)", "Bash", {"command": "npm test --watch"}, False),
        ("Write(src/*)", "Write", {"file_path": "/work/tree/src/app.py"}, True),  # relative to the worktree
        ("Write(src/*)", "Write", {"file_path": "/elsewhere/src/app.py"}, False),
        ("Write(/etc/*)", "Write", {"file_path": "/etc/passwd"}, True),
        ("WebFetch(https://docs.python.org/*)", "WebFetch", {"url": "https://docs.python.org/3/"}, True),
        ("Bash(ls:*)", "Bash", {}, False),  # nothing to match a pattern against
    ],
)
def test_an_allow_rule_matches_the_tool_and_what_it_acts_on(
    rule: str, tool: str, tool_input: dict[str, Any], allows: bool
) -> None:
    ruling = rule_decision(tool, tool_input, CWD, deny=[], allow=[parse_rule(rule)])
    assert (ruling is not None and ruling.allowed) is allows


@pytest.mark.parametrize(
    ("command", "denied"),
    [
        ("rm -rf build", True),
        ("make && rm -rf build", True),  # a deny rule looks into every command of a chain
        ("echo hi | rm -f x", True),
        ("echo rm -rf", False),
        ("git rm file", False),
    ],
)
def test_a_deny_rule_is_checked_against_each_command_of_a_chain(command: str, denied: bool) -> None:
    ruling = rule_decision("Bash", {"command": command}, CWD, deny=[parse_rule("Bash(rm:*)")], allow=[Rule("Bash")])
    assert ruling is not None and ruling.allowed is not denied


def test_gangline_tools_are_allowed_first_then_deny_rules_then_allow_rules() -> None:
    deny, allow = [Rule("mcp__*"), Rule("Write")], [Rule("Write"), Rule("Read")]
    own = rule_decision("mcp__gangline__git_commit", {}, CWD, deny, allow)
    assert own is not None and own.allowed and own.rule is None
    write = rule_decision("Write", {"file_path": "x"}, CWD, deny, allow)
    assert write is not None and not write.allowed and write.rule == Rule("Write")
    read = rule_decision("Read", {"file_path": "x"}, CWD, deny, allow)
    assert read is not None and read.allowed
    assert rule_decision("Edit", {"file_path": "x"}, CWD, deny, allow) is None  # nobody decides: ask


@pytest.mark.parametrize(
    ("text", "message"),
    [("Bash(", "expected a rule like"), ("Bash()", "expected a pattern"), ("two words", "expected a rule like")],
)
def test_a_malformed_rule_says_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_rule(text)


@pytest.mark.parametrize(
    ("tool", "tool_input", "saved"),
    [
        ("Bash", {"command": "git status --short"}, "Bash(git status:*)"),
        ("Bash", {"command": "npm run build && npm test"}, "Bash(npm run:*)"),
        ("Bash", {"command": "ls -la"}, "Bash(ls:*)"),
        ("Write", {"file_path": "/x", "content": "y"}, "Write"),
        ("mcp__other__echo", {"text": "hi"}, "mcp__other__echo"),
    ],
)
def test_always_allow_saves_the_tool_and_for_bash_its_command_prefix(
    tool: str, tool_input: dict[str, Any], saved: str
) -> None:
    assert str(rule_for(tool, tool_input)) == saved


def test_answers_are_the_json_the_cli_requires() -> None:
    assert json.loads(Answer("allow", {"command": "ls"}).to_json()) == {
        "behavior": "allow",
        "updatedInput": {"command": "ls"},
    }
    assert json.loads(Answer("allow").to_json()) == {"behavior": "allow", "updatedInput": {}}  # {} means unchanged
    assert json.loads(Answer("deny", message="no").to_json()) == {"behavior": "deny", "message": "no"}


# --- the service, on a real store --------------------------------------------------------------


@dataclass(frozen=True)
class Policy:
    allow: tuple[str, ...] = ()
    deny: tuple[str, ...] = ()
    ask_timeout_s: float = 30.0
    unattended: bool = False


@pytest.fixture
def store(tmp_path: Path, project_database: str | None) -> Iterator[Store]:
    with closing(open_store(project_database or f"sqlite:///{tmp_path / 'state.db'}")) as store:
        yield store


def kinds(store: Store) -> list[str]:
    return [event.kind for event in store.events_after(0)]


async def test_a_call_no_rule_decides_waits_for_a_person_and_always_allow_answers_the_next_one(store: Store) -> None:
    permissions = Permissions(store, Policy())
    ask = ("1-coder-1", 1, CWD, "Bash", {"command": "make deploy"}, "toolu_1")
    async with asyncio.TaskGroup() as tg:
        waiting = tg.create_task(permissions.ask(*ask))
        (pending,) = await permissions.wait_requested(5)
        assert (pending.run_id, pending.tool_name, pending.input) == ("1-coder-1", "Bash", {"command": "make deploy"})
        done = permissions.answer(pending.id, Decision.ALWAYS_ALLOW, "ann")
    assert waiting.result() == Answer("allow", {"command": "make deploy"})
    assert str(done.rule) == "Bash(make deploy:*)" and permissions.pending() == []
    assert await permissions.ask(*ask) == Answer("allow", {"command": "make deploy"})  # no one asked this time
    assert kinds(store) == ["permission_requested", "permission_rule_added", "permission_answered"]
    with pytest.raises(NotFoundError):
        permissions.answer(pending.id, Decision.ALLOW, "ann")


async def test_nobody_answering_in_time_denies_with_a_message_the_agent_can_act_on(store: Store) -> None:
    permissions = Permissions(store, Policy(ask_timeout_s=0.05))
    answer = await permissions.ask("1-coder-1", 1, CWD, "Write", {"file_path": "x"}, None)
    assert answer.behavior == "deny" and answer.message is not None
    assert "No one answered the request to use Write within 0.05 s" in answer.message
    assert "Continue without this tool" in answer.message
    assert kinds(store) == ["permission_requested", "permission_answered"]
    assert store.events_after(0)[-1].reason == "timeout"


async def test_unattended_denies_at_once_what_no_rule_allows(store: Store) -> None:
    permissions = Permissions(store, Policy(allow=("Read",), unattended=True))
    assert (await permissions.ask("1-coder-1", 1, CWD, "Read", {"file_path": "x"}, None)).behavior == "allow"
    denied = await permissions.ask("1-coder-1", 1, CWD, "Bash", {"command": "curl x"}, None)
    assert denied.behavior == "deny" and denied.message is not None and "unattended" in denied.message
    assert permissions.pending() == [] and kinds(store) == ["permission_denied"]


async def test_the_chat_agent_reads_without_asking_and_a_change_waits_for_a_person_unless_a_rule_allows_it(
    store: Store,
) -> None:
    permissions = Permissions(store, Policy(allow=("mcp__gangline__add_item",), ask_timeout_s=0.05))
    assert (await permissions.ask("chat-1", None, CWD, "mcp__gangline__list_items", {}, None)).behavior == "allow"
    assert (await permissions.ask("chat-1", None, CWD, "mcp__gangline__add_item", {}, None)).behavior == "allow"
    # An item's agent has the agents' tools, all its own; the chat agent's are the people's: a change is asked.
    unasked = await permissions.ask("chat-1", None, CWD, "mcp__gangline__delete_item", {"item_id": 1}, None)
    assert unasked.behavior == "deny" and "No one answered" in (unasked.message or "")
    requested = [e for e in store.events_after(0) if e.kind == "permission_requested"]
    assert [(e.item_id, e.run_id, e.reason) for e in requested] == [(None, "chat-1", "mcp__gangline__delete_item")]


async def test_a_deny_rule_refuses_without_asking_and_says_which_rule(store: Store) -> None:
    permissions = Permissions(store, Policy(deny=("Bash(git push:*)",)))
    denied = await permissions.ask("1-coder-1", 1, CWD, "Bash", {"command": "git push origin main"}, None)
    assert denied.message is not None and "denied by the rule Bash(git push:*)" in denied.message


async def test_a_question_ends_with_a_denial_when_its_run_ends(store: Store) -> None:
    permissions = Permissions(store, Policy())
    async with asyncio.TaskGroup() as tg:
        waiting = tg.create_task(permissions.ask("1-coder-1", 1, CWD, "Write", {"file_path": "x"}, None))
        await permissions.wait_requested(5)
        permissions.cancel_run("1-coder-2")  # another run: nothing happens
        assert len(permissions.pending()) == 1
        permissions.cancel_run("1-coder-1")
    assert waiting.result().behavior == "deny" and permissions.pending() == []


async def test_a_person_can_change_the_input_the_tool_runs_with(store: Store) -> None:
    permissions = Permissions(store, Policy())
    async with asyncio.TaskGroup() as tg:
        waiting = tg.create_task(
            permissions.ask("1-coder-1", 1, CWD, "Write", {"file_path": "x", "content": "a"}, None)
        )
        (pending,) = await permissions.wait_requested(5)
        permissions.answer(pending.id, Decision.ALLOW, "ann", updated_input={"content": "b"})
    assert waiting.result() == Answer("allow", {"file_path": "x", "content": "b"})
    assert store.permission_rules() == []  # a plain allow saves nothing
