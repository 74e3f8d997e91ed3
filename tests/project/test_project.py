"""``.gangline/project.toml`` loads into one typed object, and every mistake names its key and what was found."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from pydantic import ValidationError

from gangline.core.errors import ConfigError
from gangline.core.profiles import AgentProfile, QaMode, Role
from gangline.project.config import GateSpec, ProjectConfig, load_project, load_project_text
from gangline.project.paths import ProjectPaths, find_root

WHERE = ".gangline/project.toml"
CODER = '[[agent]]\nname = "coder"\n'


def load(text: str, env: dict[str, str] | None = None) -> object:
    return load_project_text(text, WHERE, env or {})


def error_of(text: str, env: dict[str, str] | None = None) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        load(text, env)
    return caught.value


def test_a_single_coder_profile_is_enough_and_everything_else_has_defaults() -> None:
    config = load_project_text(CODER, WHERE, {})
    assert config.base_branch == "main"
    assert config.gates == ()
    assert config.max_retries == 3
    assert (config.concurrency.coder, config.concurrency.qa, config.concurrency.mergemaster) == (2, 1, 1)
    assert config.qa_mode is QaMode.SERVER
    assert config.inactivity_timeout_s == 300
    assert config.archive_after_s == 86400
    assert (config.rate_limit.default_wait_s, config.rate_limit.max_wait_s, config.rate_limit.margin_s) == (
        300,
        21600,
        5,
    )
    assert config.agents[0].role is Role.CODER


def test_gates_and_agents_come_from_arrays_of_tables() -> None:
    text = (
        'base_branch = "release/2.x"\nqa_mode = "agent"\n'
        '[[gate]]\nname = "unit tests"\ncommand = "pytest -q"\ntimeout_s = 90\n'
        '[[gate]]\nname = "lint"\ncommand = "ruff check ."\n'
        + CODER
        + '[[agent]]\nname = "reviewer"\nrole = "qa"\nmodel = "opus"\n'
    )
    config = load_project_text(text, WHERE, {})
    assert config.base_branch == "release/2.x"
    assert [(g.name, g.command, g.timeout_s) for g in config.gates] == [
        ("unit tests", "pytest -q", 90),
        ("lint", "ruff check .", 600),
    ]
    assert config.profile("reviewer") is not None
    assert config.profile("nobody") is None
    assert [p.name for p in config.profiles_for(Role.QA)] == ["reviewer"]
    assert config.profiles_for(Role.MERGEMASTER) == []


def test_code_can_build_a_config_with_python_names_and_the_same_checks() -> None:
    config = ProjectConfig(agents=(AgentProfile(name="c"),), gates=(GateSpec(name="t", command="true"),))
    assert config.gates[0].timeout_s == 600
    with pytest.raises(ValidationError, match="role"):
        ProjectConfig(agents=(AgentProfile(name="q", role=Role.QA),))


@pytest.mark.parametrize(
    ("text", "field", "message"),
    [
        (
            CODER + '[[agent]]\nname = "b"\nmax_turns = -1\n',
            "agent[2].max_turns",
            "expected an integer greater than 0, got -1",
        ),
        (
            CODER + '[[gate]]\nname = "a"\ncommand = "true"\n[[gate]]\nname = "b"\ncommand = "true"\ntimeout_s = 0\n',
            "gate[2].timeout_s",
            "expected a number greater than 0, got 0",
        ),
        (CODER + "[concurrency]\ncoder = 0\n", "concurrency.coder", "expected an integer of at least 1, got 0"),
        (CODER + "[concurrency]\nqa = 65\n", "concurrency.qa", "expected an integer of at most 64, got 65"),
        (CODER + '[rate_limit]\nmargin_s = "soon"\n', "rate_limit.margin_s", 'expected a number, got "soon"'),
        ("max_retries = 2.5\n" + CODER, "max_retries", "expected an integer, got 2.5"),
        (CODER + 'modle = "opus"\n', "agent[1].modle", "unknown key; expected one of: name, role, cli, command, model"),
        (
            "agents = []\n" + CODER,
            "agents",
            "unknown key; expected one of: base_branch, gate, hooks, component, max_retries",
        ),
        ('[agent]\nname = "coder"\n', "agent", "expected [[agent]] tables, got a table"),
        (CODER + 'role = "boss"\n', "agent[1].role", "one of 'coder', 'qa', 'mergemaster' or 'chat', got \"boss\""),
        ('qa_mode = "robot"\n' + CODER, "qa_mode", "expected one of 'server', 'agent' or 'human', got \"robot\""),
        (
            'database_url = "mysql://db/gangline"\n' + CODER,
            "database_url",
            "expected sqlite:///<path> or postgresql+psycopg://[user@]host[:port]/database, got 'mysql://db/gangline'",
        ),
        (
            'database_url = "postgresql+psycopg://ann:hunter2@db/gangline"\n' + CODER,
            "database_url",
            "expected no password in project.toml (it is committed)",
        ),
        (CODER + '[[gate]]\nname = "x"\n', "gate[1].command", "is required but missing"),
        (CODER + '[[gate]]\nname = "-x"\ncommand = "true"\n', "gate[1].name", 'got "-x"'),
        ("", "agent", 'expected at least one [[agent]] with role = "coder", got none'),
        ('[[agent]]\nname = "q"\nrole = "qa"\n', "agent", 'expected at least one [[agent]] with role = "coder"'),
        (CODER + CODER, "agent[2].name", 'got "coder" (agent[1] has it)'),
        (
            CODER + '[[gate]]\nname = "t"\ncommand = "a"\n[[gate]]\nname = "t"\ncommand = "b"\n',
            "gate[2].name",
            'got "t" (gate[1] has it)',
        ),
        ('qa_mode = "agent"\n' + CODER, "qa_mode", 'expected an [[agent]] with role = "qa" for qa_mode = "agent"'),
    ],
)
def test_invalid_settings_name_the_toml_key_and_say_what_was_found(text: str, field: str, message: str) -> None:
    err = error_of(text)
    assert err.field == f"{WHERE}: {field}"
    assert message in str(err)


@pytest.mark.parametrize(
    "branch", ["a b", "a..b", "-x", "x.lock", "x/", "a:b", "a~1", "a^", "a?", "a*", "a[b", "a\\b", "a\tb", ""]
)
def test_base_branch_must_be_a_valid_git_branch_name(branch: str) -> None:
    escaped = branch.replace("\\", "\\\\").replace("\t", "\\t")
    err = error_of(f'base_branch = "{escaped}"\n' + CODER)
    assert err.field == f"{WHERE}: base_branch"
    assert "branch name" in str(err)


def test_an_undefined_variable_in_a_prompt_template_names_the_agent() -> None:
    text = CODER + '[[agent]]\nname = "fixer"\nprompt_template = """\nFix {{ item.title }}\n{{ ticket }}\n"""\n'
    err = error_of(text)
    assert err.field == f"{WHERE}: agent[2].prompt_template"
    assert "agent 'fixer'" in str(err)
    assert "line 2" in str(err)
    assert "'ticket' is undefined" in str(err)


def test_agent_env_references_are_filled_from_the_environment_given() -> None:
    text = CODER + 'env = { ANTHROPIC_API_KEY = "${MY_KEY}", PLAIN = "value", MIXED = "x-${MY_KEY}" }\n'
    config = load_project_text(text, WHERE, {"MY_KEY": "sk-secret"})
    assert config.agents[0].env == {"ANTHROPIC_API_KEY": "sk-secret", "PLAIN": "value", "MIXED": "x-${MY_KEY}"}
    assert "sk-secret" not in repr(config)


def test_an_unset_env_reference_names_the_key_and_the_variable() -> None:
    err = error_of(CODER + 'env = { ANTHROPIC_API_KEY = "${MY_KEY}" }\n', {"OTHER": "x"})
    assert err.field == f"{WHERE}: agent[1].env.ANTHROPIC_API_KEY"
    assert "MY_KEY" in str(err)
    assert "not" in str(err)


def test_a_toml_syntax_error_gives_the_file_line_and_column() -> None:
    err = error_of('base_branch = "main"\n[[agent]\nname = "coder"\n')
    assert err.field == WHERE
    assert "invalid TOML" in str(err)
    assert "line 2, column" in str(err)


def test_a_missing_file_says_to_run_gangline_init(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="gangline init") as caught:
        load_project(ProjectPaths(tmp_path), {})
    assert caught.value.field == str(tmp_path / ".gangline" / "project.toml")


def test_errors_name_the_file_relative_to_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = ProjectPaths(tmp_path)
    paths.state_dir.mkdir()
    paths.config_file.write_text(CODER + "max_turns = 0\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as caught:
        load_project(paths, {})
    assert caught.value.field == ".gangline/project.toml: agent[1].max_turns"


def test_load_project_reads_the_file(tmp_path: Path) -> None:
    paths = ProjectPaths(tmp_path)
    paths.state_dir.mkdir()
    paths.config_file.write_text('base_branch = "trunk"\n' + CODER)
    assert load_project(paths, {}).base_branch == "trunk"


def test_project_paths_live_under_dot_gangline() -> None:
    paths = ProjectPaths(Path("/repo"))
    assert paths.state_dir == Path("/repo/.gangline")
    assert paths.config_file == Path("/repo/.gangline/project.toml")
    assert paths.guide_file == Path("/repo/.gangline/guide.md")
    assert paths.db_file == Path("/repo/.gangline/state.db")
    assert paths.runs_dir == Path("/repo/.gangline/runs")
    assert paths.worktrees_dir == Path("/repo/.gangline/worktrees")
    assert paths.merge_dir == Path("/repo/.gangline/merge")
    assert paths.hooks_dir == Path("/repo/.gangline/hooks")


def test_find_root_returns_the_top_of_the_repository_from_a_subdirectory(tmp_path: Path) -> None:
    subprocess.run(["git", "init", "-q", str(tmp_path / "repo")], check=True)
    deep = tmp_path / "repo" / "src" / "pkg"
    deep.mkdir(parents=True)
    assert find_root(deep) == (tmp_path / "repo").resolve()


def test_find_root_outside_a_repository_says_so(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not inside a git repository") as caught:
        find_root(tmp_path)
    assert caught.value.field == str(tmp_path)


CODEX = '[[agent]]\nname = "codex"\ncli = "codex"\nmodel = "gpt-5.5"\n'


def test_codex_and_gemini_profiles_take_their_own_settings_and_a_price_table() -> None:
    text = (
        '[price."gpt-5.5"]\ninput = 1.25\noutput = 10\ncache_read = 0.125\n\n'
        + CODEX
        + 'sandbox = "workspace-write"\napproval_mode = "on-request"\nmax_budget_usd = 2.0\nfallback = "gem"\n'
        + 'provider = { base_url = "https://llm.example.com/v1", key_env = "LLM_KEY", name = "corp" }\n\n'
        + '[[agent]]\nname = "gem"\ncli = "gemini"\napproval_mode = "auto_edit"\n'
    )
    config = load_project_text(text, WHERE, {})
    codex, gem = config.agents
    assert (codex.sandbox, codex.approval, codex.fallback) == ("workspace-write", "on-request", "gem")
    assert codex.provider is not None and (codex.provider.key_env, codex.provider.wire_api) == ("LLM_KEY", "responses")
    assert gem.approval == "auto_edit"
    price = config.price_table()["gpt-5.5"]
    assert (price.input, price.output, price.cache_read, price.cache_write) == (1.25, 10, 0.125, 1.25)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            CODEX + "max_budget_usd = 1.0\n",
            'agent[1].max_budget_usd: codex reports only tokens: add a [price."gpt-5.5"]',
        ),
        (
            CODEX + 'fallback = "nobody"\n',
            'agent[1].fallback: expected the name of another [[agent]] (none), got "nobody"',
        ),
        (
            CODEX + 'fallback = "qa"\n\n[[agent]]\nname = "qa"\nrole = "qa"\n',
            "agent[1].fallback: expected a coder profile, got 'qa', whose role is 'qa'",
        ),
        (CODEX + 'approval_mode = "yolo"\n', "expected approval_mode to be one of never, on-request, on-failure"),
        (CODEX + 'allowed_tools = ["Bash"]\n', "allowed_tools is a Claude Code setting; a codex profile has"),
        (CODER + 'sandbox = "read-only"\n', "sandbox is for cli = \"codex\", not 'claude'"),
        (CODEX + 'provider = { base_url = "llm.example.com" }\n', "agent[1].provider.base_url: expected text matching"),
        ('[price."m"]\ninput = -1\noutput = 1\n\n' + CODER, "price.m.input: expected a number of at least 0, got -1"),
    ],
)
def test_agent_settings_that_cannot_work_are_refused_naming_the_key(text: str, message: str) -> None:
    assert message in str(error_of(text))
