"""``gangline logs``: one run's agent events, replayed and (with -f) followed live, from the server or the log file."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import msgspec
import typer

from gangline.agents.processes import start_ticks
from gangline.agents.runlog import replay
from gangline.cli.common import WATCHING, actor, console, err_console, initialised, opened
from gangline.cli.render import Renderer
from gangline.cli.text import inert
from gangline.core.errors import GanglineError, NotFoundError, RunLogError
from gangline.core.events import Record, RunFinished, TextDelta, ThinkingDelta

if TYPE_CHECKING:
    from gangline.cli.client import Client
    from gangline.core.records import RunRow
    from gangline.core.wire import RunOut
    from gangline.store import Store


POLL_S = 0.25  # following a log file without a server: how often to look for new lines
GONE_S = 15.0  # the agent's process is gone and the log silent this long: nothing will finish the run
UNSPAWNED_S = 60.0  # a live run with no process recorded this long after it started was left by a crash
PAGE = 5000

_encoder = msgspec.json.Encoder()
_record = msgspec.json.Decoder(Record)


class _LogPage(msgspec.Struct):
    more: bool
    next_after: int
    records: list[Record]


_pages = msgspec.json.Decoder(_LogPage)
Emit = Callable[[Record], None]


def register(app: typer.Typer) -> None:
    app.command(rich_help_panel=WATCHING)(logs)


def logs(
    target: Annotated[str, typer.Argument(metavar="RUN_OR_ITEM", help="A run id (3-coder-1), or an item id.")],
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Follow a live run until it ends.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the records as JSON lines.")] = False,
) -> None:
    """Show a run's agent events: streamed text, thinking (dimmed), tool calls and their results.

    An item id shows the item's latest run. With -f a live run is followed as it happens, and the
    command ends when the run does (Ctrl-C stops following; the run goes on).
    """
    from gangline.cli.client import find_server

    paths = initialised()
    emit, finish = _printer(as_json)
    server = find_server(paths, os.environ, actor())
    try:
        if server is not None:
            err_console.print(f"via server {server.url}", style="dim", markup=False)
            run: RunOut | RunRow = _server_run(server, target)
            _header(run, as_json)
            if follow:
                _follow_server(server, run.id, emit)
            else:
                _page_server(server, run.id, emit)
        else:
            with opened(paths) as store:
                stored = _store_run(store, target)
                _header(stored, as_json)
                _read_file(store, stored, follow, emit)
    finally:
        finish()
        if server is not None:
            server.close()


def _printer(as_json: bool) -> tuple[Emit, Callable[[], None]]:
    """Where records go (rendered, or JSON lines) and what ends the output tidily."""
    if as_json:

        def write(record: Record) -> None:
            sys.stdout.write(_encoder.encode(record).decode() + "\n")
            sys.stdout.flush()  # a follower reads each record as it comes

        return write, lambda: None
    renderer = Renderer(console)
    last: list[Record] = []

    def render(record: Record) -> None:
        renderer.render(record)
        last[:] = [record]

    def finish() -> None:
        if last and isinstance(last[0].event, (TextDelta, ThinkingDelta)):
            console.print()  # a streamed line the run never finished

    return render, finish


def _header(run: RunOut | RunRow, as_json: bool) -> None:
    if as_json:
        return
    state = run.outcome.value if run.outcome else "live"
    whose = f"item #{run.item_id}" if run.item_id is not None else "the chat agent"
    header = f"run {run.id} · {run.role.value} ({run.profile}) · {whose} · {state}"
    console.print(inert(header), style="dim")


# --- through the server --------------------------------------------------------------------------


def _server_run(server: Client, target: str) -> RunOut:
    from gangline.core.wire import RunOut

    if target.isdigit():
        server.call("GET", f"/api/items/{target}")  # a missing item says so
        runs = server.fetch(list[RunOut], "GET", "/api/runs", params={"item": target})
        if not runs:
            raise _no_runs(int(target))
        return runs[-1]
    return server.fetch(RunOut, "GET", f"/api/runs/{target}")


def _page_server(server: Client, run_id: str, emit: Emit) -> None:
    after = 0
    while True:
        raw = server.call_raw("GET", f"/api/runs/{run_id}/log", params={"after": after, "limit": PAGE})
        try:
            page = _pages.decode(raw)
        except msgspec.DecodeError as err:
            raise GanglineError(f"the server's log page is not what this gangline expects: {err}") from None
        for record in page.records:
            emit(record)
        if not page.more:
            return
        after = page.next_after


def _follow_server(server: Client, run_id: str, emit: Emit) -> None:
    for message in server.stream(f"/api/runs/{run_id}/events"):
        if message.event == "end":
            return
        if message.event == "gap":
            continue  # we fell behind; the server goes on from the log, so nothing is missing
        try:
            emit(_record.decode(message.data))
        except msgspec.DecodeError as err:
            raise GanglineError(f"the server sent a record this gangline cannot read: {err}") from None
    raise GanglineError(
        f"the server ended the stream before run {run_id} ended (is it shutting down?); "
        f"`gangline logs -f {run_id}` picks it up again"
    )


# --- from the log file ---------------------------------------------------------------------------


def _store_run(store: Store, target: str) -> RunRow:
    if target.isdigit():
        runs = store.runs(int(target))
        if not runs:
            store.get_item(int(target))  # a missing item says so
            raise _no_runs(int(target))
        return runs[-1]
    return store.get_run(target)


def _no_runs(item_id: int) -> NotFoundError:
    err = NotFoundError("run of item", item_id)
    err.args = (f"item {item_id} has no runs yet",)
    return err


def _read_file(store: Store, run: RunRow, follow: bool, emit: Emit) -> None:
    """The log's records; with ``follow``, more as the file grows, until the run's row is closed.

    Without a server only ``gangline run`` can be running the agent, in another process, so
    the file is polled. A run whose process is gone (its runner was killed) never closes: it
    is left once its process has been gone and its log quiet for ``GONE_S``.
    """
    if not run.live:  # a finished run's log, maybe compressed since (or removed: RunLogError says so)
        for record in replay(Path(run.log_path)):
            emit(record)
        return
    tail = _Tail(Path(run.log_path))
    heard = time.monotonic()
    while True:
        for record in tail.read_new():
            heard = time.monotonic()
            emit(record)
            if isinstance(record.event, RunFinished):
                return
        if not follow:
            return
        current = store.get_run(run.id)
        if not current.live:
            for record in tail.read_new():  # what the runner wrote before it closed the row
                emit(record)
            return
        if _abandoned(current, time.monotonic() - heard):
            err_console.print(
                f"run {current.id}'s agent is gone and nothing will finish it (gangline stopped while it ran); "
                "the next gangline serve or run closes it as crashed",
                style="yellow",
                markup=False,
            )
            raise typer.Exit(1)
        time.sleep(POLL_S)


def _abandoned(run: RunRow, quiet_s: float) -> bool:
    if run.pid is None:
        return time.time() - run.started_at > UNSPAWNED_S
    alive = run.start_ticks is None or start_ticks(run.pid) == run.start_ticks  # the pid was not reused
    return not alive and quiet_s > GONE_S


class _Tail:
    """The complete lines a growing run log gained since the last read; a line being written waits."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0

    def read_new(self) -> Iterator[Record]:
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                data = f.read()
        except FileNotFoundError:
            return  # the run's row is written before its log
        except OSError as err:
            raise RunLogError(self.path, f"cannot read: {err.strerror}") from None
        end = data.rfind(b"\n") + 1
        self.offset += end
        for line in data[:end].splitlines():
            try:
                yield _record.decode(line)
            except msgspec.DecodeError as err:
                raise RunLogError(self.path, f"a line is not a record: {err}") from None
