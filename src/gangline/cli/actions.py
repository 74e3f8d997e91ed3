"""A person's actions on the command line: ``gangline start|stop|approve|reject|block|... ID``.

The actions, their triggers, help and default reasons are the order table's (``core.orders``);
each command sends one through the door and prints the item's new stage and hold.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated

import typer

from gangline.cli.common import ACTING, console, err_console, print_json
from gangline.cli.items import open_door
from gangline.cli.text import first_line, inert
from gangline.core.errors import ConfigError
from gangline.core.orders import ACTIONS, ItemAction

if TYPE_CHECKING:
    from gangline.core.wire import ItemOut

# The order --help lists them in: what a person reaches for first.
HELP_ORDER = (
    ItemAction.START, ItemAction.STOP, ItemAction.APPROVE, ItemAction.REJECT, ItemAction.BLOCK,
    ItemAction.UNBLOCK, ItemAction.HOLD, ItemAction.RELEASE, ItemAction.DEMOTE, ItemAction.FREEZE,
    ItemAction.UNFREEZE, ItemAction.ARCHIVE, ItemAction.RETRY_MERGE, ItemAction.CLOSE, ItemAction.ABANDON,
    ItemAction.SUPERSEDE,
)  # fmt: skip

ItemId = Annotated[int, typer.Argument(metavar="ID", help="The item's id.")]


def register(app: typer.Typer) -> None:
    """Add one command per action to ``app``."""
    for action in HELP_ORDER:
        app.command(action.value, help=ACTIONS[action].help, rich_help_panel=ACTING)(_command_for(action))
    app.command(rich_help_panel=ACTING)(timer)


def _command_for(action: ItemAction) -> Callable[..., None]:
    if action is ItemAction.SUPERSEDE:
        return supersede

    def command(
        item_id: ItemId,
        reason: Annotated[str | None, typer.Option("--reason", "-m", help="Why, for the event log.")] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print the item as the action left it, as JSON.")] = False,
    ) -> None:
        act_on(item_id, action, reason, as_json)

    return command


def supersede(
    item_id: ItemId,
    by: Annotated[int, typer.Option("--by", help="The item that does this one's work instead.")],
    reason: Annotated[str | None, typer.Option("--reason", "-m", help="Why, for the event log.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the item as the action left it, as JSON.")] = False,
) -> None:
    """Supersede an item by another (--by N): archived unfinished, saying which item does it instead."""
    from gangline.cli.common import as_option

    try:
        act_on(item_id, ItemAction.SUPERSEDE, reason, as_json, by)
    except ConfigError as err:
        raise as_option(err, {"by": "--by"}) from None


def act_on(item_id: int, action: ItemAction, reason: str | None, as_json: bool = False, by: int | None = None) -> None:
    with open_door() as door, err_console.status(f"{action.value} #{item_id}…"):
        item = door.act(item_id, action, reason, by)
    if as_json:
        print_json(item)
    else:
        console.print(f"{ACTIONS[action].done} #{item.id} {inert(item.slug)}: now {_state(item)}")


def timer(
    item: Annotated[str, typer.Argument(metavar="ID|cancel", help="The item (or `cancel`, then the item).")],
    when: Annotated[str, typer.Argument(metavar="WHEN|ID", help="HH:MM, +30m, +2h, +1d or a date-time.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the item, as JSON.")] = False,
) -> None:
    """Start a backlog item at WHEN (the project's time zone); `timer cancel ID` drops its timer."""
    from datetime import datetime

    from gangline.cli.common import as_option, from_options
    from gangline.core.wire import TimerIn

    cancel = item == "cancel"
    item_id = _item_id(when if cancel else item)
    given = None if cancel else from_options(TimerIn, {"when": when}, {"when": "WHEN"}).when
    with open_door() as door:
        try:
            done = door.set_timer(item_id, given)
        except ConfigError as err:
            raise as_option(err, {"when": "WHEN"}) from None
    if as_json:
        print_json(done)
    elif done.start_after is None:
        console.print(f"#{done.id} {inert(done.slug)}: timer cancelled; it starts when the pipeline takes it up")
    else:
        at = datetime.fromtimestamp(done.start_after).astimezone().isoformat(timespec="minutes")
        console.print(f"#{done.id} {inert(done.slug)} starts at {at}")


def _item_id(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 2**53:
        raise ConfigError("ID", f"expected an item id (a positive integer), got {text!r}")
    return int(text)


def _state(item: ItemOut) -> str:
    hold = f", [yellow]{item.hold.value}[/]: {first_line(item.hold_reason, 80)}" if item.hold else ""
    return f"[bold]{item.stage.value}[/]{hold}{' (frozen)' if item.frozen else ''}"
