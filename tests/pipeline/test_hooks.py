"""The project's hooks, run by the pipeline on real repositories with fake scenario agents.

Every hook appends a line to a log the test reads (the scenarios' folder is writable in the
sandbox): which point ran, for which item, in which directory. A failed hook is treated as
failed gates are: the attempt fails, the output is the next prompt, and spent retries block.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from gangline.core.errors import ConfigError
from gangline.core.orders import ItemAction
from gangline.core.stages import Hold, Stage
from gangline.pipeline.orders import Orders
from gangline.pipeline.views import Views
from kits.pipeline_kit import Project, commit_file, git


@pytest.fixture
def project(tmp_path: Path) -> Project:
    made = Project(tmp_path)
    (made.root / "web").mkdir()
    (made.root / "web" / "index.html").write_text("<p>hi</p>\n")
    (made.root / ".gitignore").write_text(".gangline/\ndeps/\n")  # what after_create installs is ignored, as usual
    git(made.root, "add", "-A")
    git(made.root, "commit", "-q", "-m", "web")
    return made


def logged(project: Project, point: str) -> str:
    """A hook's command that notes its point, item and directory (relative to the repository's worktree root)."""
    where = '$(basename "$(dirname "$PWD")")/$(basename "$PWD")'
    return f'echo "{point} $GANGLINE_HOOK #$GANGLINE_ITEM_ID {where}" >> {project.scenarios}/hooks.log'


def hook_log(project: Project) -> list[str]:
    path = project.scenarios / "hooks.log"
    return path.read_text().splitlines() if path.exists() else []


def _q(command: str) -> str:
    return '"' + command.replace("\\", "\\\\").replace('"', '\\"') + '"'


def hooks(project: Project, **points: str) -> str:
    """A [hooks] table whose commands log themselves and then do ``points``' command ("" for nothing more)."""
    lines = ["[hooks]"]
    for point, then in points.items():
        command = logged(project, point) + (f" && {then}" if then else "")
        lines.append(f"{point} = {_q(command)}")
    return "\n".join(lines) + "\n"


async def test_each_hook_runs_at_its_point_and_what_after_create_installs_is_there_for_every_gate(
    project: Project,
) -> None:
    project.agent("coder", [commit_file("a.txt", "a\n"), commit_file("b.txt", "b\n")])
    flag = project.scenarios / "tried"
    project.configure(
        # The second gate fails the first attempt only, so the item is coded twice in one worktree.
        gates=[("deps installed", "test -f deps/ready"), ("once", f"test -f {flag} || {{ touch {flag}; exit 1; }}")],
        archive_after_s=0,
        tables=hooks(
            project, after_create="mkdir -p deps && touch deps/ready", before_run="", after_run="", before_remove=""
        )
        + f"""
[[component]]
dir = "web"
setup = {_q(logged(project, "setup"))}
teardown = {_q(logged(project, "teardown"))}
""",
    )
    item = project.add("Add a and b")
    await project.run_until_idle()

    assert project.stage(item.id) is Stage.ARCHIVED
    tree = f"{item.id}-add-a-and-b"
    n = item.id
    assert hook_log(project) == [
        f"after_create after_create #{n} worktrees/{tree}",
        f"setup after_create #{n} {tree}/web",
        f"before_run before_run #{n} worktrees/{tree}",
        f"after_run after_run #{n} worktrees/{tree}",
        # the gates failed once: the retry runs in the same worktree, which is not prepared again
        f"before_run before_run #{n} worktrees/{tree}",
        f"after_run after_run #{n} worktrees/{tree}",
        # each squash cleans the merge workspace: it is prepared again before the merge's gates
        f"after_create after_create #{n} .gangline/merge",
        f"setup after_create #{n} merge/web",
        # at archive: components are torn down before the project's own before_remove
        f"teardown before_remove #{n} {tree}/web",
        f"before_remove before_remove #{n} worktrees/{tree}",
    ]
    assert project.base_log()[0] == f"Add a and b (#{n})"
    assert not (project.paths.worktrees_dir / tree).exists()
    detail = Views(project.store).detail(n)
    assert [(h.name, h.context, h.passed) for h in detail.hooks] == [
        ("before_run", "before_run", True),
        ("after_run", "after_run", True),
        ("after_create", "after_create", True),
        ("setup web", "after_create", True),
        ("teardown web", "before_remove", True),
        ("before_remove", "before_remove", True),
    ]
    assert [(g.name, g.context) for g in detail.gates] == [("deps installed", "merge"), ("once", "merge")]
    kinds = [e.kind for e in project.store.events_after() if e.item_id == n]
    assert kinds.count("hooks_passed") == 7 and "hooks_failed" not in kinds


async def test_a_failing_before_run_is_a_failed_attempt_and_blocks_the_item_once_its_retries_are_spent(
    project: Project,
) -> None:
    project.agent("coder", [commit_file("a.txt", "a\n")])
    project.configure(max_retries=1, tables=hooks(project, before_run="echo database is not up; exit 3"))
    item = project.add("Add a")
    await project.run_until_idle()

    held = project.item(item.id)
    assert (held.stage, held.state.hold) == (Stage.CODING, Hold.BLOCKED)
    assert held.state.hold_reason is not None
    assert held.state.hold_reason.startswith("2 attempts failed; the last: Hook 'before_run' failed with exit code 3.")
    assert "database is not up" in held.state.hold_reason
    assert project.store.runs(item.id) == []  # no agent started in a worktree its hook could not ready
    assert hook_log(project) == [f"before_run before_run #{item.id} worktrees/{item.id}-add-a"] * 2
    events = [e for e in project.store.events_after() if e.item_id == item.id]
    assert [e.kind for e in events if e.kind.startswith("hooks_")] == ["hooks_failed", "hooks_failed"]


async def test_a_hook_that_outlives_its_timeout_is_killed_and_fails(project: Project) -> None:
    project.agent("coder", [commit_file("a.txt", "a\n")])
    slow = f"{logged(project, 'after_create')} && sleep 60"
    project.configure(max_retries=0, tables=f"[hooks]\nafter_create = {_q(slow)}\ntimeout_s = 0.5\n")
    item = project.add("Add a")
    await project.run_until_idle()

    held = project.item(item.id)
    assert held.state.hold is Hold.BLOCKED
    assert held.state.hold_reason is not None
    # "after" the time it took, which is its timeout and the moment its group took to die
    assert re.match(r"the only attempt failed: Hook 'after_create' timed out after 0\.\d s and was killed\.",
                    held.state.hold_reason)  # fmt: skip
    [result] = Views(project.store).detail(item.id).hooks
    assert (result.name, result.timed_out, result.exit_code) == ("after_create", True, None)


async def test_after_run_failing_sends_its_output_to_the_coder_like_failed_gates(project: Project) -> None:
    project.agent("coder", [commit_file("a.txt", "a\n"), commit_file("a.txt", "a, formatted\n")])
    flag = project.scenarios / "formatted"
    check = f"test -f {flag} || {{ touch {flag}; echo 'a.txt: 2 lines would be reformatted'; exit 1; }}"
    project.configure(tables=hooks(project, after_run=check))
    item = project.add("Add a")
    await project.run_until_idle()

    assert project.stage(item.id) is Stage.DONE
    second = project.prompts(item.id)[1]
    assert "Hook 'after_run' failed with exit code 1." in second
    assert "a.txt: 2 lines would be reformatted" in second
    assert project.base_file("a.txt") == "a, formatted"


async def test_a_failing_before_remove_keeps_the_worktree_and_says_why(project: Project) -> None:
    project.agent("coder", [commit_file("a.txt", "a\n")])
    project.configure(archive_after_s=0, tables=hooks(project, before_remove="echo containers still up; exit 1"))
    item = project.add("Add a")
    await project.run_until_idle()

    assert project.stage(item.id) is Stage.ARCHIVED
    assert (project.paths.worktrees_dir / f"{item.id}-add-a").is_dir()
    kept = [e for e in project.store.events_after() if e.item_id == item.id and e.kind == "worktree_kept"]
    assert [e.reason for e in kept] == [
        "Hook 'before_remove' failed with exit code 1. The worktree stays (the hook's output is on the item)."
    ]
    [result] = Views(project.store).detail(item.id).hooks
    assert "containers still up" in result.output


async def test_after_create_added_or_changed_later_reaches_the_worktree_already_there_once(project: Project) -> None:
    project.agent("coder", [[{"say": "I could not"}], [{"say": "Still not"}], commit_file("a.txt", "a\n")])
    project.configure(max_retries=0)
    item = project.add("Add a")
    n = item.id
    await project.run_until_idle()
    assert project.item(n).state.hold is Hold.BLOCKED  # nothing committed, and no retry left
    assert hook_log(project) == []

    for then in ("", "true"):  # added, then changed: each time it is in force for the worktree already there
        project.configure(max_retries=0, tables=hooks(project, after_create=then))
        await Orders(project.orchestrator(), Views(project.store)).act(n, ItemAction.UNBLOCK, None, "ann")
        await project.run_until_idle()

    assert project.stage(n) is Stage.DONE
    ran = [f"after_create after_create #{n} worktrees/{n}-add-a"] * 2  # the added command, then the changed one
    assert hook_log(project) == [*ran, f"after_create after_create #{n} .gangline/merge"]


def test_a_component_outside_the_repository_or_named_twice_is_refused_with_its_key(project: Project) -> None:
    with pytest.raises(ConfigError, match=r"component\[1\]\.dir: expected a directory inside the repository"):
        project.configure(tables='[[component]]\ndir = "../elsewhere"\nsetup = "true"\n')
    with pytest.raises(ConfigError, match=r"component\[2\]\.dir: expected a dir no other \[\[component\]\] uses"):
        project.configure(tables='[[component]]\ndir = "web"\n[[component]]\ndir = "web/"\n')
    with pytest.raises(ConfigError, match=r"hooks\.after_start: "):
        project.configure(tables='[hooks]\nafter_start = "true"\n')
    with pytest.raises(ConfigError, match=r"component\[1\]\.dir: .* got \"web app\""):
        project.configure(tables='[[component]]\ndir = "web app"\n')


def test_a_build_node_is_sent_the_hooks_around_its_agent_a_components_under_a_gates_name(project: Project) -> None:
    project.agent("coder", [])
    config = project.configure(
        gates=[("tests", "true")],
        nodes={"gates": "node"},
        tables='[hooks]\nafter_create = "make deps"\nafter_run = "make clean"\nbefore_remove = "make down"\n'
        '[[component]]\ndir = "apps/web"\nsetup = "npm ci"\n',
    )
    sent = {point: [(g.name, g.command) for g in steps] for point, steps in config.node_hooks().items()}
    assert sent == {
        "after_create": [("after_create", "make deps"), ("setup apps-web", "cd -- apps/web && npm ci")],
        "before_run": [],
        "after_run": [("after_run", "make clean")],
    }  # before_remove is the server's: a node's checkout is its own to keep
    assert [(g.name, g.command) for g in config.node_gates()] == [("tests", "true")]
