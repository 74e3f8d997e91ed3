"""What every ``gangline`` command shares: the typer apps, the consoles, finding the project, errors in its terms."""

from __future__ import annotations

import getpass
import json
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import typer
from rich.console import Console

from gangline.core.errors import ConfigError
from gangline.project.paths import ProjectPaths, find_root

if TYPE_CHECKING:  # pydantic and the store (SQLAlchemy) load only for the commands that use them
    from pydantic import BaseModel

    from gangline.store import Store

M = TypeVar("M", bound="BaseModel")
E = TypeVar("E", bound=StrEnum)

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

ACTING = "Acting on an item"
WATCHING = "Watching the pipeline"


def initialised() -> ProjectPaths:
    """The project holding the working directory; ConfigError when gangline is not set up in it."""
    paths = ProjectPaths(find_root(Path.cwd()))
    if not paths.config_file.is_file():
        raise ConfigError(str(paths.config_file), "not found; run `gangline init` in the repository first")
    return paths


@contextmanager
def opened(paths: ProjectPaths, patient: bool = False) -> Iterator[Store]:
    """The project's database for a command; ``patient`` for one that drives the pipeline (see open_sqlite)."""
    import os

    from gangline.project.database import database_url
    from gangline.store import open_store

    store = open_store(database_url(paths, os.environ), patient=patient)
    try:
        yield store
    finally:
        store.close()


def actor() -> str:
    with suppress(OSError, KeyError):
        return getpass.getuser()
    return "person"


def choice(enum: type[E], value: str, option: str) -> E:
    """One of a CLI option's own choices (a demo's agent, say), or a ConfigError naming the option."""
    try:
        return enum(value)
    except ValueError:
        expected = ", ".join(member.value for member in enum)
        raise ConfigError(option, f"expected one of {expected}, got {value!r}") from None


def from_options(model: type[M], values: Mapping[str, object], options: Mapping[str, str]) -> M:
    """``values`` validated as ``model`` (as every door validates); a problem names the option it came from."""
    from gangline.core.validation import validated

    try:
        return validated(model, {name: value for name, value in values.items() if value is not None})
    except ConfigError as err:
        raise as_option(err, options) from None


def as_option(err: ConfigError, options: Mapping[str, str]) -> ConfigError:
    """``err`` with its field said as the command-line option a person typed (``pinned_agent`` is ``--agent``)."""
    key = err.field.split("[", 1)[0].split(".", 1)[0]
    option = options.get(key)
    if option is None:
        return err
    return ConfigError(option, str(err).removeprefix(f"{err.field}: "))


def read_text(path: Path, option: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(option, f"cannot read {str(path)!r}: {err}") from None


def print_json(value: object) -> None:
    """``value`` (a wire record, a list of them, or plain JSON) as JSON alone on stdout."""
    # Straight to stdout, never through rich: JSON is for programs, and rich would read "[...]" as markup.
    if hasattr(value, "model_dump"):  # a wire record
        value = value.model_dump(mode="json")
    elif isinstance(value, list):
        value = [v.model_dump(mode="json") if hasattr(v, "model_dump") else v for v in value]
    sys.stdout.write(json.dumps(value, indent=2, default=str) + "\n")
