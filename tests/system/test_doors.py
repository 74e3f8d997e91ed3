"""Every order and every kind of bad input through REST, the people's MCP tools and the CLI (and what chat has
of them): one outcome.

One running server; each door gets its own copy of every starting state. For each order the
test asserts the same resulting state and the same event row from every door (the actor is
the door's own); for each bad input, the same error code, the same field (the CLI names it by
its option) and the same words, and that nothing was written.
"""

from __future__ import annotations

import asyncio
import getpass
import json
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from mcp.client.session import ClientSession

from gangline.core.items import Item
from gangline.core.records import EventRow
from gangline.core.stages import Facts, Trigger
from gangline.project.serverfile import announce_server, withdraw_server
from gangline.server.errors import STATUS
from kits.chat_kit import PERSON, MemoryTransport, chatting, memory_settings
from kits.helpers import cli_env, git
from kits.mcp_kit import Served, mcp_client, served, text_of
from kits.pipeline_kit import Project

LATER = 32503680000.0  # the year 3000: a backlog item set up with this never starts by itself
SAID = {"path": "src/app.py", "line": 12, "text": "handle the empty list"}  # a comment on a line of the diff
DOORS = ("rest", "mcp", "cli")
ACTOR = {"rest": "api", "mcp": "mcp", "cli": getpass.getuser()}
EXIT = {"invalid": 2, "illegal_transition": 5, "conflict": 5, "not_found": 7, "unavailable": 1}


# --- the starting states -------------------------------------------------------------------------


def _at(project: Project, title: str, *path: tuple[Trigger, Facts], kind: str = "story") -> Item:
    """An item moved to a state by the store itself, before the server (and its orchestrator) starts."""
    item = project.add(title, qa_mode="human", kind=kind)
    project.store.schedule_start(item.id, LATER, "setup")
    for trigger, facts in path:
        current = project.item(item.id)
        project.store.transition(item.id, trigger, "setup", expected=current.state, facts=facts)
    return project.item(item.id)


def _branch(project: Project, item: Item) -> None:
    """The item's feature branch with one commit ahead of main, made without touching any checkout."""
    tree = git(project.root, "write-tree")
    commit = git(project.root, "commit-tree", tree, "-p", "main", "-m", f"work on {item.slug}")
    git(project.root, "update-ref", f"refs/heads/gangline/{item.id}-{item.slug}", commit)


CODED = (Trigger.START, Facts()), (Trigger.CODED, Facts(commits_ahead=1))
IN_QA = CODED
IN_MERGE = (*CODED, (Trigger.QA_PASSED, Facts(commits_ahead=1)))
DONE = (*IN_MERGE, (Trigger.MERGED, Facts(files_changed=1)))


@dataclass(frozen=True)
class Order:
    """One order: the state it starts from, how each door says it, and the state it leaves."""

    name: str
    start: Callable[[Project], Item]
    rest: Callable[[Item], tuple[str, str, dict[str, Any] | None]]  # method, path, body
    mcp: Callable[[Item], tuple[str, dict[str, Any]]]  # tool, arguments
    cli: Callable[[Item], list[str]]
    then: Callable[[dict[str, Any]], Any]  # what of the returned item must be the same from each door
    event: tuple[str, str | None]  # the event row's kind and trigger


def _action(name: str, start: Callable[[Project], Item], trigger: Trigger, reason: str | None = None) -> Order:
    body = {"reason": reason} if reason else None
    arguments = {"reason": reason} if reason else {}
    return Order(
        name,
        start,
        lambda i: ("POST", f"/api/items/{i.id}/{name}", body),
        lambda i: ("act_on_item", {"item_id": i.id, "action": name, **arguments}),
        lambda i: [name, str(i.id), *(["--reason", reason] if reason else [])],
        lambda out: (out["stage"], out["hold"], out["frozen"]),
        ("transition", trigger.value),
    )


def _in_backlog(project: Project) -> Item:
    return _at(project, "Waiting")


def _held(trigger: Trigger) -> Callable[[Project], Item]:
    return lambda project: _at(project, "Held", (trigger, Facts(reason="a person looked")))


def _spike_reported(project: Project) -> Item:
    return _at(
        project, "Why slow", (Trigger.START, Facts()), (Trigger.REPORTED, Facts(reason="the cache")), kind="spike"
    )


def _in_qa(project: Project) -> Item:
    item = _at(project, "Reviewed", *IN_QA)
    _branch(project, item)
    return item


ORDERS = [
    Order(
        "add",
        lambda project: _at(project, "Unused"),
        lambda i: ("POST", "/api/items", {"title": "Add a login page", "criteria": ["a user can log in"]}),
        lambda i: ("add_item", {"title": "Add a login page", "criteria": ["a user can log in"]}),
        lambda i: ["add", "Add a login page", "--criterion", "a user can log in"],
        lambda out: (out["title"], [c["text"] for c in out["criteria"]], out["stage"]),
        ("created", None),
    ),
    Order(
        "add with a timer",
        lambda project: _at(project, "Unused"),
        lambda i: ("POST", "/api/items", {"title": "Later", "start_after": LATER}),
        lambda i: ("add_item", {"title": "Later", "start_after": LATER}),
        lambda i: ["add", "Later", "--start-after", "3000-01-01T00:00:00+00:00"],
        lambda out: (out["start_after"], out["activity"]["state"]),
        ("scheduled", None),
    ),
    Order(
        "edit",
        _in_backlog,
        lambda i: ("PATCH", f"/api/items/{i.id}", {"title": "Renamed", "priority": 7}),
        lambda i: ("edit_item", {"item_id": i.id, "title": "Renamed", "priority": 7}),
        lambda i: ["edit", str(i.id), "--title", "Renamed", "--priority", "7"],
        lambda out: (out["title"], out["priority"]),
        ("edited", None),
    ),
    Order(
        "delete",
        _in_backlog,
        lambda i: ("DELETE", f"/api/items/{i.id}", None),
        lambda i: ("delete_item", {"item_id": i.id}),
        lambda i: ["rm", str(i.id)],
        lambda out: out["title"],
        ("deleted", None),
    ),
    Order(
        "timer",
        _in_backlog,
        lambda i: ("PUT", f"/api/items/{i.id}/timer", {"when": "2999-06-01T12:00:00+00:00"}),
        lambda i: ("set_timer", {"item_id": i.id, "when": "2999-06-01T12:00:00+00:00"}),
        lambda i: ["timer", str(i.id), "2999-06-01T12:00:00+00:00"],
        lambda out: (out["start_after"], out["activity"]["state"]),
        ("scheduled", None),
    ),
    Order(
        "timer cancel",
        _in_backlog,
        lambda i: ("DELETE", f"/api/items/{i.id}/timer", None),
        lambda i: ("cancel_timer", {"item_id": i.id}),
        lambda i: ["timer", "cancel", str(i.id)],
        lambda out: out["start_after"],
        ("scheduled", None),
    ),
    Order(
        "say",
        _in_backlog,
        lambda i: ("POST", f"/api/items/{i.id}/messages", {"text": "Use tabs.", "comments": [SAID]}),
        lambda i: ("say_to_agent", {"item_id": i.id, "text": "Use tabs.", "comments": [SAID]}),
        lambda i: ["say", str(i.id), "Use tabs.", "--comment", "src/app.py:12:handle the empty list"],
        lambda out: (out["text"], out["comments"], out["run_id"]),
        ("message", None),
    ),
    Order(
        "say to an item in QA",
        _in_qa,
        lambda i: ("POST", f"/api/items/{i.id}/messages", {"text": "Rename it."}),
        lambda i: ("say_to_agent", {"item_id": i.id, "text": "Rename it."}),
        lambda i: ["say", str(i.id), "Rename it."],
        lambda out: (out["text"], out["run_id"]),
        ("transition", Trigger.QA_FAILED.value),  # back to its coder, whose next run takes the message
    ),
    _action("start", _in_backlog, Trigger.START),
    _action("stop", lambda project: _at(project, "Coding", (Trigger.START, Facts())), Trigger.BLOCK, "lunch"),
    _action("block", _in_backlog, Trigger.BLOCK),
    _action("unblock", _held(Trigger.BLOCK), Trigger.UNBLOCK),
    _action("hold", _in_backlog, Trigger.HOLD_FOR_REVIEW, "look first"),
    _action("release", _held(Trigger.HOLD_FOR_REVIEW), Trigger.RELEASE),
    _action("approve", _in_qa, Trigger.QA_PASSED),
    _action("reject", _in_qa, Trigger.QA_FAILED, "the page does not render"),
    _action("demote", _in_qa, Trigger.DEMOTE),
    _action("freeze", _in_backlog, Trigger.FREEZE),
    _action("unfreeze", lambda project: _at(project, "Frozen", (Trigger.FREEZE, Facts())), Trigger.UNFREEZE),
    _action("archive", lambda project: _at(project, "Done", *DONE), Trigger.ARCHIVE),
    _action("close", _spike_reported, Trigger.CLOSE),
    _action("abandon", _in_qa, Trigger.ABANDON, "nobody needs it"),
    Order(
        "supersede",
        _in_backlog,
        lambda i: ("POST", f"/api/items/{i.id}/supersede", {"by": 1, "reason": "done better"}),
        lambda i: ("act_on_item", {"item_id": i.id, "action": "supersede", "by": 1, "reason": "done better"}),
        lambda i: ["supersede", str(i.id), "--by", "1", "--reason", "done better"],
        lambda out: (out["stage"], out["hold"]),
        ("transition", Trigger.SUPERSEDE.value),
    ),
    _action(
        "retry-merge",
        lambda project: _at(project, "Failed", *IN_MERGE, (Trigger.MERGE_FAILED, Facts(reason="conflicts"))),
        Trigger.RETRY_MERGE,
    ),
]


@dataclass(frozen=True)
class Bad:
    """Bad input: how each door says it, and the error every door must answer with."""

    name: str
    rest: tuple[str, str, dict[str, Any] | None]
    mcp: tuple[str, dict[str, Any]]
    cli: list[str]
    code: str
    where: str | None = None  # the field the error names
    option: str | None = None  # the CLI's name for that field
    files: dict[str, bytes] = field(default_factory=dict)  # written in the project for the CLI


def _adding(name: str, body: dict[str, Any], cli: list[str], where: str, option: str, **files: bytes) -> Bad:
    return Bad(name, ("POST", "/api/items", body), ("add_item", body), ["add", *cli], "invalid", where, option, files)


def _editing(name: str, item_id: int, body: dict[str, Any], cli: list[str], code: str, *names: str) -> Bad:
    where, option = names if names else (None, None)
    rest = ("PATCH", f"/api/items/{item_id}", body)
    return Bad(
        name, rest, ("edit_item", {"item_id": item_id, **body}), ["edit", str(item_id), *cli], code, where, option
    )


def _answering(name: str, body: dict[str, Any], cli: list[str], code: str, *names: str) -> Bad:
    where, option = names if names else (None, None)
    rest = ("POST", "/api/permissions/nope", body)
    mcp = ("answer_permission", {"request_id": "nope", **body})
    return Bad(name, rest, mcp, ["permissions", "answer", "nope", *cli], code, where, option)


def _bad_inputs(waiting: Item, archived: Item) -> list[Bad]:
    w = waiting.id
    # fmt: off
    return [
        _adding("an empty title", {"title": "  "}, ["  "], "title", "TITLE"),
        _adding("a title of two lines", {"title": "one\ntwo"}, ["one\ntwo"], "title", "TITLE"),
        _adding("a kind that is none", {"title": "T", "kind": "epic"}, ["T", "--kind", "epic"], "kind", "--kind"),
        _adding("a priority out of range", {"title": "T", "priority": 5000}, ["T", "--priority", "5000"], "priority",
                "--priority"),
        _adding("an empty criterion", {"title": "T", "criteria": [" "]}, ["T", "--criterion", " "],
                "criteria[0].text", "--criterion"),
        _adding("a NUL in the body", {"title": "T", "body": "a\x00b"}, ["T", "--body-file", "nul.md"], "body",
                "--body", **{"nul.md": b"a\x00b"}),
        _adding("a dependency that does not exist", {"title": "T", "depends_on": [9999]},
                ["T", "--depends-on", "9999"], "depends_on", "--depends-on"),
        _adding("an agent profile that does not exist", {"title": "T", "pinned_agent": "nobody"},
                ["T", "--agent", "nobody"], "pinned_agent", "--agent"),
        _adding("a QA profile pinned as the coder", {"title": "T", "pinned_agent": "reviewer"},
                ["T", "--agent", "reviewer"], "pinned_agent", "--agent"),
        _editing("an edit pinning a profile that does not exist", w, {"pinned_agent": "nobody"},
                 ["--agent", "nobody"], "invalid", "pinned_agent", "--agent"),
        _editing("an item depending on itself", w, {"depends_on": [w]}, ["--depends-on", str(w)], "invalid",
                 "depends_on", "--depends-on"),
        _editing("an edit of an archived item", archived.id, {"title": "Again"}, ["--title", "Again"], "conflict"),
        Bad("approving an item in the backlog", ("POST", f"/api/items/{w}/approve", None),
            ("act_on_item", {"item_id": w, "action": "approve"}), ["approve", str(w)], "illegal_transition"),
        Bad("an action on an item that does not exist", ("POST", "/api/items/9999/block", None),
            ("act_on_item", {"item_id": 9999, "action": "block"}), ["block", "9999"], "not_found"),
        Bad("a timer that is no time", ("PUT", f"/api/items/{w}/timer", {"when": "tomorrow"}),
            ("set_timer", {"item_id": w, "when": "tomorrow"}), ["timer", str(w), "tomorrow"], "invalid", "when",
            "WHEN"),
        Bad("a timer on an item out of the backlog", ("PUT", f"/api/items/{archived.id}/timer", {"when": "+1h"}),
            ("set_timer", {"item_id": archived.id, "when": "+1h"}), ["timer", str(archived.id), "+1h"], "conflict"),
        Bad("a message with nothing to say", ("POST", f"/api/items/{w}/messages", {"text": " "}),
            ("say_to_agent", {"item_id": w, "text": " "}), ["say", str(w), " "], "invalid", "text", "TEXT"),
        Bad("a comment on line 0", ("POST", f"/api/items/{w}/messages", {"comments": [{**SAID, "line": 0}]}),
            ("say_to_agent", {"item_id": w, "comments": [{**SAID, "line": 0}]}),
            ["say", str(w), "--comment", "src/app.py:0:handle the empty list"], "invalid", "comments[0].line",
            "--comment"),
        Bad("a message to a merged item", ("POST", f"/api/items/{archived.id}/messages", {"text": "more"}),
            ("say_to_agent", {"item_id": archived.id, "text": "more"}), ["say", str(archived.id), "more"], "conflict"),
        Bad("a supersede naming no item", ("POST", f"/api/items/{w}/supersede", None),
            ("act_on_item", {"item_id": w, "action": "supersede"}), ["supersede", str(w), "--by", "0"], "invalid",
            "by", "--by"),
        Bad("a supersede by itself", ("POST", f"/api/items/{w}/supersede", {"by": w}),
            ("act_on_item", {"item_id": w, "action": "supersede", "by": w}), ["supersede", str(w), "--by", str(w)],
            "invalid", "by", "--by"),
        Bad("closing a story", ("POST", f"/api/items/{w}/close", None),
            ("act_on_item", {"item_id": w, "action": "close"}), ["close", str(w)], "illegal_transition"),
        Bad("an overview of an item never merged", ("GET", f"/api/items/{w}/overview", None),
            ("item_overview", {"item_id": w}), ["overview", str(w)], "conflict"),
        Bad("an overview of an item that does not exist", ("GET", "/api/items/9999/overview", None),
            ("item_overview", {"item_id": 9999}), ["overview", "9999"], "not_found"),
        _answering("an answer to a request nobody asked", {"decision": "allow"}, ["allow"], "not_found"),
        _answering("a denial that changes the input", {"decision": "deny", "updated_input": {"command": "ls"}},
                   ["deny", "--input", '{"command": "ls"}'], "invalid", "updated_input", "--input"),
    ]
    # fmt: on


# --- the doors -----------------------------------------------------------------------------------


@dataclass
class Answer:
    """What one door answered: the item (or record) on success, else the error's code, field and words."""

    record: dict[str, Any] | None = None
    code: str | None = None
    field: str | None = None
    words: str | None = None  # the message after its field
    exit_code: int | None = None


class Doors:
    def __init__(self, project: Project, served: Served, http: httpx.AsyncClient, mcp: ClientSession) -> None:
        self.project, self.served, self.http, self.mcp = project, served, http, mcp

    async def rest(self, method: str, path: str, body: dict[str, Any] | None) -> Answer:
        answer = await self.http.request(method, path, json=body)
        data = answer.json()
        if answer.is_success:
            return Answer(record=data)
        error = data["error"]
        assert answer.status_code == STATUS.get(error["code"], 500), data
        return _refusal(error["code"], error.get("field"), error["message"])

    async def call_mcp(self, tool: str, arguments: dict[str, Any]) -> Answer:
        result = await self.mcp.call_tool(tool, arguments)
        if not result.is_error:
            return Answer(record=json.loads(text_of(result)))
        error = json.loads(text_of(result))["error"]
        return _refusal(error["code"], error.get("field"), error["message"])

    async def cli(self, args: list[str]) -> Answer:
        json_out = [] if args[0] == "permissions" else ["--json"]
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "gangline", *args, *json_out, cwd=self.project.root, env=cli_env(),
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        async with asyncio.timeout(120):
            out, err = await process.communicate()
        said = err.decode()
        assert "Traceback" not in said, said
        if process.returncode == 0:
            assert "via server" in said, said  # the order went through the server, as REST and MCP do
            return Answer(record=json.loads(out) if json_out else {}, exit_code=0)
        line = next(line for line in said.splitlines() if line.startswith("error: "))
        return Answer(words=line.removeprefix("error: "), exit_code=process.returncode)


def _refusal(code: str, field_name: str | None, message: str) -> Answer:
    words = message.removeprefix(f"{field_name}: ") if field_name else message
    return Answer(code=code, field=field_name, words=words)


@asynccontextmanager
async def doors_of(project: Project) -> AsyncIterator[Doors]:
    async with served(project) as s:
        announce_server(project.paths, s.url)  # the CLI finds the server as it finds `gangline serve`
        try:
            async with (
                httpx.AsyncClient(base_url=s.url, timeout=60) as http,
                mcp_client(s.mcp_url, None) as mcp,  # no server token: a person on loopback
            ):
                yield Doors(project, s, http, mcp)
        finally:
            withdraw_server(project.paths)


@pytest.fixture
def project(tmp_path: Path) -> Project:
    project = Project(tmp_path)
    project.agent("coder", [[{"say": "on it"}, {"hang": True}]])
    project.agent("reviewer", [[{"hang": True}]], role="qa")
    project.configure(qa_mode="human", concurrency={"coder": 8})
    return project


async def _through(doors: Doors, door: str, order: Order, item: Item) -> Answer:
    if door == "rest":
        return await doors.rest(*order.rest(item))
    if door == "mcp":
        return await doors.call_mcp(*order.mcp(item))
    return await doors.cli(order.cli(item))


def _events_of(project: Project, item_id: int | None, after: int) -> list[EventRow]:
    return [e for e in project.store.events_after(after, limit=100_000) if item_id is None or e.item_id == item_id]


async def test_every_order_has_the_same_outcome_and_event_from_every_door(project: Project) -> None:
    starts = {(order.name, door): order.start(project) for order in ORDERS for door in DOORS}
    async with doors_of(project) as doors:
        for order in ORDERS:
            outcomes = {}
            for door in DOORS:
                item = starts[(order.name, door)]
                before = project.store.last_event_id()
                answer = await _through(doors, door, order, item)
                assert answer.code is None and answer.exit_code in (None, 0), (order.name, door, answer)
                record = answer.record or {}
                subject = record["id"] if order.name.startswith("add") else item.id
                outcomes[door] = order.then(record)
                kinds = [(e.kind, e.trigger, e.actor) for e in _events_of(project, subject, before)]
                assert (*order.event, ACTOR[door]) in kinds, (order.name, door, kinds)
            assert outcomes["rest"] == outcomes["mcp"] == outcomes["cli"], (order.name, outcomes)


async def test_every_kind_of_bad_input_gets_the_same_error_from_every_door_and_writes_nothing(
    project: Project,
) -> None:
    waiting = _at(project, "Waiting")
    archived = _at(project, "Archived", *DONE, (Trigger.ARCHIVE, Facts()))
    cases = _bad_inputs(waiting, archived)
    assert len(cases) >= 10
    async with doors_of(project) as doors:
        for case in cases:
            for name, data in case.files.items():
                (project.root / name).write_bytes(data)
            before = project.store.last_event_id()
            rest = await doors.rest(*case.rest)
            mcp = await doors.call_mcp(*case.mcp)
            cli = await doors.cli(case.cli)
            assert (rest.code, rest.field) == (mcp.code, mcp.field) == (case.code, case.where), (case.name, rest, mcp)
            assert cli.exit_code == EXIT[case.code], (case.name, cli)
            cli_words = cli.words or ""
            if case.option is not None:  # the CLI names the field by the option a person typed
                assert cli_words.startswith(f"{case.option}: "), (case.name, cli)
                cli_words = cli_words.removeprefix(f"{case.option}: ")
            assert rest.words == mcp.words == cli_words, (case.name, rest.words, mcp.words, cli_words)
            assert _events_of(project, None, before) == [], case.name  # nothing was written


async def test_a_permission_answer_is_the_same_order_from_every_door(project: Project) -> None:
    item = _at(project, "Asking")
    async with doors_of(project) as doors:
        asking = {door: asyncio.create_task(doors.served.permissions.ask(
            f"{item.id}-coder-{n}", item.id, None, "Bash", {"command": f"make deploy-{door}"}, None))
            for n, door in enumerate(DOORS, 1)}  # fmt: skip
        pending = await doors.served.permissions.wait_requested(30, count=len(DOORS))
        by_door = {door: next(p.id for p in pending if p.input["command"] == f"make deploy-{door}") for door in DOORS}
        before = project.store.last_event_id()
        body = {"decision": "allow", "updated_input": {"command": "make deploy-staging"}}
        await doors.rest("POST", f"/api/permissions/{by_door['rest']}", body)
        await doors.call_mcp("answer_permission", {"request_id": by_door["mcp"], **body})
        answered = await doors.cli(["permissions", "answer", by_door["cli"], "allow", "--input",
                                    json.dumps(body["updated_input"])])  # fmt: skip
        assert answered.exit_code == 0
        answers = {door: (await asyncio.wait_for(task, 30)).to_json() for door, task in asking.items()}
    decided = {door: json.loads(text) for door, text in answers.items()}
    assert (
        decided["rest"]
        == decided["mcp"]
        == decided["cli"]
        == {
            "behavior": "allow",
            "updatedInput": {"command": "make deploy-staging"},
        }
    )
    rows = [e for e in project.store.events_after(before, limit=1000) if e.kind == "permission_answered"]
    assert sorted(e.actor for e in rows) == sorted(ACTOR.values())


# --- chat, the fourth door -------------------------------------------------------------------------

# The orders chat has, as a person types them there ({id}: the item's).
CHAT_SAYS = {"start": "start {id}", "stop": "stop {id} lunch", "block": "block {id}", "unblock": "unblock {id}",
             "approve": "approve {id}", "reject": "reject {id} the page does not render"}  # fmt: skip


async def test_chat_carries_out_its_orders_as_rest_does_and_refuses_in_the_same_words(project: Project) -> None:
    orders = [order for order in ORDERS if order.name in CHAT_SAYS]
    starts = {(order.name, door): order.start(project) for order in orders for door in ("rest", "chat")}
    waiting = _at(project, "Waiting")
    chat = MemoryTransport(memory_settings())
    async with chatting(project, chat) as served, httpx.AsyncClient(base_url=served.url, timeout=60) as http:
        for order in orders:
            outcomes = {}
            for door in ("rest", "chat"):
                item, before = starts[(order.name, door)], project.store.last_event_id()
                if door == "rest":
                    outcomes[door] = order.then(await _rest(http, order.rest(item)))
                else:
                    answer = await chat.ask(CHAT_SAYS[order.name].format(id=item.id))
                    assert not answer.startswith("refused"), (order.name, answer)
                    outcomes[door] = order.then((await http.get(f"/api/items/{item.id}")).json())
                actor = ACTOR["rest"] if door == "rest" else f"memory:{PERSON}"
                kinds = [(e.kind, e.trigger, e.actor) for e in _events_of(project, item.id, before)]
                assert (*order.event, actor) in kinds, (order.name, door, kinds)
            assert outcomes["rest"] == outcomes["chat"], (order.name, outcomes)
        for said, rest in [
            (f"approve {waiting.id}", ("POST", f"/api/items/{waiting.id}/approve", None)),
            ("block 9999", ("POST", "/api/items/9999/block", None)),
            (f"assign {waiting.id} nobody", ("PATCH", f"/api/items/{waiting.id}", {"pinned_agent": "nobody"})),
            (f"assign {waiting.id} reviewer", ("PATCH", f"/api/items/{waiting.id}", {"pinned_agent": "reviewer"})),
            ("allow 0123456789abcdef", ("POST", "/api/permissions/0123456789abcdef", {"decision": "allow"})),
        ]:
            before = project.store.last_event_id()
            message = (await _rest(http, rest))["error"]["message"]
            assert await chat.ask(said) == f"refused: {message}", said
            ours = [e for e in _events_of(project, None, before) if e.actor in (ACTOR["rest"], f"memory:{PERSON}")]
            assert ours == [], said  # the pipeline's own work on the started items goes on meanwhile


async def _rest(http: httpx.AsyncClient, rest: tuple[str, str, dict[str, Any] | None]) -> Any:
    method, path, body = rest
    return (await http.request(method, path, json=body)).json()
