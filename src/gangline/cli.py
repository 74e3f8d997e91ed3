"""The ``gangline`` command line: the edge where settings are read and errors become exit codes."""

from __future__ import annotations

import asyncio
import getpass
import json
import logging
import os
import signal
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from pydantic import BaseModel, ValidationError
from rich.console import Console
from typer.exceptions import TyperException

from gangline import logs
from gangline.bench import ingest, pipeline
from gangline.bus import Bus
from gangline.config import AgentProfile, CliKind, QaMode, Role, RunnerSettings, parse_model
from gangline.demo import claude_is_configured, run_demo
from gangline.errors import ConfigError, GanglineError, NotFoundError
from gangline.events import RunOutcome
from gangline.itemfile import ItemFile, export_items, read_item_dir, read_item_file
from gangline.items import Item, ItemDraft, ItemPatch, Kind, describe_validation_error, template
from gangline.narrate import (
    first_line,
    follow_pipeline,
    inert,
    items_table,
    last_gates,
    money,
    print_item,
)
from gangline.orchestrator import Orchestrator
from gangline.project import ProjectConfig, ProjectPaths, find_root, load_project
from gangline.prompts import GUIDE
from gangline.render import Renderer
from gangline.runlog import replay
from gangline.runner import Runner, RunRequest
from gangline.scaffold import init_project
from gangline.stages import Stage
from gangline.store import Store, open_sqlite
from gangline.worktrees import branch_name

_M = TypeVar("_M", bound=BaseModel)
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

# The draft field each `gangline add` option fills, to name the option in an error.
_OPTION_OF = {
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


def _exit_for(outcome: RunOutcome) -> int:
    return 0 if outcome is RunOutcome.SUCCEEDED else 1


# --- setting up and adding work ----------------------------------------------------------------


@app.command()
def init(
    path: Annotated[Path, typer.Argument(help="A directory inside the git repository (default: here).")] = Path("."),
) -> None:
    """Set gangline up in a git repository: write .gangline/ (project.toml, guide.md, .gitignore)."""
    result = init_project(path, dict(os.environ))
    console.print(f"Set up gangline in {inert(str(result.root))} (base branch {inert(result.base_branch)}):")
    for created in result.created:
        console.print(f"  created {inert(str(created.relative_to(result.root)))}")
    console.print(
        "Next steps:\n"
        "  1. edit .gangline/project.toml: your coder agent, the gates (your tests) and the QA mode\n"
        "  2. commit .gangline/project.toml and .gangline/guide.md\n"
        '  3. add work:  gangline add "Add a login page" --criterion "a user can log in"\n'
        "  4. run it:    gangline run"
    )


@app.command()
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
    from_file: Annotated[Path | None, typer.Option(help="Add the item a Markdown item file describes.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the new item as JSON.")] = False,
) -> None:
    """Add a work item to the backlog."""
    paths, config = _project()
    if from_file is not None:
        given = [title, kind, body, body_file, criterion, depends_on, priority, agent, qa]
        if any(value is not None for value in given) or frozen:
            raise ConfigError("--from-file", "takes the whole item from the file; give no TITLE or item options")
        with _opened(paths) as store:
            items = _import(store, config, [(from_file, read_item_file(from_file))], update=False, quiet=True)
        if not items:
            raise typer.Exit(1)
        _print_added(items[0], as_json)
        return
    draft = _draft_from_options(title, kind, body, body_file, criterion, depends_on, priority, agent, qa, frozen)
    _check_agent(config, draft.pinned_agent, "--agent")
    with _opened(paths) as store:
        try:
            item = store.create_item(draft, _actor())
        except ConfigError as err:
            raise _renamed(err, "--depends-on") if err.field == "depends_on" else err from None
    _print_added(item, as_json)


def _draft_from_options(
    title: str | None, kind: str | None, body: str | None, body_file: Path | None, criteria: list[str] | None,
    depends_on: list[int] | None, priority: int | None, agent: str | None, qa: str | None, frozen: bool,
) -> ItemDraft:  # fmt: skip
    if title is None:
        raise ConfigError("TITLE", "is required (or give --from-file ITEM.md)")
    item_kind = _choice(Kind, kind or Kind.STORY.value, "--kind")
    if body is not None and body_file is not None:
        raise ConfigError("--body-file", "give --body or --body-file, not both")
    if body_file is not None:
        body = _read_text(body_file, "--body-file")
    template_body, template_criteria = template(item_kind)
    data = {
        "kind": item_kind,
        "title": title,
        "body": template_body if body is None else body,
        "criteria": tuple(criteria) if criteria else template_criteria,
        "depends_on": tuple(depends_on or ()),
        "priority": priority or 0,
        "pinned_agent": agent,
        "qa_mode": _choice(QaMode, qa, "--qa") if qa is not None else None,
        "frozen": frozen,
    }
    try:
        return ItemDraft.model_validate(data)
    except ValidationError as err:
        location, message = describe_validation_error(err)
        key = location.split("[", 1)[0].split(".", 1)[0]
        raise ConfigError(_OPTION_OF.get(key, location), message) from None


def _print_added(item: Item, as_json: bool) -> None:
    if as_json:
        _print_json(_item_json(item))
        return
    waits = f", after {', '.join(f'#{d}' for d in item.depends_on)}" if item.depends_on else ""
    frozen = " (frozen)" if item.state.frozen else ""
    console.print(f"Added [bold]#{item.id} {inert(item.slug)}[/] ({item.kind.value}) to the backlog{frozen}{waits}")


@app.command("import")
def import_files(
    paths: Annotated[list[Path], typer.Argument(help="Item files (.md) or directories of them.")],
    update: Annotated[bool, typer.Option("--update", help="Change existing items the files name by id.")] = False,
) -> None:
    """Add items from Markdown item files; a file naming an existing id needs --update to change it."""
    project, config = _project()
    files: list[tuple[Path, ItemFile]] = []
    for path in paths:  # parse every file first: a bad one stops the import before anything is written
        files.extend(read_item_dir(path) if path.is_dir() else [(path, read_item_file(path))])
    with _opened(project) as store:
        done = _import(store, config, files, update, quiet=False)
    if len(done) < len(files):
        raise typer.Exit(1)


def _import(
    store: Store, config: ProjectConfig, files: list[tuple[Path, ItemFile]], update: bool, quiet: bool
) -> list[Item]:
    """Create or (with ``update``) edit one item per file; return the items written."""
    written = []
    for path, item_file in files:
        where = inert(str(path))
        _check_agent(config, item_file.draft.pinned_agent, f"{path}: pinned_agent")
        existing = _existing(store, item_file.id)
        if existing is not None and not update:
            console.print(f"[yellow]skipped[/] {where}: item #{existing.id} exists; pass --update to change it")
            continue
        if existing is not None:
            item = store.edit_item(existing.id, _patch(item_file.draft), _actor())
            said = f"updated #{item.id} {inert(item.slug)} from {where}"
            if item_file.draft.frozen != item.state.frozen:
                said += " (frozen is not changed by an import)"
        else:
            item = store.create_item(item_file.draft, _actor())
            said = f"added #{item.id} {inert(item.slug)} ({item.kind.value}) from {where}"
            if item_file.id is not None:
                said += f" (the file's id {item_file.id} is not in this project)"
        if not quiet:
            console.print(said)
        written.append(item)
    return written


def _existing(store: Store, item_id: int | None) -> Item | None:
    if item_id is None:
        return None
    try:
        return store.get_item(item_id)
    except NotFoundError:
        return None


def _patch(draft: ItemDraft) -> ItemPatch:
    """Everything the file says, as a patch; an optional field the file leaves empty is cleared."""
    cleared = tuple(name for name in ("pinned_agent", "qa_mode") if getattr(draft, name) is None)
    values = draft.model_dump(exclude={"frozen", *cleared})
    return ItemPatch.model_validate({**values, "clear": cleared})


@app.command()
def export(
    directory: Annotated[Path, typer.Argument(help="Where to write one <id>-<slug>.md file per item.")],
    show_all: Annotated[bool, typer.Option("--all", help="Include archived items.")] = False,
) -> None:
    """Write items as Markdown item files, to review or keep in the repository."""
    paths = _initialised()
    with _opened(paths) as store:
        items = [i for i in store.list_items() if show_all or i.stage is not Stage.ARCHIVED]
    for path in export_items(items, directory):
        console.print(f"wrote {inert(str(path))}")
    console.print(f"Exported {len(items)} item(s) to {inert(str(directory))}")


# --- looking at work ---------------------------------------------------------------------------


@app.command("ls")
def list_items(
    stage: Annotated[list[str] | None, typer.Option(help="Only items in this stage (repeatable).")] = None,
    show_all: Annotated[bool, typer.Option("--all", help="Include archived items.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON array.")] = False,
) -> None:
    """List work items with their stage, hold, retries and cost so far."""
    stages = [_choice(Stage, s, "--stage") for s in stage or ()]
    paths = _initialised()
    with _opened(paths) as store:
        items = store.list_items(stages or None)
        costs = _costs(store)
    if not stages and not show_all:
        items = [i for i in items if i.stage is not Stage.ARCHIVED]
    if as_json:
        _print_json([_item_json(i) | {"cost_usd": costs.get(i.id, 0.0)} for i in items])
    elif items:
        console.print(items_table(items, costs))
    else:
        console.print('No items. Add one with: gangline add "what needs doing"')


@app.command()
def show(
    item_id: Annotated[int, typer.Argument(metavar="ID", help="The item's id.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show one item: its text, state, transitions, runs, last gate results and cost."""
    paths = _initialised()
    with _opened(paths) as store:
        item = store.get_item(item_id)
        transitions = [e for e in store.events_after(0, limit=100_000, item_id=item_id) if e.kind == "transition"]
        runs = store.runs(item_id)
        gates = last_gates(store.gate_results(item_id))
        cost = sum(row.cost_usd for row in store.ledger("item", item_id))
    if as_json:
        history = {"transitions": [asdict(e) for e in transitions], "runs": [asdict(r) for r in runs]}
        extra = {"branch": branch_name(item.id, item.slug), "cost_usd": cost, "gates": [asdict(g) for g in gates]}
        _print_json(_item_json(item) | extra | history)
        return
    print_item(console, item, transitions, runs, gates)
    console.print(f"Cost so far: {money(cost) if cost else '$0'} over {len(runs)} run(s)")


# --- running the pipeline ----------------------------------------------------------------------


@app.command()
def run(
    until_idle: Annotated[
        bool, typer.Option("--until-idle", help="Stop once no item can move; then summarise.")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", help="Do not narrate each event.")] = False,
) -> None:
    """Serve the pipeline: take items backlog → coding → qa → merge → done, narrating each change.

    Without --until-idle it runs until Ctrl-C or SIGTERM, which stop the running agents first.

    Exit codes:
      0  every item is done (or archived)
      1  some item is not done: the summary names it and why
      2  a configuration error
      5  an illegal transition or a conflicting change
      8  another gangline server is running on this repository
      130 / 143  stopped by SIGINT / SIGTERM
    """
    paths = _initialised()
    env = dict(os.environ)
    config = load_project(paths, env)
    raise typer.Exit(asyncio.run(_serve(paths, config, env, until_idle, quiet)))


async def _serve(paths: ProjectPaths, config: ProjectConfig, env: dict[str, str], until_idle: bool, quiet: bool) -> int:
    with _opened(paths) as store:
        orch = Orchestrator(paths, config, store, env, guide=_guide(paths))
        stopped_by = await _serve_narrated(orch, store.last_event_id(), until_idle, quiet)
        items = [i for i in store.list_items() if i.stage is not Stage.ARCHIVED]
        costs = _costs(store)
    if items:
        console.print(items_table(items, costs, title="Board"))
    if stopped_by is not None:
        console.print(f"stopped by {signal.Signals(stopped_by).name}")
        return 128 + stopped_by
    unfinished = [i for i in items if i.stage is not Stage.DONE]
    if not unfinished:
        console.print(f"[green]All {len(items)} item(s) are done.[/]")
        return 0
    for item in unfinished:
        why = f"{item.state.hold.value}: {first_line(item.state.hold_reason)}" if item.state.hold else "waiting"
        console.print(f"[yellow]#{item.id} {inert(item.slug)} is not done[/]: {item.stage.value}, {why}")
    return 1


async def _serve_narrated(orch: Orchestrator, after_id: int, until_idle: bool, quiet: bool) -> int | None:
    """Serve (and narrate) until serve returns or a signal asks to stop; the signal's number, if any."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    received: list[int] = []

    def on_signal(signum: int) -> None:
        received.append(signum)
        stop.set()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)  # a second Ctrl-C is a plain KeyboardInterrupt: stop now

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal, sig)
    try:
        async with asyncio.TaskGroup() as tg:
            serving, stopping = tg.create_task(orch.serve(until_idle)), tg.create_task(stop.wait())
            narrating = None if quiet else tg.create_task(follow_pipeline(orch, console, after_id))
            await asyncio.wait([serving, stopping], return_when=asyncio.FIRST_COMPLETED)
            serving.cancel()  # serve() stops its runs on the way out...
            stopping.cancel()
            await asyncio.wait([serving])
            if narrating is not None:
                narrating.cancel()  # ...and the narrator tells how they ended before it goes
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    return received[0] if received else None


def _guide(paths: ProjectPaths) -> str:
    try:
        return paths.guide_file.read_text(encoding="utf-8")
    except FileNotFoundError:
        return GUIDE
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(str(paths.guide_file), f"cannot be read: {err}") from None


@app.command()
def demo(
    agent: Annotated[
        str, typer.Option(help="auto, claude or fake. auto uses claude when it is installed and configured.")
    ] = "auto",
    model: Annotated[str, typer.Option(help="Model for the real claude CLI.")] = "sonnet",
) -> None:
    """Take a small backlog through the whole pipeline on a throwaway git repository, live."""
    env = dict(os.environ)
    if agent == "auto":
        kind = CliKind.CLAUDE if claude_is_configured(env) else CliKind.FAKE
    else:
        kind = _choice(CliKind, agent, "--agent")
    all_done = asyncio.run(run_demo(console, kind, model, env))
    raise typer.Exit(0 if all_done else 1)


@app.command()
def agent(
    prompt: Annotated[str, typer.Argument(help="What the agent should do.")],
    cwd: Annotated[Path, typer.Option(help="Working directory for the agent.")] = Path("."),
    agent: Annotated[str, typer.Option(help="claude or fake.")] = "claude",
    binary: Annotated[str | None, typer.Option(help="Path of the agent CLI.")] = None,
    model: Annotated[str | None, typer.Option()] = None,
    resume: Annotated[str | None, typer.Option(help="Session id to resume.")] = None,
    max_turns: Annotated[int | None, typer.Option()] = None,
    max_budget_usd: Annotated[float | None, typer.Option()] = None,
    inactivity_timeout: Annotated[float, typer.Option(help="Seconds without output before the run is killed.")] = 300.0,
    log_dir: Annotated[Path, typer.Option(help="Where run logs go.")] = Path(".gangline/runs"),
    extra_arg: Annotated[list[str] | None, typer.Option(help="Extra argument for the CLI (repeatable).")] = None,
) -> None:
    """Run one agent in a directory, outside the pipeline, and render its events live."""
    profile = _build(
        AgentProfile,
        "profile",
        name=agent,
        cli=_choice(CliKind, agent, "--agent"),
        command=binary,
        model=model,
        max_turns=max_turns,
        max_budget_usd=max_budget_usd,
        extra_args=tuple(extra_arg or ()),
    )
    settings = _build(RunnerSettings, "settings", inactivity_timeout_s=inactivity_timeout)
    run_id = f"run-{uuid.uuid4().hex[:12]}"

    async def go() -> RunOutcome:
        runner = Runner(settings, log_dir, os.environ)
        bus = Bus()
        renderer = Renderer(console)
        sub = bus.subscribe()

        async def show() -> None:
            async for record in sub:
                renderer.render(record)

        async with asyncio.TaskGroup() as tg:
            tg.create_task(show())
            summary = await runner.run(RunRequest(run_id, profile, prompt, cwd.resolve(), resume), bus)
        console.print(f"[dim]event log: {summary.log_path}[/]")
        return summary.outcome

    raise typer.Exit(_exit_for(asyncio.run(go())))


@app.command("log")
def show_log(
    path: Annotated[Path, typer.Argument(help="A run log (.jsonl).")],
    after: Annotated[int, typer.Option(help="Show only events after this id.")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print records as JSON lines.")] = False,
) -> None:
    """Replay a run's event log."""
    import msgspec

    renderer = Renderer(console)
    for record in replay(path, after):
        if as_json:
            sys.stdout.write(msgspec.json.encode(record).decode() + "\n")
        else:
            renderer.render(record)


@bench_app.command("ingest")
def bench_ingest(
    events: Annotated[int, typer.Option(min=10, help="How many stream-json lines to push through.")] = 200_000,
    transcript: Annotated[Path | None, typer.Option(help="Transcript to cycle (default: the shipped one).")] = None,
) -> None:
    """Fake CLI in a real PTY -> parse -> typed events -> durable log -> bus with 4 subscribers."""
    figures = asyncio.run(ingest(events, os.environ, transcript))
    print(json.dumps(figures.as_dict()))


@bench_app.command("pipeline")
def bench_pipeline(
    items: Annotated[int, typer.Option(min=1, help="Items to take through the whole pipeline.")] = 50,
    backlog: Annotated[int, typer.Option(min=0, help="Items left waiting in the backlog all along.")] = 500,
) -> None:
    """Items through the whole pipeline with fake agents: items/min, coder-exit -> QA-spawn latency, tick cost."""
    figures = asyncio.run(pipeline(items, backlog, os.environ))
    print(json.dumps(figures.as_dict()))


# --- shared ------------------------------------------------------------------------------------


def _project() -> tuple[ProjectPaths, ProjectConfig]:
    paths = _initialised()
    return paths, load_project(paths, dict(os.environ))


def _initialised() -> ProjectPaths:
    """The project holding the working directory; ConfigError when gangline is not set up in it."""
    paths = ProjectPaths(find_root(Path.cwd()))
    if not paths.config_file.is_file():
        raise ConfigError(str(paths.config_file), "not found; run `gangline init` in the repository first")
    return paths


@contextmanager
def _opened(paths: ProjectPaths) -> Iterator[Store]:
    # No server owns the database yet: the CLI writes it directly, each change in its own transaction.
    store = open_sqlite(paths.db_file)
    try:
        yield store
    finally:
        store.close()


def _actor() -> str:
    with suppress(OSError, KeyError):
        return getpass.getuser()
    return "person"


def _check_agent(config: ProjectConfig, name: str | None, option: str) -> None:
    if name is None:
        return
    profile = config.profile(name)
    coders = ", ".join(p.name for p in config.profiles_for(Role.CODER))
    if profile is None:
        raise ConfigError(option, f"no agent profile named {name!r} in project.toml; the coder profiles are: {coders}")
    if profile.role is not Role.CODER:
        raise ConfigError(option, f"{name!r} is a {profile.role.value} profile; pin a coder profile ({coders})")


def _choice(enum: type[_E], value: str, option: str) -> _E:
    try:
        return enum(value)
    except ValueError:
        expected = ", ".join(member.value for member in enum)
        raise ConfigError(option, f"expected one of {expected}, got {value!r}") from None


def _renamed(err: ConfigError, field: str) -> ConfigError:
    return ConfigError(field, str(err).removeprefix(f"{err.field}: "))


def _read_text(path: Path, option: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(option, f"cannot read {str(path)!r}: {err}") from None


def _costs(store: Store) -> dict[int, float]:
    return {int(row.key): row.cost_usd for row in store.ledger("item")}


def _item_json(item: Item) -> dict[str, Any]:
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
        "created_at": item.created_at,
        "updated_at": item.updated_at,
    }


def _print_json(value: object) -> None:
    # Straight to stdout, never through rich: JSON is for programs, and rich would read "[...]" as markup.
    sys.stdout.write(json.dumps(value, indent=2, default=str) + "\n")


def _build(cls: type[_M], where: str, **values: object) -> _M:
    """Validate command-line values into a config object; omitted options keep defaults."""
    built = parse_model(cls, {k: v for k, v in values.items() if v is not None}, where)
    assert isinstance(built, cls)
    return built


def _first_leaf(group: BaseExceptionGroup[GanglineError]) -> GanglineError:
    first = group.exceptions[0]
    return _first_leaf(first) if isinstance(first, BaseExceptionGroup) else first


def _fail(err: GanglineError) -> None:
    err_console.print(f"[bold red]error:[/] {inert(str(err))}")
    sys.exit(err.exit_code)


def main() -> None:
    logs.configure(logging.WARNING)
    try:
        # Without standalone mode a command's typer.Exit comes back as the return value.
        code = app(standalone_mode=False)
        sys.exit(code if isinstance(code, int) else 0)
    except GanglineError as err:
        _fail(err)
    except BaseExceptionGroup as group:  # raised through a task group
        matched, _rest = group.split(GanglineError)
        if matched is None:
            raise
        _fail(_first_leaf(matched))
    except typer.Exit as exit_:
        sys.exit(exit_.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        err_console.print("interrupted")
        sys.exit(130)
    except TyperException as err:  # usage errors: unknown option, bad value, ...
        show = getattr(err, "show", None)
        if show is not None:
            show()
        sys.exit(getattr(err, "exit_code", 2))
