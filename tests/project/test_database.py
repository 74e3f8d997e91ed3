"""Which database a command opens: the environment's URL, project.toml's, or the project's own SQLite file."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from gangline.core.errors import ConfigError, DatabaseUnreachable
from gangline.project.database import DATABASE_VAR, database_url
from gangline.project.paths import ProjectPaths
from gangline.store import open_store, shown_url

SHARED = "postgresql+psycopg://gangline@db.example.org/gangline"


def paths_with(tmp_path: Path, text: str) -> ProjectPaths:
    paths = ProjectPaths(tmp_path)
    paths.state_dir.mkdir(parents=True)
    paths.config_file.write_text(text)
    return paths


def test_the_environment_wins_then_project_toml_then_the_projects_own_sqlite_file(tmp_path: Path) -> None:
    paths = paths_with(tmp_path, f'database_url = "{SHARED}"\n')
    secret = "postgresql+psycopg://ann:hunter2@other/gangline"
    assert database_url(paths, {DATABASE_VAR: secret}) == secret
    assert database_url(paths, {}) == SHARED
    plain = paths_with(tmp_path / "plain", 'base_branch = "main"\n')
    assert database_url(plain, {}) == f"sqlite:///{plain.db_file}"
    broken = paths_with(tmp_path / "broken", "database_url = \n")  # loading the configuration says what is wrong
    assert database_url(broken, {}) == f"sqlite:///{broken.db_file}"


@pytest.mark.parametrize("url", ["mysql://db/gangline", "postgresql+asyncpg://db/gangline", "sqlite://", "not a url"])
def test_a_url_gangline_cannot_open_is_refused_naming_the_key(url: str) -> None:
    with pytest.raises(ConfigError, match=r"^database_url: expected sqlite:///<path> or postgresql\+psycopg://"):
        open_store(url)


def test_a_database_that_takes_no_connection_is_named_without_its_password(tmp_path: Path) -> None:
    url = f"postgresql+psycopg://ann:hunter2@/gangline?host={tmp_path}"  # no server has a socket there
    with pytest.raises(DatabaseUnreachable) as err:
        open_store(url)
    message = str(err.value)
    assert message.startswith("cannot reach the database postgresql+psycopg://ann:***@/gangline")
    assert "hunter2" not in message and "hunter2" not in shown_url(url)


def test_postgresql_without_its_driver_installed_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)  # as on a machine without gangline[postgres]
    with pytest.raises(
        ConfigError, match=r"^database_url: names PostgreSQL, which needs psycopg.*gangline\[postgres\]"
    ):
        open_store(SHARED)
