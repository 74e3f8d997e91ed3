"""A person's orders on the command line (edit, start, stop, approve, reject, block, ...), and the pipeline's
status, costs and permission requests: through the running server, or the store when none runs."""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated, Any, cast

import typer
from pydantic import ValidationError
from rich.table import Table

from gangline.cli.client import Client, find_server, run_json
from gangline.cli.common import actor, choice, console, err_console, initialised, opened, print_json, project
from gangline.cli.items import OPTION_OF, check_agent, connect, item_json, items_door, read_text, renamed
from gangline.cli.narrate import clock_time, first_line, inert, money
from gangline.core.errors import ConfigError, GanglineError
from gangline.core.items import Item, ItemPatch, Kind
from gangline.core.profiles import QaMode
from gangline.core.records import LedgerKey
from gangline.core.stages import Facts, Hold, IllegalTransition, Stage, Trigger, apply
from gangline.core.validation import describe_validation_error
from gangline.pipeline.orchestrator import Orchestrator
from gangline.project.config import ProjectConfig, ProjectPaths
from gangline.store import Store

ACTING = "Acting on an item"
WATCHING = "Watching the pipeline"


@dataclass(frozen=True)
class ItemAction:
    """One of ``POST /api/items/{id}/{name}``: the trigger it asks the orchestrator for, and how to say it."""

    name: str
    trigger: Trigger
    done: str  # "approved #3 ..."
    help: str
    default_reason: str | None = None  # holds need a reason; without one, say who set it


# fmt: off
ACTIONS = (
    ItemAction("start", Trigger.START, "started", "Start an item now: backlog → coding, whatever it waits for."),
    ItemAction("stop", Trigger.BLOCK, "stopped", "Stop an item's run and block it; unblock lets the pipeline go on."),
    ItemAction("approve", Trigger.QA_PASSED, "approved", "Approve an item waiting for a person's QA: qa → merge."),
    ItemAction("reject", Trigger.QA_FAILED, "rejected",
               "Reject an item in QA: back to coding, the reason its coder's next prompt.", "rejected by {actor}"),
    ItemAction("block", Trigger.BLOCK, "blocked",
               "Block an item (stopping its run) until unblock.", "blocked by {actor}"),
    ItemAction("unblock", Trigger.UNBLOCK, "unblocked", "Unblock an item, with a fresh retry budget."),
    ItemAction("hold", Trigger.HOLD_FOR_REVIEW, "held",
               "Hold an item for review (stopping its run) until release.", "held for review by {actor}"),
    ItemAction("release", Trigger.RELEASE, "released", "Release an item held for review."),
    ItemAction("demote", Trigger.DEMOTE, "demoted", "Send an item back to the backlog, clearing any hold."),
    ItemAction("freeze", Trigger.FREEZE, "froze", "Freeze an item: the pipeline leaves it alone until unfreeze."),
    ItemAction("unfreeze", Trigger.UNFREEZE, "unfroze", "Unfreeze an item."),
    ItemAction("archive", Trigger.ARCHIVE, "archived", "Archive a done item (its worktree is pruned when safe)."),
    ItemAction("retry-merge", Trigger.RETRY_MERGE, "retrying the merge of", "Clear a merge failure: merge again."),
)
# fmt: on


def register(app: typer.Typer) -> None:
    """Add the action, status, cost and permission commands to ``app``."""
    app.command(rich_help_panel=ACTING)(edit)
    for action in ACTIONS:
        app.command(action.name, help=action.help, rich_help_panel=ACTING)(_command_for(action))
    app.command(rich_help_panel=WATCHING)(status)
    app.command(rich_help_panel=WATCHING)(cost)
    permissions_app = typer.Typer(help="Agents' tool calls waiting for a person: list them (the default), answer one.")
    permissions_app.callback(invoke_without_command=True)(permissions)
    permissions_app.command("list")(list_permissions)
    permissions_app.command("answer")(answer_permission)
    app.add_typer(permissions_app, name="permissions", rich_help_panel=WATCHING)


ItemId = Annotated[int, typer.Argument(metavar="ID", help="The item's id.")]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON.")]


# --- actions -------------------------------------------------------------------------------------


def _command_for(action: ItemAction) -> Callable[..., None]:
    def command(
        item_id: ItemId,
        reason: Annotated[str | None, typer.Option("--reason", "-m", help="Why, for the event log.")] = None,
    ) -> None:
        act_on(item_id, action, reason)

    return command


def act_on(item_id: int, action: ItemAction, reason: str | None) -> None:
    paths, config = project()
    with connect(paths) as server, err_console.status(f"{action.name} #{item_id}…"):
        if server is not None:
            item = server.act(item_id, action.name, reason)
        else:
            item = asyncio.run(_act_directly(paths, config, item_id, action, reason))
    console.print(f"{action.done} #{item.id} {inert(item.slug)}: now {_state(item)}")


async def _act_directly(
    paths: ProjectPaths, config: ProjectConfig, item_id: int, action: ItemAction, reason: str | None
) -> Item:
    """What ``POST /api/items/{id}/{action}`` does, without a server.

    No server, so this process's runner has no agent to stop. A ``gangline run`` in another
    process may have one: it is not stopped from here, and its result loses the compare-and-set.
    """
    who = actor()
    reason = (reason or "").strip() or None
    if action.name == "stop":
        reason = f"stopped by {who}" + (f": {reason}" if reason else "")
    elif reason is None and action.default_reason:
        reason = action.default_reason.format(actor=who)
    with opened(paths) as store:
        orch = Orchestrator(paths, config, store, dict(os.environ))
        check_legal(store.get_item(item_id), action.trigger, reason)
        return await orch.act(item_id, action.trigger, who, reason)


def check_legal(item: Item, trigger: Trigger, reason: str | None) -> None:
    """Refuse by the table before git is asked anything: approving a backlog item is illegal, not a git error."""
    try:
        apply(item.state, trigger, Facts(reason=reason, commits_ahead=1, files_changed=1))
    except IllegalTransition as err:
        raise IllegalTransition(item.state, trigger, err.why, item.id) from None


def _state(item: Item) -> str:
    state = item.state
    hold = f", [yellow]{state.hold.value}[/]: {first_line(state.hold_reason, 80)}" if state.hold else ""
    return f"[bold]{state.stage.value}[/]{hold}{' (frozen)' if state.frozen else ''}"


_CLEARS = {"agent": "pinned_agent", "qa": "qa_mode", "depends-on": "depends_on"}


def edit(
    item_id: ItemId,
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
    as_json: AsJson = False,
) -> None:
    """Change what a person wrote about an item; its stage is changed only by the actions."""
    paths, config = project()
    if body is not None and body_file is not None:
        raise ConfigError("--body-file", "give --body or --body-file, not both")
    values: dict[str, Any] = {
        "title": title,
        "kind": choice(Kind, kind, "--kind") if kind is not None else None,
        "body": read_text(body_file, "--body-file") if body_file is not None else body,
        "criteria": [{"text": text} for text in criterion] if criterion else None,
        "depends_on": tuple(depends_on) if depends_on else None,
        "priority": priority,
        "pinned_agent": agent,
        "qa_mode": choice(QaMode, qa, "--qa") if qa is not None else None,
    }
    values = {name: value for name, value in values.items() if value is not None}
    cleared = [_CLEARS.get(name) or _bad_clear(name) for name in clear or ()]
    if "depends_on" in cleared:
        cleared.remove("depends_on")
        values["depends_on"] = ()
    if not values and not cleared:
        raise ConfigError("options", "nothing to change: give --title, --kind, --body, --criterion, --depends-on, "
                          "--priority, --agent, --qa or --clear")  # fmt: skip
    check_agent(config, agent, "--agent")
    patch = _patch(values, cleared)
    with items_door(paths) as door:
        try:
            item = door.edit_item(item_id, patch)
        except ConfigError as err:
            raise renamed(err, "--depends-on") if err.field == "depends_on" else err from None
    if as_json:
        print_json(item_json(item))
    else:
        changed = ", ".join(sorted({*values, *cleared}))
        console.print(f"edited #{item.id} {inert(item.slug)}: {changed}")


def _bad_clear(name: str) -> str:
    raise ConfigError("--clear", f"expected one of {', '.join(_CLEARS)}, got {name!r}")


def _patch(values: dict[str, Any], cleared: list[str]) -> ItemPatch:
    try:
        return ItemPatch.model_validate({**values, "clear": cleared})
    except ValidationError as err:
        location, message = describe_validation_error(err)
        key = location.split("[", 1)[0].split(".", 1)[0]
        option = {**OPTION_OF, "title": "--title", "clear": "--clear"}.get(key, location)
        raise ConfigError(option, message) from None


# --- status and cost -----------------------------------------------------------------------------

# Each timer counts only in the stage where the scheduler reads it (as GET /api/status says).
_TIMERS = (("start_after", Stage.BACKLOG), ("parked_until", Stage.CODING), ("archive_at", Stage.DONE))


def status(as_json: AsJson = False) -> None:
    """The pipeline at a glance: items per stage and hold, live runs, timers, and who drives it."""
    paths = initialised()
    with connect(paths) as server:
        if server is not None:
            data = server.call("GET", "/api/status")
        else:
            with opened(paths) as store:
                data = _status_of(store)
    if as_json:
        print_json(data)
    else:
        _print_status(data)


def _status_of(store: Store) -> dict[str, Any]:
    """``GET /api/status``'s answer, read from the store: nothing drives the pipeline."""
    items = store.list_items()
    stages, holds = Counter(i.stage for i in items), Counter(i.state.hold for i in items if i.state.hold)
    timers = [
        {"item_id": i.id, "kind": kind, "at": getattr(i, kind)}
        for i in items
        for kind, stage in _TIMERS
        if i.stage is stage and getattr(i, kind) is not None
    ]
    return {
        "stages": {s.value: stages.get(s, 0) for s in Stage},
        "holds": {h.value: holds.get(h, 0) for h in Hold},
        "frozen": sum(i.state.frozen for i in items),
        "live_runs": [run_json(r) for r in store.runs(live_only=True)],
        "timers": sorted(timers, key=lambda t: cast(float, t["at"]))[:20],
        "orchestrator": {"running": False, "jobs": 0, "runs": 0},
        "last_event_id": store.last_event_id(),
    }


def _print_status(data: dict[str, Any]) -> None:
    board = Table(title="Items", title_justify="left")
    counts = [*data["stages"].items(), ("held", sum(data["holds"].values())), ("frozen", data["frozen"])]
    for name, _count in counts:
        board.add_column(name, justify="right")
    board.add_row(*(str(count) for _name, count in counts))
    console.print(board)
    holds = ", ".join(f"{count} {name}" for name, count in data["holds"].items() if count)
    if holds:
        console.print(f"held: {holds}")
    runs = data["live_runs"]
    if runs:
        table = Table(title="Live runs", title_justify="left")
        for column in ("run", "item", "role", "profile", "started", "pid"):
            table.add_column(column)
        for run in runs:
            table.add_row(inert(run["id"]), f"#{run['item_id']}", run["role"], inert(run["profile"]),
                          clock_time(run["started_at"]), str(run["pid"] or "-"))  # fmt: skip
        console.print(table)
    else:
        console.print("No live runs.")
    if data["timers"]:
        table = Table(title="Timers", title_justify="left")
        for column in ("item", "what", "at"):
            table.add_column(column)
        for timer in data["timers"]:
            at = time.strftime("%Y-%m-%d %H:%M", time.localtime(timer["at"]))
            table.add_row(f"#{timer['item_id']}", timer["kind"].replace("_", " "), at)
        console.print(table)
    orch = data["orchestrator"]
    if orch["running"]:
        console.print(f"The server drives the pipeline: {orch['jobs']} job(s), {orch['runs']} agent(s) running.")
    else:
        console.print("Nothing drives the pipeline now: start it with gangline serve (or gangline run).")


def cost(
    by: Annotated[str, typer.Option(help="Sum per item, profile, day (UTC) or run.")] = "item",
    item: Annotated[int | None, typer.Option(help="Only this item's runs.")] = None,
    as_json: AsJson = False,
) -> None:
    """Tokens and cost from the ledger, summed per item, profile, day or run, with the total."""
    if by not in ("item", "profile", "day", "run"):
        raise ConfigError("--by", f"expected one of item, profile, day, run, got {by!r}")
    paths = initialised()
    with connect(paths) as server:
        if server is not None:
            data = server.call("GET", "/api/costs", params={"by": by} | ({"item": item} if item else {}))
        else:
            with opened(paths) as store:
                rows = [asdict(row) for row in store.ledger(cast(LedgerKey, by), item)]
            data = {"by": by, "rows": rows, "total_usd": sum(row["cost_usd"] for row in rows)}
    if as_json:
        print_json(data)
        return
    table = Table(title=f"Cost by {by}", title_justify="left", show_footer=True)
    sums = {name: sum(row[name] for row in data["rows"]) for name in _LEDGER_COLUMNS}
    table.add_column(by, footer="total")
    for name, header in _LEDGER_COLUMNS.items():
        shown = money(sums[name]) if name == "cost_usd" else str(sums[name])
        table.add_column(header, justify="right", footer=shown)
    for row in data["rows"]:
        key = f"#{row['key']}" if by == "item" else inert(row["key"])
        table.add_row(key, *(money(row[n]) if n == "cost_usd" else str(row[n]) for n in _LEDGER_COLUMNS))
    console.print(table if data["rows"] else "No agent runs yet: nothing has cost anything.")


_LEDGER_COLUMNS = {
    "runs": "runs",
    "input_tokens": "input",
    "output_tokens": "output",
    "cache_read_tokens": "cache read",
    "cache_write_tokens": "cache write",
    "cost_usd": "cost",
}


# --- permission requests -------------------------------------------------------------------------


@contextmanager
def _server_only(paths: ProjectPaths) -> Iterator[Client]:
    """Pending permission requests live in the server's memory: without a server there are none to see."""
    server = find_server(paths, os.environ, actor())
    if server is None:
        raise GanglineError("no server running: permission requests exist only inside a running gangline serve")
    err_console.print(f"via server {server.url}", style="dim", markup=False)
    try:
        yield server
    finally:
        server.close()


def permissions(ctx: typer.Context, as_json: AsJson = False) -> None:
    """Agents' tool calls waiting for a person (needs a running server)."""
    if ctx.invoked_subcommand is None:
        list_permissions(as_json)


def list_permissions(as_json: AsJson = False) -> None:
    """List pending permission requests."""
    with _server_only(initialised()) as server:
        pending = server.call("GET", "/api/permissions")
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
        shown = inert(json.dumps(ask["input"], ensure_ascii=False), limit=80)
        expires = clock_time(ask["expires_at"]) if ask["expires_at"] else "-"
        table.add_row(inert(ask["id"]), f"#{ask['item_id']}", inert(ask["run_id"]), inert(ask["tool_name"]), shown,
                      expires)  # fmt: skip
    console.print(table)


_DECISIONS = {"allow": "allow", "deny": "deny", "always-allow": "always_allow", "always_allow": "always_allow"}


def answer_permission(
    request_id: Annotated[str, typer.Argument(metavar="ID", help="The request's id (gangline permissions).")],
    decision: Annotated[str, typer.Argument(metavar="DECISION", help="allow, deny or always-allow.")],
    message: Annotated[str | None, typer.Option(help="For deny: why, in words the agent can act on.")] = None,
    updated_input: Annotated[
        str | None, typer.Option("--input", help="For allow: a JSON object whose keys replace the tool's input.")
    ] = None,
) -> None:
    """Answer a pending permission request; the agent's tool call goes on with the answer."""
    if decision not in _DECISIONS:
        raise ConfigError("DECISION", f"expected allow, deny or always-allow, got {decision!r}")
    body: dict[str, Any] = {"decision": _DECISIONS[decision], "message": message}
    if updated_input is not None:
        if decision == "deny":
            raise ConfigError("--input", "goes with allow or always-allow, not deny")
        try:
            body["updated_input"] = json.loads(updated_input)
        except ValueError as err:
            raise ConfigError("--input", f"is not valid JSON: {err}") from None
        if not isinstance(body["updated_input"], dict):
            raise ConfigError("--input", 'expected a JSON object, like \'{"command": "ls"}\'')
    with _server_only(initialised()) as server:
        done = server.call("POST", f"/api/permissions/{request_id}", body=body)
    ask = done["request"]
    rule = f"; saved the rule {inert(done['rule'])}" if done.get("rule") else ""
    console.print(f"{done['decision']}: {inert(ask['tool_name'])} for run {inert(ask['run_id'])}{rule}")
