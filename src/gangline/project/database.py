"""Where the project's state lives: the database URL a command opens, from one place.

``GANGLINE_DATABASE_URL`` in the environment wins (the whole URL, password included, stays out
of the repository); then ``database_url`` in project.toml (checked with the rest of the file:
no password there, it is committed); otherwise the project's own SQLite file,
``.gangline/state.db``.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping

from gangline.project.paths import ProjectPaths

DATABASE_VAR = "GANGLINE_DATABASE_URL"


def database_url(paths: ProjectPaths, env: Mapping[str, str]) -> str:
    """The URL of the project's store (read before, and without, the rest of the configuration)."""
    given = env.get(DATABASE_VAR, "").strip()
    if given:
        return given
    try:
        found = tomllib.loads(paths.config_file.read_text(encoding="utf-8")).get("database_url")
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        found = None  # loading the configuration says what is wrong with the file
    return found if isinstance(found, str) and found.strip() else f"sqlite:///{paths.db_file}"
