"""Talking to an item's coder from the command line: ``gangline say`` and ``gangline messages``."""

from __future__ import annotations

import re
from typing import Annotated

import typer

from gangline.cli.actions import ItemId
from gangline.cli.common import ACTING, console, err_console, print_json
from gangline.cli.items import open_door
from gangline.cli.text import clock_time, inert
from gangline.core.errors import ConfigError

_COMMENT = re.compile(r"^(?P<path>.+?):(?P<line>\d+):(?P<text>.*)$", re.DOTALL)
_OPTIONS = {"text": "TEXT", "comments": "--comment"}


def register(app: typer.Typer) -> None:
    app.command(rich_help_panel=ACTING)(say)
    app.command(rich_help_panel=ACTING)(messages)


def say(
    item_id: ItemId,
    text: Annotated[str, typer.Argument(help="What to tell the coder.")] = "",
    comment: Annotated[
        list[str], typer.Option("--comment", help="PATH:LINE:TEXT, a comment on a line of the diff (repeatable).")
    ] = [],  # noqa: B006
    as_json: Annotated[bool, typer.Option("--json", help="Print the message as kept, as JSON.")] = False,
) -> None:
    """Tell the item's coder something: a live run is stopped and resumed with it in the same session; an item in
    QA goes back to coding for it, a blocked one is unblocked; in the backlog it comes with the first prompt."""
    from gangline.cli.common import as_option, from_options
    from gangline.core.messages import MessageIn

    comments = [_comment(given) for given in comment]
    message = from_options(MessageIn, {"text": text, "comments": comments}, _OPTIONS)
    with open_door() as door, err_console.status(f"telling #{item_id}'s coder…"):
        try:
            said = door.say(item_id, message)
        except ConfigError as err:
            raise as_option(err, _OPTIONS) from None
    if as_json:
        print_json(said)
    else:
        more = f" with {len(said.comments)} comment(s) on the diff" if said.comments else ""
        console.print(f"Told #{item_id}'s coder{more}; its next run takes it.")


def messages(
    item_id: ItemId, as_json: Annotated[bool, typer.Option("--json", help="Print the messages as JSON.")] = False
) -> None:
    """What people said to the item's coder, oldest first, and which run took each."""
    with open_door() as door:
        said = door.messages(item_id)
    if as_json:
        print_json(said)
        return
    if not said:
        console.print(f"Nobody has said anything to #{item_id}'s coder.")
    for message in said:
        taken = f"taken by {message.run_id}" if message.run_id else "waiting for the coder's next run"
        console.print(f"{clock_time(message.created_at)} {inert(message.actor)} ({taken}): {inert(message.text)}")
        for c in message.comments:
            console.print(f"    {inert(c.path)}:{c.line}: {inert(c.text)}")


def _comment(given: str) -> dict[str, object]:
    found = _COMMENT.match(given)
    if found is None:
        raise ConfigError("--comment", f"expected PATH:LINE:TEXT such as src/app.py:12:handle the empty list, got "
                                       f"{given!r}")  # fmt: skip
    return {"path": found["path"], "line": int(found["line"]), "text": found["text"].strip()}
