"""Watching the pipeline: ``status``, ``cost`` and the agents' ``permissions`` requests (list, answer)."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.table import Table

from gangline.cli.common import WATCHING, console, from_options, print_json
from gangline.cli.door import NO_LOG
from gangline.cli.items import open_door
from gangline.cli.text import clock_time, inert
from gangline.core.errors import ConfigError
from gangline.pipeline.permissions import NOT_SERVED

AsJson = Annotated[bool, typer.Option("--json", help="Print JSON.")]
# A person types "always-allow"; the order says always_allow.
_DECISIONS = {"allow": "allow", "deny": "deny", "always-allow": "always_allow"}


def register(app: typer.Typer) -> None:
    app.command(rich_help_panel=WATCHING)(status)
    app.command(rich_help_panel=WATCHING)(cost)
    app.command("server-log", rich_help_panel=WATCHING)(server_log)
    permissions_app = typer.Typer(help="Agents' tool calls waiting for a person: list them (the default), answer one.")
    permissions_app.callback(invoke_without_command=True)(permissions)
    permissions_app.command("list")(list_permissions)
    permissions_app.command("answer")(answer_permission)
    app.add_typer(permissions_app, name="permissions", rich_help_panel=WATCHING)


def status(as_json: AsJson = False) -> None:
    """The pipeline at a glance: items per stage and hold, live runs, timers, and who drives it."""
    from gangline.cli.tables import print_status

    with open_door() as door:
        current = door.status()
    if as_json:
        print_json(current)
    else:
        print_status(console, current)


def server_log(
    level: Annotated[str, typer.Option(help="info, warning or error: this and above.")] = "info",
    after: Annotated[int, typer.Option(help="Only entries after this one (the last id you saw).")] = 0,
    limit: Annotated[int, typer.Option(help="At most this many.")] = 200,
    as_json: AsJson = False,
) -> None:
    """The running server's recent log (its last 2,000 lines, from its memory), oldest first."""
    from gangline.core.logs import LogQuery

    query = from_options(LogQuery, {"level": level, "after": after, "limit": limit},
                         {"level": "--level", "after": "--after", "limit": "--limit"})  # fmt: skip
    with open_door(server_only=NO_LOG) as door:
        entries = door.server_log(query)
    if as_json:
        print_json(entries)
        return
    if not entries:
        console.print("Nothing logged at that level.")
    for entry in entries:
        about = " ".join(f"{k}={inert(str(v))}" for k, v in entry.fields.items())
        line = f"{entry.id} {clock_time(entry.at)} {entry.level.upper()} {inert(entry.message)} {about}"
        console.print(line.rstrip(), highlight=False)


def cost(
    by: Annotated[str, typer.Option(help="Sum per item, profile, day (UTC) or run.")] = "item",
    item: Annotated[int | None, typer.Option(help="Only this item's runs.")] = None,
    as_json: AsJson = False,
) -> None:
    """Tokens and cost from the ledger, summed per item, profile, day or run, with the total."""
    from gangline.cli.tables import costs_table
    from gangline.core.wire import CostQuery

    query = from_options(CostQuery, {"by": by, "item_id": item}, {"by": "--by", "item_id": "--item"})
    with open_door() as door:
        costs = door.costs(query.by, query.item_id)
    if as_json:
        print_json(costs)
    else:
        console.print(costs_table(costs))


def permissions(ctx: typer.Context, as_json: AsJson = False) -> None:
    """Agents' tool calls waiting for a person (needs a running server)."""
    if ctx.invoked_subcommand is None:
        list_permissions(as_json)


def list_permissions(as_json: AsJson = False) -> None:
    """List pending permission requests."""
    with open_door(server_only=NOT_SERVED) as door:
        pending = door.pending_permissions()
    if as_json:
        print_json(pending)
        return
    if not pending:
        console.print("No permission requests are waiting.")
        return
    table = Table(title="Waiting for a person", title_justify="left")
    for column in ("id", "item", "run", "tool", "input", "denied at"):
        table.add_column(column)
    for ask in pending:
        shown = inert(json.dumps(ask.input, ensure_ascii=False), limit=80)
        expires = clock_time(ask.expires_at) if ask.expires_at else "-"
        table.add_row(inert(ask.id), f"#{ask.item_id}", inert(ask.run_id), inert(ask.tool_name), shown, expires)
    console.print(table)


def answer_permission(
    request_id: Annotated[str, typer.Argument(metavar="ID", help="The request's id (gangline permissions).")],
    decision: Annotated[str, typer.Argument(metavar="DECISION", help="allow, deny or always-allow.")],
    message: Annotated[str | None, typer.Option(help="For deny: why, in words the agent can act on.")] = None,
    updated_input: Annotated[
        str | None, typer.Option("--input", help="For allow: a JSON object whose keys replace the tool's input.")
    ] = None,
) -> None:
    """Answer a pending permission request; the agent's tool call goes on with the answer."""
    from gangline.core.wire import PermissionAnswer

    values: dict[str, Any] = {"decision": _DECISIONS.get(decision, decision), "message": message}
    if updated_input is not None:
        try:
            values["updated_input"] = json.loads(updated_input)
        except ValueError as err:
            raise ConfigError("--input", f"is not valid JSON: {err}") from None
    options = {"decision": "DECISION", "message": "--message", "updated_input": "--input"}
    answer = from_options(PermissionAnswer, values, options)
    with open_door(server_only=NOT_SERVED) as door:
        done = door.answer_permission(request_id, answer)
    rule = f"; saved the rule {inert(done.rule)}" if done.rule else ""
    console.print(f"{done.decision.value}: {inert(done.request.tool_name)} for run {inert(done.request.run_id)}{rule}")
