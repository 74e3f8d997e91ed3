"""The full CLI as a person runs it: actions, status, cost, logs and permissions, with and without a server."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from gangline.cli.client import error_from, parse_sse
from kits.helpers import cli_env, initialised_repo, ok
from kits.helpers import gangline as _gangline

BOUND_S = 60  # every wait on a process or a stream; a hang fails the test instead of the suite
ACTOR = "tester"  # who the CLI says it is (getpass reads LOGNAME first)
WORK = [
    {"say": "Working on it"},
    {"write": "notes/{item_slug}.md", "text": "notes for {item_id}\n"},
    {"commit": "work on {item_slug}"},
    {"cost": 0.0125},
]


def _env(**extra: str) -> dict[str, str]:
    return cli_env(LOGNAME=ACTOR, USER=ACTOR, **extra)


def gangline(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return _gangline(*args, cwd=cwd, env=_env(), timeout=BOUND_S)


def configure(repo: Path, steps: list[dict[str, Any]]) -> None:
    """One fake coder playing ``steps``; a person does QA."""
    scenario = repo.parent / "coder.json"
    scenario.write_text(json.dumps({"attempts": [steps]}))
    (repo / ".gangline" / "project.toml").write_text(
        'qa_mode = "human"\n'
        f'[[agent]]\nname = "coder"\ncli = "fake"\nextra_args = ["--scenario", {json.dumps(str(scenario))}]\n'
    )


def make_repo(parent: Path) -> Path:
    return initialised_repo(parent / "repo")


def code_one_item(repo: Path) -> Path:
    """Item #1 coded by the fake coder, now waiting in qa for a person."""
    configure(repo, WORK)
    ok(gangline("add", "Write notes", cwd=repo))
    waited = gangline("run", "--until-idle", "--quiet", cwd=repo)
    assert waited.returncode == 1 and "#1 write-notes is not done: qa, waiting" in waited.stdout, waited.stdout
    return repo


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path)


@pytest.fixture
def in_qa(repo: Path) -> Path:
    return code_one_item(repo)


@pytest.fixture(scope="module")
def looked_at(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """For tests that only look or are refused: #1 waits in qa after one run, #2 is scheduled in two hours."""
    repo = code_one_item(make_repo(tmp_path_factory.mktemp("looked_at")))
    ok(gangline("add", "Later", "--start-after", "+2h", cwd=repo))
    return repo


def item(repo: Path, item_id: int) -> dict[str, Any]:
    shown: dict[str, Any] = json.loads(ok(gangline("show", str(item_id), "--json", cwd=repo)))
    return shown


# --- no server: the store directly ---------------------------------------------------------------


def test_without_a_server_edit_block_unblock_and_approve_change_the_store_and_say_so(in_qa: Path) -> None:
    edited = gangline("edit", "1", "--title", "Write better notes", "--priority", "4", cwd=in_qa)
    assert "edited #1 write-notes: priority, title" in ok(edited)
    assert "no server running: using .gangline/state.db directly" in edited.stderr
    assert "Traceback" not in edited.stderr

    assert "blocked #1 write-notes: now qa, blocked: look first" in ok(
        gangline("block", "1", "-m", "look first", cwd=in_qa)
    )
    assert "unblocked #1 write-notes: now qa" in ok(gangline("unblock", "1", cwd=in_qa))
    assert "approved #1 write-notes: now merge" in ok(gangline("approve", "1", cwd=in_qa))

    shown = item(in_qa, 1)
    assert (shown["title"], shown["priority"], shown["stage"]) == ("Write better notes", 4, "merge")
    transitions = shown["transitions"]
    assert [(t["trigger"], t["actor"]) for t in transitions[-3:]] == [
        ("block", ACTOR),
        ("unblock", ACTOR),
        ("qa_passed", ACTOR),
    ]


def test_an_illegal_action_exits_5_naming_the_stage_and_changes_nothing(looked_at: Path) -> None:
    refused = gangline("start", "1", cwd=looked_at)
    assert refused.returncode == 5, refused.stderr
    assert "item 1: cannot start while qa" in refused.stderr and "Traceback" not in refused.stderr
    assert item(looked_at, 1)["stage"] == "qa"


@pytest.mark.parametrize(
    ("args", "code", "expected"),
    [
        (["block", "9"], 7, "item 9 does not exist"),
        (["edit", "1", "--priority", "5000"], 2, "--priority:"),
        (["edit", "1"], 2, "nothing to change"),
        (["edit", "1", "--clear", "title"], 2, "--clear: expected one of agent, qa, depends-on"),
        (["edit", "1", "--depends-on", "9"], 2, "--depends-on: item 9 does not exist"),
        (["logs", "2"], 7, "item 2 has no runs yet"),
        (["logs", "1-coder-9"], 7, "run 1-coder-9 does not exist"),
        (["cost", "--by", "week"], 2, "--by: Input should be 'run', 'item', 'profile' or 'day'; found 'week'"),
        (["permissions"], 1, "no server running: permission requests exist only inside a running gangline serve"),
    ],
)
def test_bad_requests_name_the_problem_and_exit_with_its_code(
    looked_at: Path, args: list[str], code: int, expected: str
) -> None:
    out = gangline(*args, cwd=looked_at)
    assert out.returncode == code and expected in out.stderr, (out.returncode, out.stderr)
    assert "Traceback" not in out.stderr


def test_status_and_cost_as_tables_and_as_json(looked_at: Path) -> None:
    table = ok(gangline("status", cwd=looked_at))
    assert "backlog" in table and "No live runs." in table and "start after" in table
    assert "Nothing drives the pipeline now" in table
    status = json.loads(ok(gangline("status", "--json", cwd=looked_at)))
    assert status["stages"] | {} == {"backlog": 1, "coding": 0, "qa": 1, "merge": 0, "done": 0, "archived": 0}
    assert status["timers"][0]["item_id"] == 2 and status["timers"][0]["kind"] == "start_after"
    assert status["orchestrator"]["running"] is False and status["live_runs"] == []

    costs = ok(gangline("cost", cwd=looked_at))
    assert "Cost by item" in costs and "#1" in costs and "total" in costs and "$0.0125" in costs
    by_run = json.loads(ok(gangline("cost", "--by", "run", "--json", cwd=looked_at)))
    assert [row["key"] for row in by_run["rows"]] == ["1-coder-1"] and by_run["total_usd"] == pytest.approx(0.0125)


def test_logs_of_a_finished_run_render_its_text_and_tool_calls_or_print_json_lines(looked_at: Path) -> None:
    shown = ok(gangline("logs", "1", cwd=looked_at))
    for expected in ("run 1-coder-1 · coder (coder) · item #1 · succeeded", "● Working on it", "⚙ Write", "⚙ Bash",
                     "■ run succeeded"):  # fmt: skip
        assert expected in shown, shown
    assert ok(gangline("logs", "1-coder-1", cwd=looked_at)) == shown
    lines = ok(gangline("logs", "1", "--json", cwd=looked_at)).splitlines()
    records = [json.loads(line) for line in lines]
    assert [r["id"] for r in records] == list(range(1, len(records) + 1))
    assert records[-1]["event"]["kind"] == "run_finished"


def test_a_server_file_whose_process_is_gone_is_ignored(repo: Path) -> None:
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (repo / ".gangline" / "server.json").write_text(json.dumps({"url": "http://127.0.0.1:9", "pid": int(gone.stdout)}))
    out = gangline("ls", cwd=repo)
    assert "no server running" in out.stderr and "No items" in ok(out)


# --- pure pieces -------------------------------------------------------------------------------


def test_sse_lines_become_messages_and_keepalives_are_skipped() -> None:
    lines = [
        "id: 3",
        "event: text_delta",
        'data: {"a":',
        "data: 1}",
        "",
        ": keepalive",
        "",
        "event: end",
        "data: {}",
        "",
    ]
    messages = list(parse_sse(lines))
    assert [(m.id, m.event, m.data) for m in messages] == [(3, "text_delta", '{"a":\n1}'), (3, "end", "{}")]


@pytest.mark.parametrize(
    ("status", "error", "code", "kind"),
    [
        (
            409,
            {"code": "illegal_transition", "message": "m", "stage": "qa", "trigger": "start"},
            5,
            "IllegalTransition",
        ),
        (409, {"code": "conflict", "message": "m", "expected": "qa", "current": "merge"}, 5, "StateConflict"),
        (404, {"code": "not_found", "message": "m"}, 7, "NotFoundError"),
        (422, {"code": "invalid", "message": "m", "field": "title"}, 2, "ConfigError"),
        (401, {"code": "unauthorized", "message": "m"}, 2, "ConfigError"),
        (503, {"code": "locked", "message": "m"}, 8, "ServerLockedError"),
        (500, {"code": "internal", "message": "m"}, 1, "GanglineError"),
    ],
)
def test_the_servers_errors_become_the_errors_the_store_would_raise_keeping_its_words(
    status: int, error: dict[str, Any], code: int, kind: str
) -> None:
    err = error_from(status, {"error": error})
    assert (type(err).__name__, err.exit_code) == (kind, code)
    sent = "; the CLI sent GANGLINE_TOKEN if set, else .gangline/secret: set GANGLINE_TOKEN to the token"
    hint = f"{sent} the server was started with" if status == 401 else ""
    assert str(err) == "m" + hint


# --- with a server -------------------------------------------------------------------------------


async def _start(*args: str, cwd: Path) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gangline", *args, cwd=cwd, env=_env(),
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip


async def _run(*args: str, cwd: Path) -> tuple[int, str, str]:
    return await _finished(await _start(*args, cwd=cwd))


async def _finished(proc: asyncio.subprocess.Process) -> tuple[int, str, str]:
    async with asyncio.timeout(BOUND_S):
        out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def _first_run_started(url: str) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=BOUND_S) as http:
        params = {"after": 0, "kind": "run_started"}
        async with asyncio.timeout(BOUND_S), http.stream("GET", "/api/events", params=params) as events:
            async for line in events.aiter_lines():
                if line.startswith("event: run_started"):
                    return


async def _read_until(stream: asyncio.StreamReader, text: str) -> str:
    seen = b""
    async with asyncio.timeout(BOUND_S):
        while text.encode() not in seen:
            chunk = await stream.read(4096)
            assert chunk, f"ended before {text!r}: {seen.decode()}"
            seen += chunk
    return seen.decode()


async def test_with_a_server_running_the_cli_goes_through_it(repo: Path, tmp_path: Path) -> None:
    go = tmp_path / "go"
    configure(repo, [{"say": "before"}, {"wait_for_file": str(go), "timeout_s": BOUND_S}, {"say": "after"}, *WORK])
    server = await _start("serve", "--port", "0", cwd=repo)
    try:
        assert server.stdout is not None
        async with asyncio.timeout(BOUND_S):
            said = (await server.stdout.readline()).decode()
        found = json.loads((repo / ".gangline" / "server.json").read_text())
        url = found["url"]
        assert f"gangline serving {url}" in said and found["pid"] == server.pid

        code, out, err = await _run("add", "Live work", cwd=repo)
        assert code == 0 and "Added #1 live-work" in out and f"via server {url}" in err
        code, out, err = await _run("ls", cwd=repo)
        assert code == 0 and "Live work" in out and f"via server {url}" in err

        await _first_run_started(url)
        follower = await _start("logs", "-f", "1", cwd=repo)
        assert follower.stdout is not None
        early = await _read_until(follower.stdout, "before")
        go.touch()
        code, rest, err = await _finished(follower)
        shown = early + rest
        assert code == 0 and f"via server {url}" in err, err
        assert shown.index("before") < shown.index("after") < shown.index("■ run succeeded"), shown
        assert "⚙ Write" in shown and "⚙ Bash" in shown

        assert await _run("permissions", "--json", cwd=repo) == (0, "[]\n", f"via server {url}\n")

        assert (await _run("add", "Later", "--start-after", "+2h", cwd=repo))[0] == 0
        code, out, err = await _run("block", "2", "-m", "not yet", cwd=repo)
        assert code == 0 and "blocked #2 later: now backlog, blocked: not yet" in out, out + err
        code, out, err = await _run("approve", "2", cwd=repo)
        assert code == 5 and "cannot qa_passed while backlog" in err, err

        code, out, _err = await _run("show", "2", "--json", cwd=repo)
        last = json.loads(out)["transitions"][-1]
        assert (last["trigger"], last["actor"], last["reason"]) == ("block", ACTOR, "not yet")
        code, out, _err = await _run("status", "--json", cwd=repo)
        assert code == 0 and json.loads(out)["orchestrator"]["running"] is True
    finally:
        if server.returncode is None:
            server.send_signal(signal.SIGTERM)
        code, _out, err = await _finished(server)
    assert code in (-signal.SIGTERM, 128 + signal.SIGTERM) and "Traceback" not in err, err
    assert not (repo / ".gangline" / "server.json").exists()
