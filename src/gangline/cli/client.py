"""Finding this project's running ``gangline serve`` and talking to it: REST, SSE, and its errors as ours.

``gangline serve`` writes ``.gangline/server.json`` (``{"url", "pid"}``) once it listens and
removes it when it stops. A command reads it, checks the process is alive and that
``GET /health`` answers, and then goes through the server; otherwise it opens the store
itself. The server's JSON errors are turned back into the ``GanglineError`` the direct path
would have raised, so a command exits with the same code either way.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console

from gangline.core.errors import ConfigError, GanglineError, NotFoundError, ServerLockedError, StateConflict
from gangline.core.events import RunOutcome
from gangline.core.items import Criterion, Item, ItemDraft, ItemPatch, Kind
from gangline.core.profiles import QaMode, Role
from gangline.core.records import EventRow, GateRow, RunRow
from gangline.core.stages import Hold, IllegalTransition, ItemState, Stage, Trigger
from gangline.project.config import ProjectPaths

if TYPE_CHECKING:
    import httpx

SERVER_FILE = "server.json"
TOKEN_ENV = "GANGLINE_TOKEN"
PROBE_S = 2.0  # /health answers at once; a server that does not is not one to use
REQUEST_S = 60.0  # an action may wait on git: approve counts commits, archive prunes a worktree
STREAM_READ_S = 60.0  # the server sends a keepalive after 15 s of silence; four times that means it is gone


# --- the server file ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ServerFile:
    url: str
    pid: int


def server_file(paths: ProjectPaths) -> Path:
    return paths.state_dir / SERVER_FILE


def announce_server(paths: ProjectPaths, url: str) -> None:
    """Say where this process serves the project (``gangline serve`` calls it once it listens)."""
    path = server_file(paths)
    temporary = path.with_name(f".{SERVER_FILE}.{os.getpid()}")
    temporary.write_text(json.dumps({"url": url, "pid": os.getpid()}) + "\n", encoding="utf-8")
    os.replace(temporary, path)  # a reader sees the old file or the new one, never half of one


def withdraw_server(paths: ProjectPaths) -> None:
    """Remove the server file, but only this process's: a second server refused by the lock wrote none."""
    found = read_server_file(paths)
    if found is not None and found.pid == os.getpid():
        server_file(paths).unlink(missing_ok=True)


def read_server_file(paths: ProjectPaths) -> ServerFile | None:
    try:
        data = json.loads(server_file(paths).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("url"), str) or not isinstance(data.get("pid"), int):
        return None
    return ServerFile(data["url"], data["pid"])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: the probe decides
    return True


def find_server(paths: ProjectPaths, env: Mapping[str, str], actor: str) -> Client | None:
    """A client of the server the server file names, if that process lives and answers /health."""
    found = read_server_file(paths)
    if found is None or not _alive(found.pid):
        return None  # never started, or killed without removing its file
    client = Client(found.url, env.get(TOKEN_ENV) or None, actor)
    if client.probe():
        return client
    client.close()
    return None


@contextmanager
def reach(paths: ProjectPaths, env: Mapping[str, str], actor: str, say: Console) -> Iterator[Client | None]:
    """The running server's client, or None for the store; says which on ``say``, once, dimmed."""
    client = find_server(paths, env, actor)
    if client is None:
        where = paths.db_file.relative_to(paths.root) if paths.db_file.is_relative_to(paths.root) else paths.db_file
        say.print(f"no server running: using {where} directly", style="dim", markup=False)
    else:
        say.print(f"via server {client.url}", style="dim", markup=False)
    try:
        yield client
    finally:
        if client is not None:
            client.close()


# --- errors --------------------------------------------------------------------------------------


def error_from(status: int, body: object) -> GanglineError:
    """The ``GanglineError`` behind the server's ``{"error": {"code", "message", ...}}``; its words kept."""
    detail = body.get("error") if isinstance(body, dict) else None
    if not isinstance(detail, dict):
        return GanglineError(f"the server answered HTTP {status} without saying why")
    message = str(detail.get("message") or f"HTTP {status}")
    code = str(detail.get("code"))
    err = _typed(code, detail, message)
    if code == "unauthorized":
        message += f"; set {TOKEN_ENV} to the token the server was started with"
    err.args = (message,)  # the server's sentence, not one rebuilt from the fields
    return err


def _typed(code: str, detail: dict[str, Any], message: str) -> GanglineError:
    if code == "invalid":
        return ConfigError(str(detail.get("field") or "input"), message)
    if code in ("unauthorized", "forbidden"):
        return ConfigError(TOKEN_ENV, message)
    if code == "not_found":
        return NotFoundError("resource", "")
    if code == "illegal_transition":
        try:
            hold = Hold(detail["hold"]) if detail.get("hold") else None
            return IllegalTransition(ItemState(Stage(detail["stage"]), hold), Trigger(detail["trigger"]), message)
        except (KeyError, ValueError):
            return StateConflict(0, "?", "?")
    if code == "conflict":
        return StateConflict(0, str(detail.get("expected") or "?"), str(detail.get("current") or "?"))
    if code == "locked":
        return ServerLockedError(message)
    return GanglineError(message)


def _unexpected(what: str, err: Exception) -> GanglineError:
    return GanglineError(f"the server's {what} is not what this gangline expects ({type(err).__name__}: {err})")


# --- the client ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SseMessage:
    event: str
    data: str
    id: int | None


class Client:
    """A running server's REST API; every failure is a ``GanglineError``."""

    def __init__(self, url: str, token: str | None, actor: str) -> None:
        import httpx  # loaded only when a server runs: most commands never need it

        headers = {"X-Gangline-Actor": actor}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self.url = url
        # trust_env=False: an HTTP(S)_PROXY in the environment must not carry loopback calls away.
        self._http = httpx.Client(base_url=url, headers=headers, timeout=REQUEST_S, trust_env=False)

    def close(self) -> None:
        self._http.close()

    def probe(self) -> bool:
        import httpx

        try:
            answer = self._http.get("/health", timeout=PROBE_S)
            return isinstance(answer.json(), dict) and "ok" in answer.json()
        except (httpx.HTTPError, ValueError):
            return False

    def call_raw(self, method: str, path: str, *, params: Any = None, body: Any = None) -> bytes:
        import httpx

        try:
            answer = self._http.request(method, path, params=params, json=body)
        except httpx.HTTPError as err:
            raise GanglineError(f"the server at {self.url} did not answer {method} {path}: {err}") from None
        if not answer.is_success:
            raise error_from(answer.status_code, _json_or_none(answer))
        return answer.content

    def call(self, method: str, path: str, *, params: Any = None, body: Any = None) -> Any:
        raw = self.call_raw(method, path, params=params, body=body)
        try:
            return json.loads(raw)
        except ValueError as err:
            raise _unexpected("answer", err) from None

    def stream(self, path: str, params: Any = None) -> Iterator[SseMessage]:
        """A Server-Sent Events stream's messages, until the server ends it."""
        import httpx

        timeout = httpx.Timeout(REQUEST_S, read=STREAM_READ_S)
        try:
            with self._http.stream("GET", path, params=params, timeout=timeout) as answer:
                if not answer.is_success:
                    answer.read()
                    raise error_from(answer.status_code, _json_or_none(answer))
                yield from parse_sse(answer.iter_lines())
        except httpx.HTTPError as err:
            raise GanglineError(f"lost the server at {self.url} while reading {path}: {err}") from None

    # --- items ----------------------------------------------------------------------------------

    def list_items(self, stages: list[Stage], include_archived: bool) -> tuple[list[Item], dict[int, float]]:
        params: dict[str, Any] = {"stage": [s.value for s in stages], "all": include_archived}
        rows = self.call("GET", "/api/items", params=params)
        items = [item_from_json(row) for row in rows]
        return items, {row["id"]: float(row["cost_usd"]) for row in rows}

    def get_item(self, item_id: int) -> Item:
        return item_from_json(self.call("GET", f"/api/items/{item_id}"))

    def item_detail(self, item_id: int) -> tuple[Item, list[EventRow], list[RunRow], list[GateRow], float]:
        """``gangline show``'s pieces: the item, its transitions, runs, last gate results and cost."""
        data = self.call("GET", f"/api/items/{item_id}")
        try:
            transitions = [event_from_json(e) for e in data["transitions"]]
            runs = [run_from_json(r) for r in data["runs"]]
            gates = [gate_from_json(g, item_id) for g in data["gates"]]
            return item_from_json(data), transitions, runs, gates, float(data["cost_usd"])
        except (KeyError, TypeError) as err:
            raise _unexpected("item", err) from None

    def create_item(self, draft: ItemDraft, start_after: float | None) -> Item:
        body = draft.model_dump(mode="json")
        if start_after is not None:
            body["start_after"] = start_after  # seconds since the epoch: pydantic reads them as UTC
        return item_from_json(self.call("POST", "/api/items", body=body))

    def edit_item(self, item_id: int, patch: ItemPatch) -> Item:
        body = patch.model_dump(mode="json", exclude_defaults=True)
        return item_from_json(self.call("PATCH", f"/api/items/{item_id}", body=body))

    def act(self, item_id: int, action: str, reason: str | None) -> Item:
        body = {"reason": reason} if reason else None
        return item_from_json(self.call("POST", f"/api/items/{item_id}/{action}", body=body))


def _json_or_none(answer: httpx.Response) -> object:
    try:
        return answer.json()
    except ValueError:
        return None


def parse_sse(lines: Iterable[str]) -> Iterator[SseMessage]:
    """Server-Sent Events from the stream's lines: ``id:``, ``event:`` and ``data:`` fields, comments skipped."""
    event, data, last_id = "message", list[str](), None
    for line in lines:
        if not line:
            if data:
                yield SseMessage(event, "\n".join(data), last_id)
            event, data = "message", []
            continue
        if line.startswith(":"):
            continue  # a keepalive
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            data.append(value)
        elif name == "event":
            event = value
        elif name == "id" and value.isdigit():
            last_id = int(value)


# --- the server's JSON as the CLI's rows ---------------------------------------------------------


def item_from_json(data: Mapping[str, Any]) -> Item:
    try:
        hold = Hold(data["hold"]) if data["hold"] else None
        special: dict[str, Any] = {
            "state": ItemState(Stage(data["stage"]), hold, data["hold_reason"], bool(data["frozen"])),
            "kind": Kind(data["kind"]),
            "criteria": tuple(Criterion.model_validate(c) for c in data["criteria"]),
            "depends_on": tuple(data["depends_on"]),
            "qa_mode": QaMode(data["qa_mode"]) if data["qa_mode"] else None,
        }
        plain = {f.name: data[f.name] for f in dataclasses.fields(Item) if f.name not in special}
        return Item(**plain, **special)
    except (KeyError, TypeError, ValueError) as err:
        raise _unexpected("item", err) from None


def run_from_json(data: Mapping[str, Any]) -> RunRow:
    """A run as the server shows it; the log path and the process's start time stay on the server."""
    try:
        known: dict[str, Any] = {"log_path": "", "start_ticks": None}
        plain = {f.name: data[f.name] for f in dataclasses.fields(RunRow) if f.name not in known}
        outcome = RunOutcome(data["outcome"]) if data["outcome"] else None
        return RunRow(**{**plain, **known, "role": Role(data["role"]), "outcome": outcome})
    except (KeyError, TypeError, ValueError) as err:
        raise _unexpected("run", err) from None


def run_json(run: RunRow) -> dict[str, Any]:
    """A run in the shape ``GET /api/runs`` gives it, for ``--json`` without a server."""
    shown = dataclasses.asdict(run)
    del shown["log_path"], shown["start_ticks"]
    return shown | {"live": run.live}


def event_from_json(data: Mapping[str, Any]) -> EventRow:
    try:
        return EventRow(**{f.name: data[f.name] for f in dataclasses.fields(EventRow)})
    except (KeyError, TypeError) as err:
        raise _unexpected("event", err) from None


def gate_from_json(data: Mapping[str, Any], item_id: int) -> GateRow:
    try:
        known: dict[str, Any] = {"id": 0, "item_id": item_id}
        return GateRow(**{f.name: data[f.name] for f in dataclasses.fields(GateRow) if f.name not in known}, **known)
    except (KeyError, TypeError) as err:
        raise _unexpected("gate result", err) from None
