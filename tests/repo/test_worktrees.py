"""Item worktrees and branches on a real git repository: naming, reuse, recovery and safe pruning."""

from __future__ import annotations

import asyncio
import gc
import os
import pickle
import subprocess
import threading
import warnings
from pathlib import Path

import pytest

from gangline.core.errors import ConfigError, GitError
from gangline.repo import git as gitrun
from gangline.repo.worktrees import Worktrees, branch_name, parse_worktree_list, worktree_path
from kits.helpers import commit_file, git, new_repo


def alive(pid: int) -> bool:
    try:
        return b") Z" not in Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return False


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return new_repo(tmp_path / "repo", (".gitignore", "*.log\n", "ignore logs"), ("README", "hello\n", "initial"))


@pytest.fixture
def trees(repo: Path, tmp_path: Path) -> Worktrees:
    return Worktrees(repo, tmp_path / "worktrees", tmp_path / "merge", "main")


def test_branch_and_worktree_are_named_after_the_item(tmp_path: Path) -> None:
    assert branch_name(42, "add-login") == "gangline/42-add-login"
    assert worktree_path(tmp_path, 42, "add-login") == tmp_path.resolve() / "42-add-login"


@pytest.mark.parametrize(
    "slug",
    ["../x", "/etc", "a/../../b", "a\0b", "a\nb", "x\n", "", "..", "A", "a--b", "-a", "a-", "a b", "a" * 49],
)
def test_a_hostile_slug_is_refused_naming_the_item(tmp_path: Path, slug: str) -> None:
    with pytest.raises(ConfigError) as raised:
        worktree_path(tmp_path, 7, slug)
    assert raised.value.field == "item 7: slug"
    with pytest.raises(ConfigError):
        branch_name(7, slug)


@pytest.mark.parametrize("item_id", [0, -1, True, "1", "../1", 1.5])
def test_an_id_that_is_not_a_positive_integer_is_refused(tmp_path: Path, item_id: object) -> None:
    with pytest.raises(ConfigError, match="positive integer"):
        worktree_path(tmp_path, item_id, "ok")  # type: ignore[arg-type]


@pytest.mark.parametrize("base", ["", "-x", "a b", "a..b", "a\nb", "a~1", "x.lock", "/main", "main/"])
def test_a_base_branch_that_git_would_refuse_is_refused(tmp_path: Path, base: str) -> None:
    with pytest.raises(ConfigError, match="base_branch"):
        Worktrees(tmp_path, tmp_path / "w", tmp_path / "m", base)


def test_a_symlink_planted_at_the_worktree_path_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "worktrees"
    root.mkdir()
    (root / "3-evil").symlink_to(tmp_path)
    with pytest.raises(ConfigError, match="outside"):
        worktree_path(root, 3, "evil")


def test_a_worktree_path_holding_a_newline_is_parsed_whole() -> None:
    porcelain = "worktree /a\nb\nHEAD 1234\nbranch refs/heads/main\n\nworktree /c\nHEAD 5678\ndetached\n"
    entries = parse_worktree_list(porcelain)
    assert [(e.path, e.branch) for e in entries] == [(Path("/a\nb"), "refs/heads/main"), (Path("/c"), None)]


async def test_ensure_creates_the_branch_and_worktree_then_reuses_them(trees: Worktrees, repo: Path) -> None:
    path = await trees.ensure(1, "first")
    assert git(path, "symbolic-ref", "HEAD") == "refs/heads/gangline/1-first"
    commit_file(path, "work.txt", "done\n")
    assert await trees.ensure(1, "first") == path
    assert await trees.commits_ahead(1, "first") == 1
    assert (path / "work.txt").read_text() == "done\n"
    assert git(repo, "rev-parse", "main") == git(path, "rev-parse", "HEAD~1")


async def test_ensure_after_the_directory_was_deleted_keeps_the_branch_commits(trees: Worktrees) -> None:
    path = await trees.ensure(2, "deleted")
    tip = commit_file(path, "work.txt", "kept\n")
    subprocess.run(["rm", "-rf", str(path)], check=True)
    assert await trees.ensure(2, "deleted") == path
    assert (path / "work.txt").read_text() == "kept\n"
    assert await trees.branch_tip(2, "deleted") == tip


async def test_ensure_removes_a_stale_index_lock_but_not_one_a_process_holds(trees: Worktrees) -> None:
    path = await trees.ensure(3, "locked")
    lock = Path(git(path, "rev-parse", "--absolute-git-dir")) / "index.lock"
    with lock.open("w"):
        await trees.ensure(3, "locked")
        assert lock.exists()  # held open, as by a git still writing it
    await trees.ensure(3, "locked")
    assert not lock.exists()


async def test_dirty_paths_lists_changes_and_untracked_files_but_not_ignored_ones(trees: Worktrees) -> None:
    path = await trees.ensure(4, "dirty")
    (path / "README").write_text("changed\n")
    (path / "new dir").mkdir()
    (path / "new dir" / "new.txt").write_text("x\n")
    (path / "debug.log").write_text("ignored\n")
    assert sorted(await trees.dirty_paths(path)) == ["README", "new dir/new.txt"]


async def test_diff_against_base_shows_the_branch_changes_cut_to_size(trees: Worktrees) -> None:
    path = await trees.ensure(5, "diff")
    commit_file(path, "big.txt", "line of text\n" * 1000)
    assert "+line of text" in await trees.diff_against_base(5, "diff")
    cut = await trees.diff_against_base(5, "diff", max_bytes=500)
    assert len(cut.encode()) < 600
    assert "diff truncated: 500 of" in cut


async def test_branch_tip_is_none_until_the_branch_exists(trees: Worktrees) -> None:
    assert await trees.branch_tip(6, "later") is None
    path = await trees.ensure(6, "later")
    assert await trees.branch_tip(6, "later") == git(path, "rev-parse", "HEAD")


async def test_prune_keeps_a_worktree_with_uncommitted_changes(trees: Worktrees) -> None:
    path = await trees.ensure(7, "wip")
    (path / "notes.txt").write_text("not committed\n")
    result = await trees.prune(7, "wip", merged_tip=None)
    assert not result.pruned
    assert "notes.txt" in result.reason
    assert (path / "notes.txt").exists()


async def test_prune_keeps_a_branch_with_unmerged_commits(trees: Worktrees) -> None:
    path = await trees.ensure(8, "unmerged")
    commit_file(path, "work.txt", "work\n")
    result = await trees.prune(8, "unmerged", merged_tip=None)
    assert not result.pruned
    assert "1 commit(s)" in result.reason
    assert path.is_dir()
    assert await trees.branch_tip(8, "unmerged") is not None


async def test_prune_removes_worktree_and_branch_once_squash_merged(trees: Worktrees, repo: Path) -> None:
    path = await trees.ensure(9, "merged")
    commit_file(path, "one.txt", "1\n")
    tip = commit_file(path, "two.txt", "2\n")
    git(repo, "merge", "--squash", "-q", "gangline/9-merged")
    git(repo, "commit", "-q", "-m", "squash")
    result = await trees.prune(9, "merged", merged_tip=tip)
    assert result.pruned, result.reason
    assert not path.exists()
    assert await trees.branch_tip(9, "merged") is None
    assert (await trees.prune(9, "merged", merged_tip=tip)).pruned  # nothing left: still fine


async def test_prune_keeps_commits_added_after_the_merged_tip(trees: Worktrees) -> None:
    path = await trees.ensure(10, "more")
    merged = commit_file(path, "one.txt", "1\n")
    commit_file(path, "two.txt", "2\n")
    assert not (await trees.prune(10, "more", merged_tip=merged)).pruned


async def test_prune_removes_an_untouched_worktree(trees: Worktrees) -> None:
    path = await trees.ensure(11, "idle")
    assert (await trees.prune(11, "idle", merged_tip=None)).pruned
    assert not path.exists()


async def test_prune_keeps_commits_made_on_a_detached_head(trees: Worktrees) -> None:
    path = await trees.ensure(12, "detached")
    git(path, "checkout", "-q", "--detach")
    commit_file(path, "orphan.txt", "lost if pruned\n")
    result = await trees.prune(12, "detached", merged_tip=None)
    assert not result.pruned
    assert "detached HEAD" in result.reason


async def test_prune_leaves_alone_a_directory_that_is_not_a_worktree(trees: Worktrees) -> None:
    stray = worktree_path(trees.root, 13, "stray")
    stray.mkdir(parents=True)
    (stray / "precious.txt").write_text("mine\n")
    assert not (await trees.prune(13, "stray", merged_tip=None)).pruned
    assert (stray / "precious.txt").exists()


async def test_the_merge_workspace_is_a_detached_worktree_made_once(trees: Worktrees, repo: Path) -> None:
    workspace = await trees.ensure_merge_workspace()
    assert git(workspace, "rev-parse", "HEAD") == git(repo, "rev-parse", "main")
    assert subprocess.run(["git", "symbolic-ref", "-q", "HEAD"], cwd=workspace).returncode != 0
    (workspace / "leftover.txt").write_text("x\n")
    assert await trees.ensure_merge_workspace() == workspace
    assert (workspace / "leftover.txt").exists()


async def test_a_failing_git_command_raises_an_error_naming_it(repo: Path, tmp_path: Path) -> None:
    trees = Worktrees(repo, tmp_path / "worktrees", tmp_path / "merge", "no-such-base")
    with pytest.raises(GitError) as raised:
        await trees.ensure(1, "orphan")
    err = raised.value
    assert err.args[0] == "branch" and err.returncode == 128 and err.exit_code == 6
    assert str(err).startswith("git branch --no-track gangline/1-orphan refs/heads/no-such-base in ")
    assert "not a valid object name" in str(err)
    assert str(pickle.loads(pickle.dumps(err))) == str(err)


async def test_a_git_command_that_hangs_is_killed_with_its_children(repo: Path, tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    slow = f"alias.slow=!sleep 1000 & echo $! > {pid_file}; wait"
    with pytest.raises(GitError, match="timed out") as raised:
        await gitrun.git(repo, "-c", slow, "slow", timeout_s=0.5)
    assert raised.value.returncode is None
    pid = int(pid_file.read_text())
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5
    while alive(pid):
        assert loop.time() < deadline, "the hung command's child outlived the timeout"
        await asyncio.sleep(0.01)


async def test_cancelling_a_git_command_kills_it_with_its_children(repo: Path, tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    slow = f"alias.slow=!sleep 1000 & echo $! > {pid_file}; wait"
    task = asyncio.create_task(gitrun.git(repo, "-c", slow, "slow"))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5
    while not pid_file.exists() or not pid_file.read_text().endswith("\n"):
        assert loop.time() < deadline, "the command never started"
        await asyncio.sleep(0.01)
    task.cancel()
    async with asyncio.timeout(10):  # a cancelled git that does not end is a failure to report, not a hang
        await asyncio.gather(task, return_exceptions=True)
    assert task.cancelled()
    pid = int(pid_file.read_text())
    while alive(pid):
        assert loop.time() < deadline + 5, "the cancelled command's child lived on"
        await asyncio.sleep(0.01)


def test_a_git_command_cancelled_again_while_it_is_reaped_is_reaped_before_its_loop_closes(
    repo: Path, tmp_path: Path
) -> None:
    """A task group aborting, then the event loop closing, each cancel the same call: git's exit must still be
    seen while the loop runs, or its process object warns that it is "still running" at some later test."""
    started = tmp_path / "started"
    os.mkfifo(started)
    slow = f"alias.slow=!echo go > {started}; exec sleep 1000"

    async def cancelled_over_and_over() -> None:
        task = asyncio.create_task(gitrun.git(repo, "-c", slow, "slow"))
        async with asyncio.timeout(30):
            await asyncio.to_thread(started.read_text)  # git's shell has started
        for _ in range(50):  # through wait_for's own cancelling, into the reap, and on
            task.cancel()
            await asyncio.sleep(0)
        async with asyncio.timeout(30):
            await asyncio.gather(task, return_exceptions=True)
        assert task.cancelled()

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with asyncio.Runner() as runner:
            runner.run(cancelled_over_and_over())
        for watcher in [t for t in threading.enumerate() if t.name.startswith("waitpid-")]:
            watcher.join(30)
        gc.collect()
    assert [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)] == []


async def test_git_never_waits_on_an_editor_or_a_terminal(repo: Path) -> None:
    result = await gitrun.git(repo, "var", "GIT_EDITOR")
    assert result.stdout.strip() == "true"
    assert (await gitrun.git(repo, "rev-parse", "--verify", "--quiet", "nope", check=False)).returncode == 1
