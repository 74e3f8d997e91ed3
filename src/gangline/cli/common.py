"""What every ``gangline`` command shares: the typer apps, the consoles and finding and opening the project."""

from __future__ import annotations

import getpass
import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from enum import StrEnum
from pathlib import Path
from typing import TypeVar

import typer
from rich.console import Console

from gangline.core.errors import ConfigError
from gangline.project.config import ProjectConfig, ProjectPaths, find_root, load_project
from gangline.store import Store, open_sqlite

_E = TypeVar("_E", bound=StrEnum)

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    help="gangline: run coding agents on work items.",
)
bench_app = typer.Typer(no_args_is_help=True, help="Measure gangline's hot paths.")
app.add_typer(bench_app, name="bench")
# emoji=False: ":name:" in an item title must stay text.
console = Console(highlight=False, emoji=False)
err_console = Console(stderr=True, highlight=False, emoji=False)


def project() -> tuple[ProjectPaths, ProjectConfig]:
    paths = initialised()
    return paths, load_project(paths, dict(os.environ))


def initialised() -> ProjectPaths:
    """The project holding the working directory; ConfigError when gangline is not set up in it."""
    paths = ProjectPaths(find_root(Path.cwd()))
    if not paths.config_file.is_file():
        raise ConfigError(str(paths.config_file), "not found; run `gangline init` in the repository first")
    return paths


@contextmanager
def opened(paths: ProjectPaths, patient: bool = False) -> Iterator[Store]:
    """The project's database for a command; ``patient`` for one that drives the pipeline (see open_sqlite).

    No server owns the database then: the CLI writes it directly, each change in its own transaction.
    """
    store = open_sqlite(paths.db_file, patient=patient)
    try:
        yield store
    finally:
        store.close()


def actor() -> str:
    with suppress(OSError, KeyError):
        return getpass.getuser()
    return "person"


def choice(enum: type[_E], value: str, option: str) -> _E:
    try:
        return enum(value)
    except ValueError:
        expected = ", ".join(member.value for member in enum)
        raise ConfigError(option, f"expected one of {expected}, got {value!r}") from None


def item_costs(store: Store) -> dict[int, float]:
    return {int(row.key): row.cost_usd for row in store.ledger("item")}


def print_json(value: object) -> None:
    # Straight to stdout, never through rich: JSON is for programs, and rich would read "[...]" as markup.
    sys.stdout.write(json.dumps(value, indent=2, default=str) + "\n")
