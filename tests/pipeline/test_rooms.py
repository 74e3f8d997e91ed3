"""A run's room with the real bubblewrap and real git: what it can write, what it cannot see, what survives it."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import stat
import subprocess
import zlib
from pathlib import Path

import pytest

from gangline.agents.leftovers import RunCgroup
from gangline.agents.runlog import replay
from gangline.agents.sandbox import confine
from gangline.core.errors import RunnerError
from gangline.core.events import ProcessesEnded
from gangline.core.profiles import AgentProfile, CliKind, Role, SandboxMode
from gangline.core.stages import Stage
from gangline.pipeline.rooms import Opened, Rooms
from gangline.project.paths import ProjectPaths
from gangline.repo.worktrees import Worktrees
from kits.helpers import git
from kits.pipeline_kit import Project, commit_file

# No skip without bubblewrap: scripts/test installs it, and its absence is a failure here.

CODER = AgentProfile(name="coder", role=Role.CODER, cli=CliKind.FAKE)


@pytest.fixture
def project(tmp_path: Path) -> ProjectPaths:
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    git(root, "config", "user.name", "Person")
    git(root, "config", "user.email", "person@example.invalid")
    (root / "README.md").write_text("# project\n")
    (root / ".gitignore").write_text(".gangline/\n")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "initial")
    paths = ProjectPaths(root)
    for path in (paths.state_dir, paths.runs_dir, paths.hooks_dir):
        path.mkdir(exist_ok=True)
    (paths.state_dir / "state.db").write_text("the person's database\n")
    (paths.state_dir / "server.json").write_text('{"url": "http://127.0.0.1:1", "pid": 1}\n')
    return paths


async def worktree(paths: ProjectPaths, item_id: int, slug: str) -> Path:
    trees = Worktrees(paths.root, paths.worktrees_dir, paths.merge_dir, "main")
    return await trees.ensure(item_id, slug)


def inside(opened: Opened, script: str) -> subprocess.CompletedProcess[str]:
    """``script`` run by /bin/sh in the room, with the run's environment, as an agent's shell would."""
    argv = confine(["/bin/sh", "-c", script], opened.room, opened.bwrap)
    env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/root"), "GANGLINE_TEST": "1"}
    return subprocess.run(argv, cwd=opened.room.workdir, env=env, capture_output=True, text=True, timeout=60)


async def test_a_commit_in_the_room_lands_on_the_item_branch_and_nothing_else_moves(
    project: ProjectPaths, tmp_path: Path
) -> None:
    mine, other = await worktree(project, 1, "mine"), await worktree(project, 2, "other")
    main_before = git(project.root, "rev-parse", "main")
    other_before = git(project.root, "rev-parse", "gangline/2-other")
    rooms = Rooms(project, SandboxMode.REQUIRED, os.environ)
    opened = await rooms.open("1-coder-1", CODER, mine, "1-mine")
    assert opened is not None
    said = inside(
        opened,
        "echo work > work.txt && git add work.txt && git -c user.name=A -c user.email=a@b commit -q -m work && "
        "echo committed; "
        "echo evil > ../2-other/evil.txt 2>/dev/null; "  # another item's worktree: not shown, so not changed
        f"echo evil > {project.root}/EVIL.txt 2>/dev/null || echo root-refused; "
        f"git -C {project.root} add README.md 2>/dev/null || echo index-refused; "
        f"echo {other_before} > {project.root}/.git/refs/heads/main 2>/dev/null || echo main-refused; "
        f"git update-ref refs/heads/main HEAD 2>/dev/null || echo update-ref-refused; "
        f"git branch -f gangline/2-other HEAD 2>/dev/null; "
        f"echo hacked >> {project.root}/.git/hooks/pre-commit.sample 2>/dev/null || echo hooks-refused; "
        f"echo hacked > {project.hooks_dir}/pre-push 2>/dev/null || echo guard-refused; "
        f"cat {project.state_dir}/state.db 2>/dev/null || echo db-unseen; "
        f"cat {project.state_dir}/server.json 2>/dev/null || echo server-file-unseen; "
        "git config --global user.name evil 2>/dev/null || echo global-refused; "
        f"rm -rf {project.root}/.git/objects/* 2>/dev/null || echo objects-refused",
    )
    harvest = await rooms.close(opened)
    for line in ("committed", "root-refused", "index-refused", "main-refused", "update-ref-refused",
                 "hooks-refused", "guard-refused", "db-unseen", "server-file-unseen", "global-refused",
                 "objects-refused"):  # fmt: skip
        assert line in said.stdout.splitlines(), (line, said.stdout, said.stderr)
    assert harvest is not None and harvest.refused is None and harvest.new_tip is not None
    assert git(project.root, "log", "-1", "--format=%s", "gangline/1-mine") == "work"
    assert git(project.root, "show", "gangline/1-mine:work.txt") == "work"
    assert git(project.root, "rev-parse", "main") == main_before
    assert git(project.root, "rev-parse", "gangline/2-other") == other_before
    assert not (other / "evil.txt").exists() and not (project.root / "EVIL.txt").exists()
    assert git(project.root, "status", "--porcelain") == ""
    assert (project.state_dir / "state.db").read_text() == "the person's database\n"
    assert git(project.root, "fsck", "--no-progress") == ""  # the store is whole
    assert not list(project.runs_dir.glob("1-coder-1.sandbox"))  # the run's own directory is gone


async def test_commits_an_agent_packed_in_its_room_land_on_the_item_branch(project: ProjectPaths) -> None:
    mine = await worktree(project, 1, "mine")
    rooms = Rooms(project, SandboxMode.REQUIRED, os.environ)
    opened = await rooms.open("1-coder-1", CODER, mine, "1-mine")
    assert opened is not None
    said = inside(
        opened,
        "for n in 1 2 3; do echo $n > f$n.txt && git add f$n.txt && "
        "git -c user.name=A -c user.email=a@b commit -q -m work$n; done && "
        "git repack -q -d -l && echo packed",
    )
    assert "packed" in said.stdout, said.stderr
    harvest = await rooms.close(opened)
    assert harvest is not None and harvest.refused is None and harvest.new_tip is not None
    assert git(project.root, "log", "--format=%s", "gangline/1-mine").splitlines() == [
        "work3",
        "work2",
        "work1",
        "initial",
    ]
    assert git(project.root, "show", "gangline/1-mine:f2.txt") == "2"
    assert git(project.root, "fsck", "--no-progress") == ""


async def test_an_object_planted_under_another_name_never_enters_the_store(project: ProjectPaths) -> None:
    mine = await worktree(project, 1, "mine")
    rooms = Rooms(project, SandboxMode.REQUIRED, os.environ)
    opened = await rooms.open("1-coder-1", CODER, mine, "1-mine")
    assert opened is not None and opened.git is not None
    empty_blob = "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"  # what `git add` of any empty file will reuse
    planted = opened.git.objects / empty_blob[:2] / empty_blob[2:]
    planted.parent.mkdir(parents=True)
    planted.write_bytes(zlib.compress(b"blob 5\x00evil\n"))
    harvest = await rooms.close(opened)
    assert harvest is not None and harvest.refused is not None
    assert f"object {empty_blob} holds the content of" in harvest.refused  # the run's work is not taken at all
    shown = subprocess.run(["git", "cat-file", "-e", empty_blob], cwd=project.root, capture_output=True)
    if shown.returncode == 0:  # if it is there at all, it is the real empty blob
        assert git(project.root, "cat-file", "-p", empty_blob) == ""


async def test_a_branch_tip_that_is_no_commit_is_refused_and_the_branch_stays(project: ProjectPaths) -> None:
    mine = await worktree(project, 1, "mine")
    before = git(project.root, "rev-parse", "gangline/1-mine")
    rooms = Rooms(project, SandboxMode.REQUIRED, os.environ)
    opened = await rooms.open("1-coder-1", CODER, mine, "1-mine")
    assert opened is not None
    inside(opened, f"echo {'1' * 40} > {project.root}/.git/refs/heads/gangline/1-mine")
    harvest = await rooms.close(opened)
    assert harvest is not None and harvest.refused == "the run's commit 111111111111 is incomplete: objects are missing"
    assert git(project.root, "rev-parse", "gangline/1-mine") == before


async def test_every_process_the_room_starts_dies_with_it(project: ProjectPaths) -> None:
    mine = await worktree(project, 1, "mine")
    rooms = Rooms(project, SandboxMode.REQUIRED, os.environ)
    opened = await rooms.open("1-coder-1", CODER, mine, "1-mine")
    assert opened is not None
    inside(opened, "setsid sleep 911 >/dev/null 2>&1 & nohup sleep 912 >/dev/null 2>&1 & (sleep 913 &) ; echo started")
    await rooms.close(opened)
    left = subprocess.run(["pgrep", "-f", "sleep 91[123]"], capture_output=True, text=True)
    assert left.stdout == ""


def test_required_without_bubblewrap_refuses_to_start_and_says_how_to_install(
    project: ProjectPaths, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("gangline.pipeline.rooms.bwrap_path", lambda: None)
    monkeypatch.setenv("PATH", "/nonexistent")
    rooms = Rooms(project, SandboxMode.REQUIRED, os.environ)
    with pytest.raises(RunnerError, match=r'sandbox = "required", but bubblewrap \(bwrap\) is not installed; install'):
        rooms.bwrap()
    assert rooms.describe().startswith("required but unavailable")
    assert Rooms(project, SandboxMode.AUTO, os.environ).bwrap() is None  # auto: runs go unconfined


LEAVE_BEHIND = (
    "setsid sleep 921 >/dev/null 2>&1 < /dev/null & nohup sleep 922 >/dev/null 2>&1 < /dev/null & "
    "(sleep 923 >/dev/null 2>&1 < /dev/null &) ; echo left"
)


def left_behind() -> list[str]:
    found = subprocess.run(["pgrep", "-a", "-f", "sleep 92[123]"], capture_output=True, text=True)
    return [line for line in found.stdout.splitlines() if "pgrep" not in line]


@pytest.mark.parametrize(("sandbox", "cgroup"), [("auto", True), ("off", True), ("off", False)])
async def test_what_an_agent_leaves_running_dies_with_its_run_sandbox_or_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sandbox: str, cgroup: bool
) -> None:
    if not cgroup:  # as where no cgroup is delegated: the run's marker finds them
        monkeypatch.setattr(RunCgroup, "make", classmethod(lambda cls, name: None))
    project = Project(tmp_path)
    project.agent("coder", [[{"run": LEAVE_BEHIND}, *commit_file("a.txt", "a\n")]])
    project.configure(sandbox=sandbox)
    item = project.add("Start daemons")
    await project.run_until_idle()
    assert project.stage(item.id) is Stage.DONE
    assert left_behind() == []
    [run] = project.store.runs(item.id)
    ended = [r.event for r in replay(Path(run.log_path)) if isinstance(r.event, ProcessesEnded)]
    if sandbox == "auto":  # the sandbox's pid namespace ended them with the CLI: nothing was left to find
        assert ended == []
        return
    # setsid took one out of the agent's process group: found and named in the run's log
    # (the other two were still in the group, which the run's end kills).
    assert [(e.how, [p.command for p in e.processes]) for e in ended] == [
        ("cgroup" if cgroup and cgroups_here() else "marker", ["sleep 921"])
    ]


def cgroups_here() -> bool:
    probe = RunCgroup.make(f"gangline-probe-{os.getpid()}")
    if probe is not None:
        probe.remove()
    return probe is not None


async def test_commits_a_killed_server_never_took_in_are_taken_in_when_it_restarts(project: ProjectPaths) -> None:
    mine = await worktree(project, 1, "mine")
    opened = await Rooms(project, SandboxMode.REQUIRED, os.environ).open("1-coder-1", CODER, mine, "1-mine")
    assert opened is not None
    inside(opened, "echo w > w.txt && git add w.txt && git -c user.name=A -c user.email=a@b commit -q -m kept")
    # The server dies here: nothing closes the room. The next one starts:
    [(run_id, harvest)] = await Rooms(project, SandboxMode.REQUIRED, os.environ).recover()
    assert run_id == "1-coder-1" and harvest.new_tip is not None
    assert git(project.root, "log", "-1", "--format=%s", "gangline/1-mine") == "kept"
    assert not list(project.runs_dir.glob("*.sandbox"))


async def test_a_room_whose_removal_a_kill_cut_short_does_not_stop_the_next_server(project: ProjectPaths) -> None:
    rooms = Rooms(project, SandboxMode.REQUIRED, os.environ)
    first = await rooms.open("1-coder-1", CODER, await worktree(project, 1, "one"), "1-one")
    second = await rooms.open("2-coder-1", CODER, await worktree(project, 2, "two"), "2-two")
    assert first is not None and first.git is not None and second is not None
    inside(second, "echo w > w.txt && git add w.txt && git -c user.name=A -c user.email=a@b commit -q -m kept")
    # The server dies while a finished room's quarantine is being removed: its objects are gone, not all of it.
    shutil.rmtree(first.git.objects)
    recovered = dict(await Rooms(project, SandboxMode.REQUIRED, os.environ).recover())
    assert recovered["1-coder-1"].new_tip is None and recovered["1-coder-1"].refused is None  # nothing to take
    assert recovered["2-coder-1"].new_tip is not None  # the other room's commit is still taken in
    assert git(project.root, "log", "-1", "--format=%s", "gangline/2-two") == "kept"
    assert not list(project.runs_dir.glob("*.sandbox"))


@pytest.mark.parametrize("kind", ["refresh", "other-shape"])
async def test_a_sign_in_the_cli_refreshes_inside_goes_back_to_the_person_and_nothing_else_does(
    tmp_path: Path, kind: str
) -> None:
    home = tmp_path / "home"
    person = home / ".claude" / ".credentials.json"
    person.parent.mkdir(parents=True)
    person.write_text(json.dumps({"claudeAiOauth": {"accessToken": "old", "refreshToken": "r1"}}))
    person.chmod(0o600)
    written = (
        {"claudeAiOauth": {"accessToken": "new", "refreshToken": "r2"}}
        if kind == "refresh"
        else {"attacker": {"accessToken": "theirs"}}
    )
    refresh = (
        'test "$(cat "$CLAUDE_CONFIG_DIR/.credentials.json")" = '
        f"{shlex.quote(person.read_text())} && echo {shlex.quote(json.dumps(written))} "
        '> "$CLAUDE_CONFIG_DIR/.credentials.json"'
    )
    project = Project(tmp_path)
    literal = refresh.replace("{", "{{").replace("}", "}}")  # scenario strings are templates
    project.agent("coder", [[{"run": literal}, *commit_file("a.txt", "a\n")]], env={"HOME": str(home)})
    project.configure()
    item = project.add("Refresh the sign-in")
    await project.run_until_idle()
    assert project.stage(item.id) is Stage.DONE, project.item(item.id).state
    now = json.loads(person.read_text())
    if kind == "refresh":  # the CLI saw the person's sign-in, refreshed it, and the person has the new one
        assert now == written and stat.S_IMODE(person.stat().st_mode) == 0o600
    else:  # not a refresh of the same kind of file: never written over the person's
        assert now == {"claudeAiOauth": {"accessToken": "old", "refreshToken": "r1"}}
    kept = project.paths.state_dir / "agents" / "coder" / "claude" / ".credentials.json"
    assert json.loads(kept.read_text()) == written  # the profile's own copy, for its next run


async def test_a_run_that_switches_branch_is_put_back_on_its_own_and_its_other_branch_stays_inside(
    project: ProjectPaths,
) -> None:
    mine = await worktree(project, 1, "mine")
    rooms = Rooms(project, SandboxMode.REQUIRED, os.environ)
    opened = await rooms.open("1-coder-1", CODER, mine, "1-mine")
    assert opened is not None
    inside(opened, "git checkout -q -b gangline/9-elsewhere && git -c user.name=A -c user.email=a@b commit -q "
                   "--allow-empty -m away")  # fmt: skip
    await rooms.close(opened)
    assert git(mine, "symbolic-ref", "HEAD") == "refs/heads/gangline/1-mine"
    assert "gangline/9-elsewhere" not in git(project.root, "branch", "--list")
