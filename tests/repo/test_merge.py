"""Squash merges in the merge workspace and advancing the base branch, on real git repositories."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from gangline.core.errors import ConfigError
from gangline.repo.squash import AdvanceStatus, SquashStatus, advance_base, inspect_resolution, prepare_squash
from gangline.repo.worktrees import Worktrees
from kits.helpers import commit_file, git, new_repo

MESSAGE = "Add login (#1)"


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return new_repo(tmp_path / "repo", ("README", "hello\n", "initial"), ("notes.txt", "notes\n", "notes"))


@pytest.fixture
def trees(repo: Path, tmp_path: Path) -> Worktrees:
    return Worktrees(repo, tmp_path / "worktrees", tmp_path / "merge", "main")


async def feature(trees: Worktrees, item_id: int, slug: str, files: dict[str, str]) -> Path:
    """An item branch with one commit per file written."""
    path = await trees.ensure(item_id, slug)
    for name, text in files.items():
        commit_file(path, name, text, f"write {name}")
    return path


async def test_a_squash_is_one_commit_on_the_base_tip_and_leaves_the_base_alone(trees: Worktrees, repo: Path) -> None:
    await feature(trees, 1, "login", {"login.py": "print('hi')\n", "README": "hello, login\n"})
    workspace = await trees.ensure_merge_workspace()
    base_tip = git(repo, "rev-parse", "main")
    squash = await prepare_squash(workspace, "main", "gangline/1-login", MESSAGE)
    assert squash.status is SquashStatus.READY
    assert (squash.base_tip, squash.files_changed, squash.conflicts) == (base_tip, 2, ())
    assert squash.commit is not None
    assert git(workspace, "rev-parse", f"{squash.commit}^@") == base_tip
    assert (
        git(workspace, "log", "-1", "--format=%an <%ae>|%B", squash.commit)
        == f"gangline <gangline@localhost>|{MESSAGE}"
    )
    assert git(repo, "rev-parse", "main") == base_tip


async def test_a_squash_works_in_a_repository_without_an_identity(trees: Worktrees, repo: Path, tmp_path: Path) -> None:
    await feature(trees, 2, "anon", {"a.txt": "a\n"})
    git(repo, "config", "--unset", "user.name")
    git(repo, "config", "--unset", "user.email")
    home = tmp_path / "home"
    home.mkdir()
    env = {"PATH": os.environ["PATH"], "HOME": str(home), "GIT_CONFIG_NOSYSTEM": "1", "EMAIL": ""}
    workspace = await trees.ensure_merge_workspace()
    squash = await prepare_squash(workspace, "main", "gangline/2-anon", MESSAGE, env=env)
    assert squash.status is SquashStatus.READY
    assert git(workspace, "log", "-1", "--format=%cn <%ce>", "HEAD") == "gangline <gangline@localhost>"


async def test_a_conflicting_squash_is_left_in_the_workspace_for_a_mergemaster(trees: Worktrees, repo: Path) -> None:
    await feature(trees, 3, "clash", {"README": "hello from the branch\n", "other.txt": "fine\n"})
    base_tip = commit_file(repo, "README", "hello from main\n")
    workspace = await trees.ensure_merge_workspace()
    squash = await prepare_squash(workspace, "main", "gangline/3-clash", MESSAGE)
    assert squash.status is SquashStatus.CONFLICT
    assert squash.conflicts == ("README",)
    assert (squash.commit, squash.base_tip) == (None, base_tip)
    assert "<<<<<<<" in (workspace / "README").read_text()
    assert git(repo, "rev-parse", "main") == base_tip


async def test_a_branch_with_nothing_new_squashes_to_empty(trees: Worktrees, repo: Path) -> None:
    await trees.ensure(4, "nothing")
    path = await feature(trees, 5, "already", {"same.txt": "same\n"})
    git(repo, "cherry-pick", git(path, "rev-parse", "HEAD"))
    workspace = await trees.ensure_merge_workspace()
    for branch in ("gangline/4-nothing", "gangline/5-already"):
        squash = await prepare_squash(workspace, "main", branch, MESSAGE)
        assert (squash.status, squash.commit, squash.files_changed) == (SquashStatus.EMPTY, None, 0)


async def test_a_new_squash_discards_whatever_the_workspace_held(trees: Worktrees, repo: Path) -> None:
    await feature(trees, 6, "clash", {"README": "branch\n"})
    await feature(trees, 7, "clean", {"clean.txt": "clean\n"})
    commit_file(repo, "README", "main\n")
    workspace = await trees.ensure_merge_workspace()
    assert (await prepare_squash(workspace, "main", "gangline/6-clash", MESSAGE)).status is SquashStatus.CONFLICT
    (workspace / "scratch.txt").write_text("left by an agent\n")
    squash = await prepare_squash(workspace, "main", "gangline/7-clean", MESSAGE)
    assert squash.status is SquashStatus.READY
    assert squash.files_changed == 1
    assert not (workspace / "scratch.txt").exists()
    assert (workspace / "README").read_text() == "main\n"


async def test_the_repository_itself_is_never_used_as_a_merge_workspace(repo: Path) -> None:
    (repo / "precious.txt").write_text("uncommitted\n")
    with pytest.raises(ConfigError, match="not a linked git worktree"):
        await prepare_squash(repo, "main", "main", MESSAGE)
    (repo / "sub").mkdir()
    with pytest.raises(ConfigError):
        await prepare_squash(repo / "sub", "main", "main", MESSAGE)
    assert (repo / "precious.txt").read_text() == "uncommitted\n"


async def conflicted(trees: Worktrees, repo: Path) -> tuple[Path, str]:
    await feature(trees, 8, "clash", {"README": "hello from the branch\n", "extra.txt": "extra\n"})
    base_tip = commit_file(repo, "README", "hello from main\n")
    workspace = await trees.ensure_merge_workspace()
    assert (await prepare_squash(workspace, "main", "gangline/8-clash", MESSAGE)).status is SquashStatus.CONFLICT
    return workspace, base_tip


async def test_a_resolved_conflict_becomes_one_commit_on_the_base_tip(trees: Worktrees, repo: Path) -> None:
    workspace, base_tip = await conflicted(trees, repo)
    (workspace / "README").write_text("hello from main and the branch\n")
    git(workspace, "add", "README")
    squash = await inspect_resolution(workspace, base_tip, MESSAGE)
    assert squash.status is SquashStatus.READY, squash.detail
    assert squash.files_changed == 2
    assert squash.commit is not None
    assert git(workspace, "rev-parse", f"{squash.commit}^@") == base_tip
    assert git(workspace, "log", "-1", "--format=%B", squash.commit) == MESSAGE
    assert git(workspace, "show", f"{squash.commit}:README") == "hello from main and the branch"


async def test_an_unresolved_conflict_stays_a_conflict(trees: Worktrees, repo: Path) -> None:
    workspace, base_tip = await conflicted(trees, repo)
    squash = await inspect_resolution(workspace, base_tip, MESSAGE)
    assert (squash.status, squash.conflicts) == (SquashStatus.CONFLICT, ("README",))
    git(workspace, "add", "README")  # marked resolved, markers still in the file
    squash = await inspect_resolution(workspace, base_tip, MESSAGE)
    assert (squash.status, squash.conflicts) == (SquashStatus.CONFLICT, ("README",))
    assert "conflict markers" in squash.detail


async def test_several_commits_by_a_mergemaster_are_squashed_into_one(trees: Worktrees, repo: Path) -> None:
    workspace, base_tip = await conflicted(trees, repo)
    commit_file(workspace, "README", "resolved\n", "resolve")
    commit_file(workspace, "fix.txt", "fix\n", "fix the tests")
    squash = await inspect_resolution(workspace, base_tip, MESSAGE)
    assert squash.status is SquashStatus.READY
    assert squash.files_changed == 3
    assert git(workspace, "rev-list", "--count", f"{base_tip}..HEAD") == "1"
    assert git(workspace, "log", "-1", "--format=%B", "HEAD") == MESSAGE


async def test_an_untouched_ready_squash_is_kept_as_it_is(trees: Worktrees, repo: Path) -> None:
    await feature(trees, 9, "ok", {"ok.txt": "ok\n"})
    workspace = await trees.ensure_merge_workspace()
    ready = await prepare_squash(workspace, "main", "gangline/9-ok", MESSAGE)
    again = await inspect_resolution(workspace, ready.base_tip, MESSAGE)
    assert (again.status, again.commit, again.files_changed) == (SquashStatus.READY, ready.commit, 1)


async def test_a_resolution_that_drops_every_change_is_empty(trees: Worktrees, repo: Path) -> None:
    workspace, base_tip = await conflicted(trees, repo)
    git(workspace, "reset", "-q", "--hard", base_tip)
    squash = await inspect_resolution(workspace, base_tip, MESSAGE)
    assert squash.status is SquashStatus.EMPTY


async def ready_squash(trees: Worktrees, files: dict[str, str]) -> tuple[str, str]:
    """(new commit, old base tip) for a squash of a fresh item that writes ``files``."""
    await feature(trees, 10, "ship", files)
    workspace = await trees.ensure_merge_workspace()
    squash = await prepare_squash(workspace, "main", "gangline/10-ship", MESSAGE)
    assert squash.status is SquashStatus.READY and squash.commit is not None
    return squash.commit, squash.base_tip


async def test_advance_moves_a_base_branch_nobody_has_checked_out(trees: Worktrees, repo: Path) -> None:
    git(repo, "checkout", "-q", "-b", "elsewhere")
    new, old = await ready_squash(trees, {"ship.txt": "shipped\n"})
    advance = await advance_base(repo, "main", new, old)
    assert advance.status is AdvanceStatus.ADVANCED, advance.detail
    assert git(repo, "rev-parse", "main") == new
    assert "gangline merge" in git(repo, "reflog", "-1", "main")


async def test_advance_refuses_when_the_base_branch_moved(trees: Worktrees, repo: Path) -> None:
    git(repo, "checkout", "-q", "-b", "elsewhere")
    new, old = await ready_squash(trees, {"ship.txt": "shipped\n"})
    moved = commit_file(repo, "other.txt", "someone else\n")
    git(repo, "update-ref", "refs/heads/main", moved)
    advance = await advance_base(repo, "main", new, old)
    assert advance.status is AdvanceStatus.BASE_MOVED
    assert git(repo, "rev-parse", "main") == moved


async def test_advance_fast_forwards_a_clean_checkout_of_the_base(trees: Worktrees, repo: Path) -> None:
    new, old = await ready_squash(trees, {"ship.txt": "shipped\n", "README": "hello, shipped\n"})
    advance = await advance_base(repo, "main", new, old)
    assert advance.status is AdvanceStatus.ADVANCED, advance.detail
    assert git(repo, "rev-parse", "HEAD") == new
    assert (repo / "ship.txt").read_text() == "shipped\n"
    assert (repo / "README").read_text() == "hello, shipped\n"
    assert git(repo, "status", "--porcelain") == ""


async def test_advance_refuses_when_the_person_has_committed_on_the_base(trees: Worktrees, repo: Path) -> None:
    new, old = await ready_squash(trees, {"ship.txt": "shipped\n"})
    mine = commit_file(repo, "mine.txt", "my commit\n")
    advance = await advance_base(repo, "main", new, old)
    assert advance.status is AdvanceStatus.BASE_MOVED
    assert git(repo, "rev-parse", "HEAD") == mine


async def test_advance_changes_nothing_when_a_local_change_is_in_the_way(trees: Worktrees, repo: Path) -> None:
    new, old = await ready_squash(trees, {"README": "hello, shipped\n"})
    (repo / "README").write_text("my unsaved edit\n")
    advance = await advance_base(repo, "main", new, old)
    assert advance.status is AdvanceStatus.CHECKED_OUT_BLOCKED
    assert "README" in advance.detail and str(repo) in advance.detail
    assert git(repo, "rev-parse", "main") == old
    assert (repo / "README").read_text() == "my unsaved edit\n"


async def test_advance_changes_nothing_when_an_untracked_file_is_in_the_way(trees: Worktrees, repo: Path) -> None:
    new, old = await ready_squash(trees, {"ship.txt": "shipped\n"})
    (repo / "ship.txt").write_text("my own file\n")
    advance = await advance_base(repo, "main", new, old)
    assert advance.status is AdvanceStatus.CHECKED_OUT_BLOCKED
    assert "ship.txt" in advance.detail
    assert git(repo, "rev-parse", "main") == old
    assert (repo / "ship.txt").read_text() == "my own file\n"


async def test_advance_keeps_unrelated_local_changes(trees: Worktrees, repo: Path) -> None:
    new, old = await ready_squash(trees, {"ship.txt": "shipped\n"})
    (repo / "notes.txt").write_text("notes, edited\n")
    (repo / "scratch.txt").write_text("scratch\n")
    git(repo, "add", "scratch.txt")
    advance = await advance_base(repo, "main", new, old)
    assert advance.status is AdvanceStatus.ADVANCED, advance.detail
    assert git(repo, "rev-parse", "HEAD") == new
    assert (repo / "ship.txt").read_text() == "shipped\n"
    assert (repo / "notes.txt").read_text() == "notes, edited\n"
    assert git(repo, "diff", "--name-only") == "notes.txt"
    assert git(repo, "diff", "--cached", "--name-only") == "scratch.txt"


async def test_advance_waits_for_a_rebase_of_the_base_branch(trees: Worktrees, repo: Path) -> None:
    new, old = await ready_squash(trees, {"ship.txt": "shipped\n"})
    stopped = subprocess.run(["git", "rebase", "--exec", "false", "HEAD~1"], cwd=repo, capture_output=True)
    assert stopped.returncode != 0  # the rebase stops half way, HEAD detached, main still at old
    advance = await advance_base(repo, "main", new, old)
    assert advance.status is AdvanceStatus.CHECKED_OUT_BLOCKED
    assert "being rebased" in advance.detail
    assert git(repo, "rev-parse", "main") == old


async def test_advance_refuses_a_commit_that_does_not_descend_from_the_base(trees: Worktrees, repo: Path) -> None:
    new, old = await ready_squash(trees, {"ship.txt": "shipped\n"})
    with pytest.raises(ValueError, match="only fast-forwards"):
        await advance_base(repo, "main", old, new)


async def test_worktrees_inside_the_repository_merge_and_prune_cleanly(repo: Path) -> None:
    state = repo / ".gangline"
    trees = Worktrees(repo, state / "worktrees", state / "merge", "main")
    path = await feature(trees, 11, "inside", {"inside.txt": "inside\n"})
    tip = git(path, "rev-parse", "HEAD")
    squash = await prepare_squash(await trees.ensure_merge_workspace(), "main", "gangline/11-inside", MESSAGE)
    assert squash.commit is not None
    advance = await advance_base(repo, "main", squash.commit, squash.base_tip)
    assert advance.status is AdvanceStatus.ADVANCED, advance.detail
    assert (repo / "inside.txt").read_text() == "inside\n"
    pruned = await trees.prune(11, "inside", merged_tip=tip)
    assert pruned.pruned, pruned.reason
    assert not path.exists()
