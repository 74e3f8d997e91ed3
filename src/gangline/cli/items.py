"""The work-item commands: ``add``, ``import``, ``export``, ``ls``, ``show``, ``edit`` and ``rm``.

Each builds the order's model from its options (as REST and MCP build it from theirs), sends it
through the door (a running server, or the store), and prints the record that comes back. A
problem names the option it came from.
"""

from __future__ import annotations

import os
import time
from contextlib import suppress
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from gangline.cli.common import actor, as_option, console, err_console, from_options, initialised, print_json, read_text
from gangline.cli.text import inert
from gangline.core.errors import ConfigError, NotFoundError
from gangline.core.stages import Stage

if TYPE_CHECKING:  # the models (pydantic) load when a command runs, not for --help
    from gangline.cli.door import Door
    from gangline.core.items import ItemPatch
    from gangline.core.wire import ItemOut
    from gangline.project.itemfile import ItemFile

# The field each option fills, to name the option in an error.
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
    "start_after": "--start-after",
    "stages": "--stage",
}
_EDIT_OPTION_OF = {**OPTION_OF, "title": "--title", "clear": "--clear"}
_CLEARS = {"agent": "pinned_agent", "qa": "qa_mode", "depends-on": "depends_on"}


def register(app: typer.Typer) -> None:
    """Add the work-item commands to ``app``; the caller picks where they fall in ``--help``."""
    app.command()(add)
    app.command("import")(import_files)
    app.command()(export)
    app.command("ls")(list_items)
    app.command()(show)


def register_editing(app: typer.Typer, panel: str) -> None:
    app.command(rich_help_panel=panel)(edit)
    app.command("rm", rich_help_panel=panel)(remove)


def open_door(server_only: str | None = None) -> Any:
    """``with open_door() as door``: the project's door (see ``cli.door``), for this person."""
    from gangline.cli.door import door

    return door(initialised(), actor(), err_console, server_only=server_only)


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
    from gangline.core.items import Kind, template
    from gangline.core.wire import NewItem

    if from_file is not None:
        given = [title, kind, body, body_file, criterion, depends_on, priority, agent, qa, start_after]
        if any(value is not None for value in given) or frozen:
            raise ConfigError("--from-file", "takes the whole item from the file; give no TITLE or item options")
        from gangline.project.itemfile import read_item_file

        with open_door() as door:
            items = _import(door, [(from_file, read_item_file(from_file))], update=False, quiet=True)
        if not items:
            raise typer.Exit(1)
        _print_added(items[0], as_json)
        return
    if title is None:
        raise ConfigError("TITLE", "is required (or give --from-file ITEM.md)")
    if body is not None and body_file is not None:
        raise ConfigError("--body-file", "give --body or --body-file, not both")
    values: dict[str, Any] = {"kind": kind or Kind.STORY.value, "title": title, "body": body, "criteria": criterion,
              "depends_on": depends_on, "priority": priority, "pinned_agent": agent, "qa_mode": qa,
              "frozen": frozen}  # fmt: skip
    if body_file is not None:
        values["body"] = read_text(body_file, "--body-file")
    with suppress(ValueError):  # a kind that is not one is said by the validation, as from every door
        template_body, template_criteria = template(Kind(values["kind"]))
        values["body"] = template_body if values["body"] is None else values["body"]
        values["criteria"] = values["criteria"] or template_criteria
    if start_after is not None:
        values["start_after"] = _start_after(start_after)
    new = from_options(NewItem, values, OPTION_OF)
    with open_door() as door:
        try:
            item = door.add_item(new)
        except ConfigError as err:
            raise as_option(err, OPTION_OF) from None
    _print_added(item, as_json)


def _start_after(text: str) -> float:
    """``--start-after`` as every door reads a time (``core.timers``), in the project's time zone."""
    from gangline.core.timers import parse_when
    from gangline.project.config import load_project

    zone = load_project(initialised(), dict(os.environ)).zone()
    return parse_when(text, time.time(), zone, "--start-after")


def _print_added(item: ItemOut, as_json: bool) -> None:
    if as_json:
        print_json(item)
        return
    waits = f", after {', '.join(f'#{d}' for d in item.depends_on)}" if item.depends_on else ""
    frozen = " (frozen)" if item.frozen else ""
    console.print(f"Added [bold]#{item.id} {inert(item.slug)}[/] ({item.kind.value}) to the backlog{frozen}{waits}")


def import_files(
    paths: Annotated[list[Path], typer.Argument(help="Item files (.md) or directories of them.")],
    update: Annotated[bool, typer.Option("--update", help="Change existing items the files name by id.")] = False,
) -> None:
    """Add items from Markdown item files; a file naming an existing id needs --update to change it."""
    from gangline.project.itemfile import read_item_dir, read_item_file

    files: list[tuple[Path, ItemFile]] = []
    for path in paths:  # parse every file first: a bad one stops the import before anything is written
        files.extend(read_item_dir(path) if path.is_dir() else [(path, read_item_file(path))])
    with open_door() as door:
        done = _import(door, files, update, quiet=False)
    if len(done) < len(files):
        raise typer.Exit(1)


def _import(door: Door, files: list[tuple[Path, ItemFile]], update: bool, quiet: bool) -> list[ItemOut]:
    """Create or (with ``update``) edit one item per file; return the items written."""
    written = []
    for path, item_file in files:
        where = inert(str(path))
        existing = _existing(door, item_file.id)
        if existing is not None and not update:
            console.print(f"[yellow]skipped[/] {where}: item #{existing.id} exists; pass --update to change it")
            continue
        try:
            item, said = _write(door, item_file, existing, where)
        except ConfigError as err:  # an order's refusal names the file, as the file's own problems do
            raise ConfigError(f"{path}: {err.field}", str(err).removeprefix(f"{err.field}: ")) from None
        if not quiet:
            console.print(said)
        written.append(item)
    return written


def _write(door: Door, item_file: ItemFile, existing: ItemOut | None, where: str) -> tuple[ItemOut, str]:
    from gangline.core.wire import NewItem

    if existing is not None:
        item = door.edit_item(existing.id, _patch_from_file(item_file))
        said = f"updated #{item.id} {inert(item.slug)} from {where}"
        if item_file.draft.frozen != item.frozen:
            said += " (frozen is not changed by an import)"
        return item, said
    item = door.add_item(NewItem.model_validate(dict(item_file.draft)))
    said = f"added #{item.id} {inert(item.slug)} ({item.kind.value}) from {where}"
    if item_file.id is not None:
        said += f" (the file's id {item_file.id} is not in this project)"
    return item, said


def _existing(door: Door, item_id: int | None) -> ItemOut | None:
    if item_id is None:
        return None
    try:
        return door.item(item_id)
    except NotFoundError:
        return None


def _patch_from_file(item_file: ItemFile) -> ItemPatch:
    """Everything the file says, as a patch; an optional field the file leaves empty is cleared."""
    from gangline.core.items import ItemPatch

    draft = item_file.draft
    cleared = tuple(name for name in ("pinned_agent", "qa_mode") if getattr(draft, name) is None)
    values = draft.model_dump(exclude={"frozen", *cleared})
    return ItemPatch.model_validate({**values, "clear": cleared})


def export(
    directory: Annotated[Path, typer.Argument(help="Where to write one <id>-<slug>.md file per item.")],
    show_all: Annotated[bool, typer.Option("--all", help="Include archived items.")] = False,
) -> None:
    """Write items as Markdown item files, to review or keep in the repository."""
    from gangline.cli.common import opened
    from gangline.project.itemfile import export_items

    with opened(initialised()) as store:
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
    from gangline.cli.tables import items_table
    from gangline.core.wire import ItemQuery

    query = from_options(ItemQuery, {"stages": stage or [], "include_archived": show_all}, OPTION_OF)
    with open_door() as door:
        items = door.items(query)
    if as_json:
        print_json(items)
    elif items:
        console.print(items_table(items))
    else:
        console.print('No items. Add one with: gangline add "what needs doing"')


def show(
    item_id: Annotated[int, typer.Argument(metavar="ID", help="The item's id.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show one item: its text, state, transitions, runs, last gate results and cost."""
    from gangline.cli.tables import print_item

    with open_door() as door:
        detail = door.detail(item_id)
    if as_json:
        print_json(detail)
    else:
        print_item(console, detail)


# --- changing what a person wrote --------------------------------------------------------------


def edit(
    item_id: Annotated[int, typer.Argument(metavar="ID", help="The item's id.")],
    title: Annotated[str | None, typer.Option(help="A new title, one line.")] = None,
    kind: Annotated[str | None, typer.Option(help="story, bug, spike or refactor.")] = None,
    body: Annotated[str | None, typer.Option(help="A new body, Markdown.")] = None,
    body_file: Annotated[Path | None, typer.Option(help="Read the new body from this file.")] = None,
    criterion: Annotated[list[str] | None, typer.Option(help="Replace the criteria (repeatable).")] = None,
    depends_on: Annotated[list[int] | None, typer.Option(help="Replace the dependencies (repeatable).")] = None,
    priority: Annotated[int | None, typer.Option(help="Higher runs first, -1000..1000.")] = None,
    agent: Annotated[str | None, typer.Option(help="Pin a coder agent profile.")] = None,
    qa: Annotated[str | None, typer.Option(help="server, agent or human.")] = None,
    clear: Annotated[list[str] | None, typer.Option(help="Clear agent, qa or depends-on (repeatable).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Change what a person wrote about an item; its stage is changed only by the actions."""
    from gangline.core.items import ItemPatch

    if body is not None and body_file is not None:
        raise ConfigError("--body-file", "give --body or --body-file, not both")
    values: dict[str, Any] = {
        "title": title, "kind": kind, "body": read_text(body_file, "--body-file") if body_file else body,
        "criteria": criterion or None, "depends_on": depends_on or None, "priority": priority,
        "pinned_agent": agent, "qa_mode": qa,
    }  # fmt: skip
    values = {name: value for name, value in values.items() if value is not None}
    cleared = [_CLEARS.get(name) or _bad_clear(name) for name in clear or ()]
    if "depends_on" in cleared:
        cleared.remove("depends_on")
        values["depends_on"] = ()
    if not values and not cleared:
        raise ConfigError("options", "nothing to change: give --title, --kind, --body, --criterion, --depends-on, "
                          "--priority, --agent, --qa or --clear")  # fmt: skip
    patch = from_options(ItemPatch, {**values, "clear": cleared}, _EDIT_OPTION_OF)
    with open_door() as door:
        try:
            item = door.edit_item(item_id, patch)
        except ConfigError as err:
            raise as_option(err, _EDIT_OPTION_OF) from None
    if as_json:
        print_json(item)
    else:
        console.print(f"edited #{item.id} {inert(item.slug)}: {', '.join(sorted({*values, *cleared}))}")


def _bad_clear(name: str) -> str:
    raise ConfigError("--clear", f"expected one of {', '.join(_CLEARS)}, got {name!r}")


def remove(
    item_id: Annotated[int, typer.Argument(metavar="ID", help="The item's id.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the deleted item as JSON.")] = False,
) -> None:
    """Delete an item: refused while an agent runs on it or another item depends on it."""
    with open_door() as door:
        item = door.delete_item(item_id)
    if as_json:
        print_json(item)
    else:
        console.print(f"deleted #{item.id} {inert(item.slug)}")
