"""The pipeline commands as a person runs them: init, add, ls, show, export, import, run and demo."""

from __future__ import annotations

import fcntl
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from kits.helpers import cli_env, git, initialised_repo, ok
from kits.helpers import gangline as _gangline


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A git repository on main with one commit and gangline initialised in it."""
    return initialised_repo(tmp_path / "repo")


def use_fake_coder(repo: Path, steps: list[dict[str, Any]], max_retries: int = 3, gate: str | None = None) -> None:
    """Write project.toml: one fake coder playing ``steps`` on every attempt, server QA."""
    scenario = repo.parent / "coder.json"
    scenario.write_text(json.dumps({"attempts": [steps]}))
    text = f"max_retries = {max_retries}\n"
    if gate:
        text += f"[[gate]]\nname = 'check'\ncommand = {json.dumps(gate)}\ntimeout_s = 60\n"
    text += f'[[agent]]\nname = "coder"\ncli = "fake"\nextra_args = ["--scenario", {json.dumps(str(scenario))}]\n'
    (repo / ".gangline" / "project.toml").write_text(text)


COMMITS = [{"write": "notes/{item_slug}.md", "text": "notes for {item_id}\n"}, {"commit": "work on {item_slug}"}]


def gangline(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return _gangline(*args, cwd=cwd, env=cli_env(**(env or {})))


def test_init_outside_a_git_repository_says_so_and_exits_2(tmp_path: Path) -> None:
    out = gangline("init", cwd=tmp_path, env={"GIT_CEILING_DIRECTORIES": str(tmp_path.parent)})
    assert out.returncode == 2
    assert "not inside a git repository" in out.stderr and "Traceback" not in out.stderr


def test_init_then_add_ls_and_show_round_trip_in_text_and_json(repo: Path) -> None:
    added = ok(gangline("add", "Add login", "--criterion", "a user can log in", "--priority", "3", cwd=repo))
    assert "Added #1 add-login (story) to the backlog" in added
    second = json.loads(ok(gangline("add", "Fix crash", "--kind", "bug", "--depends-on", "1", "--json", cwd=repo)))
    assert second["id"] == 2 and second["kind"] == "bug" and second["depends_on"] == [1]
    assert [c["text"] for c in second["criteria"]] == ["The bug no longer reproduces", "A regression test covers it"]

    listed = ok(gangline("ls", cwd=repo))
    assert "Add login" in listed and "Fix crash" in listed and "backlog" in listed
    rows = json.loads(ok(gangline("ls", "--json", cwd=repo)))
    assert [(r["id"], r["stage"], r["cost_usd"]) for r in rows] == [(1, "backlog", 0.0), (2, "backlog", 0.0)]

    shown = ok(gangline("show", "1", cwd=repo))
    assert "#1 Add login" in shown and "[ ] a user can log in" in shown and "gangline/1-add-login" in shown
    detail = json.loads(ok(gangline("show", "1", "--json", cwd=repo)))
    assert detail["priority"] == 3 and detail["transitions"] == [] and detail["runs"] == []
    assert gangline("show", "9", cwd=repo).returncode == 7


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--kind", "epic"], "--kind: Input should be 'story', 'bug', 'spike' or 'refactor'; found 'epic'"),
        (["--agent", "nobody"], "--agent: no agent profile named 'nobody'"),
        (["--depends-on", "9"], "--depends-on: item 9 does not exist"),
        (["--start-after", "tomorrow"], "--start-after: expected HH:MM (the next such time), +30m / +2h / +1d, or a"),
    ],
)
def test_add_with_a_bad_option_names_it_and_adds_nothing(repo: Path, args: list[str], expected: str) -> None:
    out = gangline("add", "Something", *args, cwd=repo)
    assert out.returncode == 2 and expected in out.stderr, out.stderr
    assert json.loads(ok(gangline("ls", "--json", cwd=repo))) == []


def test_add_with_a_start_time_schedules_the_item(repo: Path) -> None:
    before = time.time()
    added = json.loads(ok(gangline("add", "Tonight", "--start-after", "+2h", "--json", cwd=repo)))
    assert before + 7200 <= added["start_after"] <= time.time() + 7200
    at = json.loads(ok(gangline("add", "Later", "--start-after", "2030-01-02T03:04:05+00:00", "--json", cwd=repo)))
    assert at["start_after"] == 1893553445.0


def test_add_from_file_then_export_and_import_round_trip(repo: Path, tmp_path: Path) -> None:
    item = tmp_path / "item.md"
    item.write_text(
        "---\nkind: bug\ntitle: Broken link\n---\nThe link is broken.\n\n## Acceptance criteria\n\n- [ ] works\n"
    )
    assert "Added #1 broken-link (bug)" in ok(gangline("add", "--from-file", str(item), cwd=repo))
    exported = tmp_path / "items"
    assert "Exported 1 item(s)" in ok(gangline("export", str(exported), cwd=repo))
    file = exported / "1-broken-link.md"
    assert "title: Broken link" in file.read_text()

    refused = gangline("import", str(exported), cwd=repo)
    assert refused.returncode == 1 and "item #1 exists; pass --update" in refused.stdout
    file.write_text(file.read_text().replace("Broken link", "Broken footer link"))
    assert "updated #1" in ok(gangline("import", "--update", str(file), cwd=repo))
    assert "added #2" in ok(gangline("import", str(item), cwd=repo))

    items = json.loads(ok(gangline("ls", "--json", cwd=repo)))
    assert [(i["title"], i["body"], [c["text"] for c in i["criteria"]]) for i in items] == [
        ("Broken footer link", "The link is broken.", ["works"]),
        ("Broken link", "The link is broken.", ["works"]),
    ]


def test_run_until_idle_takes_two_items_to_done_and_squashes_them_onto_main(repo: Path) -> None:
    use_fake_coder(repo, COMMITS, gate='test -n "$(git ls-files notes)"')
    ok(gangline("add", "First thing", cwd=repo))
    ok(gangline("add", "Second thing", "--depends-on", "1", cwd=repo))
    out = ok(gangline("run", "--until-idle", cwd=repo))
    for expected in ("#1 first-thing  backlog → coding  (start, by gangline)", "coding → qa", "merge → done",
                     "#2 second-thing  backlog → coding", "✓ gates passed", "All 2 item(s) are done."):  # fmt: skip
        assert expected in out, out
    assert git(repo, "log", "--format=%s", "main").splitlines() == ["Second thing (#2)", "First thing (#1)", "initial"]
    assert git(repo, "show", "main:notes/first-thing.md") == "notes for 1"
    shown = ok(gangline("show", "1", cwd=repo))
    assert "merged as" in shown and "1-coder-1" in shown and "succeeded" in shown


def test_run_until_idle_exits_1_naming_the_item_it_had_to_block(repo: Path) -> None:
    use_fake_coder(repo, [{"say": "I changed nothing."}], max_retries=0)
    ok(gangline("add", "Lazy work", cwd=repo))
    out = gangline("run", "--until-idle", cwd=repo)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "#1 lazy-work is not done: coding, blocked:" in out.stdout
    assert "You exited without committing any work" in out.stdout
    assert git(repo, "log", "--format=%s", "main") == "initial"


def test_run_refuses_with_exit_8_while_another_server_holds_the_project(repo: Path) -> None:
    use_fake_coder(repo, COMMITS)
    with open(repo / ".gangline" / "server.lock", "w") as lock:
        lock.write("4242")
        lock.flush()
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # what a running server holds
        out = gangline("run", "--until-idle", cwd=repo)
    assert out.returncode == 8 and "another gangline server (pid 4242)" in out.stderr, out.stderr
    assert "Traceback" not in out.stderr


def test_run_without_a_project_points_at_gangline_init(tmp_path: Path) -> None:
    git(tmp_path, "init", "-q")
    out = gangline("run", "--until-idle", cwd=tmp_path)
    assert out.returncode == 2 and "run `gangline init`" in out.stderr


def test_markup_and_escape_sequences_from_an_item_print_inert(repo: Path) -> None:
    refused = gangline("add", "red \x1b[31m title", cwd=repo)
    assert refused.returncode == 2 and "TITLE: a title must be a single line" in refused.stderr
    body = "\x1b[31mred\x1b[0m \x1b]0;new window title\x07[link=http://evil.invalid]click[/link]"
    ok(gangline("add", "[bold]Loud[/bold] :smile: title", "--body", body, cwd=repo))
    for out in (ok(gangline("ls", cwd=repo)), ok(gangline("show", "1", cwd=repo))):
        assert "\x1b" not in out and "\x07" not in out
        assert "[bold]Loud[/bold] :smile: title" in out
    shown = ok(gangline("show", "1", cwd=repo))
    assert "red [link=http://evil.invalid]click[/link]" in shown


def test_demo_with_the_fake_agent_takes_every_item_to_done_and_leaves_the_spikes_report_for_a_person(
    tmp_path: Path,
) -> None:
    out = ok(
        gangline(
            "demo", "--agent", "fake", "--exit-when-done", "--pace", "0", cwd=tmp_path, env={"TMPDIR": str(tmp_path)}
        )
    )
    assert "agent fake" in out and "Every item reached done, and each spike's report is ready." in out
    assert out.count("merge → done") == 3 and "▶ qa run" in out  # the spike is not merged
    assert "Spike #3's report waits for you: read it on the board, then `gangline close 3`." in out
    assert "Greet by name (#4)" in out and "Total cost: $" in out


# Stands in for Claude Code: keeps the argv it was started with, then calls the MCP server its
# --mcp-config names with the run's token, as the real CLI does before its first turn.
_AGENT_THAT_CALLS_MCP = r"""
import json, sys, urllib.request
argv = sys.argv[1:]
config = json.loads(open(argv[argv.index("--mcp-config") + 1]).read())["mcpServers"]["gangline"]
hello = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-06-18",
         "capabilities": {}, "clientInfo": {"name": "stand-in", "version": "1"}}}
request = urllib.request.Request(config["url"], json.dumps(hello).encode(), method="POST", headers={
    **config["headers"], "Content-Type": "application/json", "Accept": "application/json, text/event-stream"})
with urllib.request.urlopen(request, timeout=30) as answer:
    status = answer.status
open(sys.argv[0] + ".seen", "w").write(json.dumps({"argv": argv, "mcp_status": status}))
print(json.dumps({"type": "result", "subtype": "success", "is_error": False, "result": "looked around"}))
"""


def test_under_run_an_agent_gets_gangline_s_mcp_server_and_permission_tool_as_under_serve(repo: Path) -> None:
    folder = repo.parent / "stand-in"  # where it leaves what it saw: shown writable in its sandbox
    folder.mkdir()
    agent = folder / "stand_in_claude.py"
    agent.write_text(f"#!{sys.executable}\n{_AGENT_THAT_CALLS_MCP}")
    agent.chmod(0o755)
    text = (
        f"max_retries = 0\nsandbox_writable = [{json.dumps(str(folder))}]\n"
        f'[[agent]]\nname = "coder"\ncli = "claude"\ncommand = {json.dumps(str(agent))}\n'
    )
    (repo / ".gangline" / "project.toml").write_text(text)
    ok(gangline("add", "Look around", cwd=repo))
    gangline("run", "--until-idle", "--quiet", cwd=repo)  # the stand-in commits nothing: the item is blocked
    seen = json.loads(Path(f"{agent}.seen").read_text())
    argv = seen["argv"]
    assert argv[argv.index("--permission-prompt-tool") + 1] == "mcp__gangline__prompt_permission"
    assert "--strict-mcp-config" in argv and seen["mcp_status"] == 200  # the run's token reached the server
