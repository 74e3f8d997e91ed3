"""The work-item commands: ``add``, ``import``, ``export``, ``ls`` and ``show``; through a running server if any."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Protocol

import typer
from pydantic import ValidationError

from gangline.cli.client import Client, reach
from gangline.cli.common import (
    actor,
    choice,
    console,
    err_console,
    initialised,
    item_costs,
    opened,
    print_json,
    project,
)
from gangline.cli.narrate import inert, items_table, money, print_item
from gangline.core.errors import ConfigError, NotFoundError
from gangline.core.items import Item, ItemDraft, ItemPatch, Kind, template
from gangline.core.profiles import QaMode, Role
from gangline.core.records import EventRow, GateRow, RunRow, last_gates
from gangline.core.stages import Stage
from gangline.core.validation import describe_validation_error
from gangline.project.config import ProjectConfig, ProjectPaths
from gangline.project.itemfile import ItemFile, export_items, read_item_dir, read_item_file
from gangline.repo.worktrees import branch_name
from gangline.store import Store

# The draft field each `gangline add` (or `edit`) option fills, to name the option in an error.
OPTION_OF = {
    "title": "TITLE",
    "kind": "--kind",
    "body": "--body",
    "criteria": "--criterion",
    "depends_on": "--depends-on",
    "priority": "--priority",
    "pinned_agent": "--agent",
    "qa_mode": "--qa",
    "frozen": "--frozen",
}


class ItemDoor(Protocol):
    """Where item commands read and write items: the running server (``Client``) or the store (``StoreItems``)."""

    def get_item(self, item_id: int) -> Item: ...
    def create_item(self, draft: ItemDraft, start_after: float | None) -> Item: ...
    def edit_item(self, item_id: int, patch: ItemPatch) -> Item: ...


class StoreItems:
    """The store as an ``ItemDoor``: no server runs, so the CLI writes it itself, each change in a transaction."""

    def __init__(self, store: Store, who: str) -> None:
        self.store = store
        self.who = who

    def get_item(self, item_id: int) -> Item:
        return self.store.get_item(item_id)

    def create_item(self, draft: ItemDraft, start_after: float | None) -> Item:
        item = self.store.create_item(draft, self.who)
        return item if start_after is None else self.store.schedule_start(item.id, start_after, self.who)

    def edit_item(self, item_id: int, patch: ItemPatch) -> Item:
        return self.store.edit_item(item_id, patch, self.who)


def connect(paths: ProjectPaths) -> AbstractContextManager[Client | None]:
    """``with connect(paths) as server``: the running server's client, or None; says which on stderr."""
    return reach(paths, os.environ, actor(), err_console)


@contextmanager
def items_door(paths: ProjectPaths) -> Iterator[ItemDoor]:
    with connect(paths) as server:
        if server is not None:
            yield server
            return
        with opened(paths) as store:
            yield StoreItems(store, actor())


def register(app: typer.Typer) -> None:
    """Add the work-item commands to ``app``; the caller picks where they fall in ``--help``."""
    app.command()(add)
    app.command("import")(import_files)
    app.command()(export)
    app.command("ls")(list_items)
    app.command()(show)


# --- adding work -------------------------------------------------------------------------------


def add(
    title: Annotated[str | None, typer.Argument(metavar="TITLE", help="The item's title, one line.")] = None,
    kind: Annotated[str | None, typer.Option(help="story, bug, spike or refactor (default: story).")] = None,
    body: Annotated[str | None, typer.Option(help="The body, Markdown (default: the kind's template).")] = None,
    body_file: Annotated[Path | None, typer.Option(help="Read the body from this file.")] = None,
    criterion: Annotated[
        list[str] | None, typer.Option(help="An acceptance criterion (repeatable; default: the kind's).")
    ] = None,
    depends_on: Annotated[list[int] | None, typer.Option(help="An item that must be done first (repeatable).")] = None,
    priority: Annotated[int | None, typer.Option(help="Higher runs first, -1000..1000 (default 0).")] = None,
    agent: Annotated[str | None, typer.Option(help="Pin a coder agent profile from project.toml.")] = None,
    qa: Annotated[str | None, typer.Option(help="server, agent or human (default: the project's qa_mode).")] = None,
    frozen: Annotated[bool, typer.Option("--frozen", help="Add it frozen: the pipeline leaves it alone.")] = False,
    start_after: Annotated[
        str | None,
        typer.Option(
            help="Start no earlier than this: an ISO date-time (local time unless it says) or +30m, +2h, +1d."
        ),
    ] = None,
    from_file: Annotated[Path | None, typer.Option(help="Add the item a Markdown item file describes.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the new item as JSON.")] = False,
) -> None:
    """Add a work item to the backlog."""
    paths, config = project()
    if from_file is not None:
        given = [title, kind, body, body_file, criterion, depends_on, priority, agent, qa, start_after]
        if any(value is not None for value in given) or frozen:
            raise ConfigError("--from-file", "takes the whole item from the file; give no TITLE or item options")
        with items_door(paths) as door:
            items = _import(door, config, [(from_file, read_item_file(from_file))], update=False, quiet=True)
        if not items:
            raise typer.Exit(1)
        _print_added(items[0], as_json)
        return
    draft = _draft_from_options(title, kind, body, body_file, criterion, depends_on, priority, agent, qa, frozen)
    check_agent(config, draft.pinned_agent, "--agent")
    at = None if start_after is None else parse_when(start_after, time.time(), "--start-after")
    with items_door(paths) as door:
        try:
            item = door.create_item(draft, at)
        except ConfigError as err:
            raise renamed(err, "--depends-on") if err.field == "depends_on" else err from None
    _print_added(item, as_json)


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_when(text: str, now: float, option: str) -> float:
    """``+90s``/``+30m``/``+2h``/``+1d`` from ``now``, or an ISO 8601 date-time (local time unless it has an offset)."""
    value = text.strip()
    if value.startswith("+") and value[-1:] in _UNITS and value[1:-1].isdigit():
        return now + int(value[1:-1]) * _UNITS[value[-1]]
    try:
        return datetime.fromisoformat(value).timestamp()
    except ValueError:
        raise ConfigError(
            option, f"expected an ISO date-time such as 2026-12-01T22:00 or +30m, +2h, +1d; got {text!r}"
        ) from None


def _draft_from_options(
    title: str | None, kind: str | None, body: str | None, body_file: Path | None, criteria: list[str] | None,
    depends_on: list[int] | None, priority: int | None, agent: str | None, qa: str | None, frozen: bool,
) -> ItemDraft:  # fmt: skip
    if title is None:
        raise ConfigError("TITLE", "is required (or give --from-file ITEM.md)")
    item_kind = choice(Kind, kind or Kind.STORY.value, "--kind")
    if body is not None and body_file is not None:
        raise ConfigError("--body-file", "give --body or --body-file, not both")
    if body_file is not None:
        body = read_text(body_file, "--body-file")
    template_body, template_criteria = template(item_kind)
    data = {
        "kind": item_kind,
        "title": title,
        "body": template_body if body is None else body,
        "criteria": tuple(criteria) if criteria else template_criteria,
        "depends_on": tuple(depends_on or ()),
        "priority": priority or 0,
        "pinned_agent": agent,
        "qa_mode": choice(QaMode, qa, "--qa") if qa is not None else None,
        "frozen": frozen,
    }
    try:
        return ItemDraft.model_validate(data)
    except ValidationError as err:
        location, message = describe_validation_error(err)
        key = location.split("[", 1)[0].split(".", 1)[0]
        raise ConfigError(OPTION_OF.get(key, location), message) from None


def _print_added(item: Item, as_json: bool) -> None:
    if as_json:
        print_json(item_json(item))
        return
    waits = f", after {', '.join(f'#{d}' for d in item.depends_on)}" if item.depends_on else ""
    frozen = " (frozen)" if item.state.frozen else ""
    console.print(f"Added [bold]#{item.id} {inert(item.slug)}[/] ({item.kind.value}) to the backlog{frozen}{waits}")


def import_files(
    paths: Annotated[list[Path], typer.Argument(help="Item files (.md) or directories of them.")],
    update: Annotated[bool, typer.Option("--update", help="Change existing items the files name by id.")] = False,
) -> None:
    """Add items from Markdown item files; a file naming an existing id needs --update to change it."""
    project_paths, config = project()
    files: list[tuple[Path, ItemFile]] = []
    for path in paths:  # parse every file first: a bad one stops the import before anything is written
        files.extend(read_item_dir(path) if path.is_dir() else [(path, read_item_file(path))])
    with items_door(project_paths) as door:
        done = _import(door, config, files, update, quiet=False)
    if len(done) < len(files):
        raise typer.Exit(1)


def _import(
    door: ItemDoor, config: ProjectConfig, files: list[tuple[Path, ItemFile]], update: bool, quiet: bool
) -> list[Item]:
    """Create or (with ``update``) edit one item per file; return the items written."""
    written = []
    for path, item_file in files:
        where = inert(str(path))
        check_agent(config, item_file.draft.pinned_agent, f"{path}: pinned_agent")
        existing = _existing(door, item_file.id)
        if existing is not None and not update:
            console.print(f"[yellow]skipped[/] {where}: item #{existing.id} exists; pass --update to change it")
            continue
        if existing is not None:
            item = door.edit_item(existing.id, _patch(item_file.draft))
            said = f"updated #{item.id} {inert(item.slug)} from {where}"
            if item_file.draft.frozen != item.state.frozen:
                said += " (frozen is not changed by an import)"
        else:
            item = door.create_item(item_file.draft, None)
            said = f"added #{item.id} {inert(item.slug)} ({item.kind.value}) from {where}"
            if item_file.id is not None:
                said += f" (the file's id {item_file.id} is not in this project)"
        if not quiet:
            console.print(said)
        written.append(item)
    return written


def _existing(door: ItemDoor, item_id: int | None) -> Item | None:
    if item_id is None:
        return None
    try:
        return door.get_item(item_id)
    except NotFoundError:
        return None


def _patch(draft: ItemDraft) -> ItemPatch:
    """Everything the file says, as a patch; an optional field the file leaves empty is cleared."""
    cleared = tuple(name for name in ("pinned_agent", "qa_mode") if getattr(draft, name) is None)
    values = draft.model_dump(exclude={"frozen", *cleared})
    return ItemPatch.model_validate({**values, "clear": cleared})


def export(
    directory: Annotated[Path, typer.Argument(help="Where to write one <id>-<slug>.md file per item.")],
    show_all: Annotated[bool, typer.Option("--all", help="Include archived items.")] = False,
) -> None:
    """Write items as Markdown item files, to review or keep in the repository."""
    paths = initialised()
    with opened(paths) as store:
        items = [i for i in store.list_items() if show_all or i.stage is not Stage.ARCHIVED]
    for path in export_items(items, directory):
        console.print(f"wrote {inert(str(path))}")
    console.print(f"Exported {len(items)} item(s) to {inert(str(directory))}")


# --- looking at work ---------------------------------------------------------------------------


def list_items(
    stage: Annotated[list[str] | None, typer.Option(help="Only items in this stage (repeatable).")] = None,
    show_all: Annotated[bool, typer.Option("--all", help="Include archived items.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON array.")] = False,
) -> None:
    """List work items with their stage, hold, retries and cost so far."""
    stages = [choice(Stage, s, "--stage") for s in stage or ()]
    paths = initialised()
    with connect(paths) as server:
        if server is not None:
            items, costs = server.list_items(stages, show_all)
        else:
            with opened(paths) as store:
                items, costs = store.list_items(stages or None), item_costs(store)
    if not stages and not show_all:
        items = [i for i in items if i.stage is not Stage.ARCHIVED]
    if as_json:
        print_json([item_json(i) | {"cost_usd": costs.get(i.id, 0.0)} for i in items])
    elif items:
        console.print(items_table(items, costs))
    else:
        console.print('No items. Add one with: gangline add "what needs doing"')


def show(
    item_id: Annotated[int, typer.Argument(metavar="ID", help="The item's id.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show one item: its text, state, transitions, runs, last gate results and cost."""
    paths = initialised()
    with connect(paths) as server:
        if server is not None:
            item, transitions, runs, gates, cost = server.item_detail(item_id)
        else:
            with opened(paths) as store:
                item, transitions, runs, gates, cost = _detail(store, item_id)
    if as_json:
        history = {"transitions": [asdict(e) for e in transitions], "runs": [asdict(r) for r in runs]}
        extra = {"branch": branch_name(item.id, item.slug), "cost_usd": cost, "gates": [asdict(g) for g in gates]}
        print_json(item_json(item) | extra | history)
        return
    print_item(console, item, transitions, runs, gates)
    console.print(f"Cost so far: {money(cost) if cost else '$0'} over {len(runs)} run(s)")


def _detail(store: Store, item_id: int) -> tuple[Item, list[EventRow], list[RunRow], list[GateRow], float]:
    item = store.get_item(item_id)
    transitions = [e for e in store.events_after(0, limit=100_000, item_id=item_id) if e.kind == "transition"]
    gates = last_gates(store.gate_results(item_id))
    cost = sum(row.cost_usd for row in store.ledger("item", item_id))
    return item, transitions, store.runs(item_id), gates, cost


# --- shared by the item commands ---------------------------------------------------------------


def check_agent(config: ProjectConfig, name: str | None, option: str) -> None:
    if name is None:
        return
    profile = config.profile(name)
    coders = ", ".join(p.name for p in config.profiles_for(Role.CODER))
    if profile is None:
        raise ConfigError(option, f"no agent profile named {name!r} in project.toml; the coder profiles are: {coders}")
    if profile.role is not Role.CODER:
        raise ConfigError(option, f"{name!r} is a {profile.role.value} profile; pin a coder profile ({coders})")


def renamed(err: ConfigError, field: str) -> ConfigError:
    return ConfigError(field, str(err).removeprefix(f"{err.field}: "))


def read_text(path: Path, option: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(option, f"cannot read {str(path)!r}: {err}") from None


def item_json(item: Item) -> dict[str, Any]:
    state = item.state
    return {
        "id": item.id,
        "name": item.name,
        "slug": item.slug,
        "kind": item.kind.value,
        "title": item.title,
        "body": item.body,
        "criteria": [{"text": c.text, "checked": c.checked} for c in item.criteria],
        "depends_on": list(item.depends_on),
        "priority": item.priority,
        "pinned_agent": item.pinned_agent,
        "qa_mode": item.qa_mode.value if item.qa_mode else None,
        "stage": state.stage.value,
        "hold": state.hold.value if state.hold else None,
        "hold_reason": state.hold_reason,
        "frozen": state.frozen,
        "retries": item.retries,
        "merge_attempts": item.merge_attempts,
        "merged_commit": item.merged_commit,
        "start_after": item.start_after,
        "parked_until": item.parked_until,
        "archive_at": item.archive_at,
        "created_at": item.created_at,
        "updated_at": item.updated_at,
    }
