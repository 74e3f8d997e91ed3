"""``gangline init`` writes a loadable ``.gangline/`` into a real git repository, once."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from gangline.core.errors import ConfigError
from gangline.core.guide import GUIDE
from gangline.core.profiles import QaMode, Role
from gangline.project.config import load_project, load_project_text
from gangline.project.paths import ProjectPaths
from gangline.project.scaffold import GITIGNORE, init_project, refresh_gitignore
from gangline.project.template import GATE_EXAMPLE, MERGEMASTER_EXAMPLE, QA_EXAMPLE, Choices, project_toml


def git(cwd: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True)
    return done.stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = tmp_path / "repo"
    path.mkdir()
    git(path, "init", "-q", "-b", "trunk")
    return path.resolve()


def test_init_writes_settings_ignore_rules_and_guide_on_the_current_branch(repo: Path) -> None:
    result = init_project(repo, {})
    paths = ProjectPaths(repo)
    assert result.root == repo
    assert result.base_branch == "trunk"
    assert result.created == [paths.state_dir / ".gitignore", paths.guide_file, paths.config_file]
    assert paths.guide_file.read_text() == GUIDE
    config = load_project(paths, {})
    assert config.base_branch == "trunk"
    coder = config.profiles_for(Role.CODER)[0]
    assert (coder.model, coder.max_turns, coder.max_budget_usd) == ("sonnet", 50, 5.0)
    assert config.qa_mode is QaMode.SERVER


def test_runtime_state_is_ignored_by_git_but_settings_and_guide_are_not(repo: Path) -> None:
    init_project(repo, {})
    runtime = ["state.db", "state.db-wal", "runs/r.jsonl", "worktrees/1-x/a", "merge/m", "gates/g.log", "x.lock"]
    for name in runtime:
        assert git(repo, "check-ignore", f".gangline/{name}") == f".gangline/{name}"
    git(repo, "add", ".gangline")
    assert git(repo, "diff", "--cached", "--name-only").splitlines() == [
        ".gangline/.gitignore",
        ".gangline/guide.md",
        ".gangline/project.toml",
    ]


def test_init_from_a_subdirectory_writes_at_the_top_of_the_repository(repo: Path) -> None:
    (repo / "src").mkdir()
    result = init_project(repo / "src", {})
    assert result.root == repo
    assert (repo / ".gangline" / "project.toml").is_file()


def test_a_second_init_is_refused_and_changes_nothing(repo: Path) -> None:
    init_project(repo, {})
    config = ProjectPaths(repo).config_file
    config.write_text(config.read_text() + "# my edit\n")
    with pytest.raises(ConfigError, match=r"already initialised; edit .*project\.toml instead"):
        init_project(repo, {})
    assert config.read_text().endswith("# my edit\n")


def test_init_keeps_an_existing_guide(repo: Path) -> None:
    paths = ProjectPaths(repo)
    paths.state_dir.mkdir()
    paths.guide_file.write_text("our own guide\n")
    result = init_project(repo, {})
    assert paths.guide_file not in result.created
    assert paths.guide_file.read_text() == "our own guide\n"
    assert paths.config_file in result.created


def test_init_outside_a_git_repository_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not inside a git repository"):
        init_project(tmp_path, {})
    assert not (tmp_path / ".gangline").exists()


def test_init_in_a_bare_repository_is_refused(tmp_path: Path) -> None:
    git(tmp_path, "init", "-q", "--bare", "bare.git")
    with pytest.raises(ConfigError, match="bare git repository"):
        init_project(tmp_path / "bare.git", {})


def test_a_detached_head_falls_back_to_main(repo: Path) -> None:
    git(repo, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "--allow-empty", "-m", "start")
    git(repo, "checkout", "-q", "--detach")
    assert init_project(repo, {}).base_branch == "main"


def test_the_commented_examples_load_once_uncommented() -> None:
    text = project_toml(Choices("main")).replace('qa_mode = "server"', 'qa_mode = "agent"')
    config = load_project_text(text + GATE_EXAMPLE + QA_EXAMPLE + MERGEMASTER_EXAMPLE, "project.toml", {})
    assert [g.name for g in config.gates] == ["tests"]
    assert [a.role for a in config.agents] == [Role.CODER, Role.QA, Role.MERGEMASTER]
    for block in (GATE_EXAMPLE, QA_EXAMPLE, MERGEMASTER_EXAMPLE):
        assert "".join(f"# {line}\n" for line in block.splitlines()) in project_toml(Choices("main"))


def test_every_setting_is_written_out_with_its_default() -> None:
    text = project_toml(Choices("main"))
    for key in (
        "base_branch",
        "max_retries",
        "qa_mode",
        "inactivity_timeout_s",
        "archive_after_s",
        "[concurrency]",
        "[rate_limit]",
        "default_wait_s",
        "max_wait_s",
        "margin_s",
    ):
        assert f"\n{key}" in text


def test_the_ignore_rules_cover_everything_gangline_writes_but_the_settings_and_the_guide(repo: Path) -> None:
    init_project(repo, {})
    state = ProjectPaths(repo).state_dir
    for name in ("state.db", "state.db-wal", "server.json", "secret", "runs/1-coder-1.jsonl", "hooks/pre-push",
                 "worktrees/1-x/a.txt", "homes/coder/.claude.json", "something-new/later.txt"):  # fmt: skip
        (state / name).parent.mkdir(parents=True, exist_ok=True)
        (state / name).write_text("x")
    shown = git(repo, "status", "--porcelain", "--untracked-files=all").splitlines()
    assert sorted(shown) == ["?? .gangline/.gitignore", "?? .gangline/guide.md", "?? .gangline/project.toml"]


def test_an_earlier_gangline_s_ignore_rules_are_replaced_and_a_person_s_own_are_kept(repo: Path) -> None:
    paths = ProjectPaths(repo)
    paths.state_dir.mkdir()
    ignore = paths.state_dir / ".gitignore"
    ignore.write_text(
        "# gangline's runtime state: local to this machine, never committed.\n"
        "# project.toml and guide.md are meant to be committed.\n"
        "state.db*\nruns/\nworktrees/\nmerge/\ngates/\n*.lock\n"
    )
    assert refresh_gitignore(paths) is True
    assert ignore.read_text() == GITIGNORE
    ignore.write_text("state.db\n# mine\n")
    assert refresh_gitignore(paths) is False
    assert ignore.read_text() == "state.db\n# mine\n"
    ignore.unlink()
    assert refresh_gitignore(paths) is True and ignore.read_text() == GITIGNORE
