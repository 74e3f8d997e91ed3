"""Talking to this project's running server over HTTP: REST, Server-Sent Events, and its errors as ours.

A command finds the server in ``.gangline/server.json`` (``project.serverfile``), checks that
``GET /health`` answers, and then goes through it. The server's answers are the wire records
(``core.wire``), read back into the same models; its errors are turned back into the class the
code names (``core.problems``), so a command exits with the same code either way.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel, TypeAdapter, ValidationError

from gangline.core.errors import ConfigError, GanglineError
from gangline.core.problems import ErrorDetail, error_from_detail
from gangline.project.paths import ProjectPaths
from gangline.project.secret import read_secret
from gangline.project.serverfile import live_server

if TYPE_CHECKING:
    import httpx

TOKEN_ENV = "GANGLINE_TOKEN"
PROBE_S = 2.0  # /health answers at once; a server that does not is not one to use
REQUEST_S = 60.0  # an action may wait on git: approve counts commits, archive prunes a worktree
STREAM_READ_S = 60.0  # the server sends a keepalive after 15 s of silence; four times that means it is gone

T = TypeVar("T")


def find_server(paths: ProjectPaths, env: Mapping[str, str], actor: str) -> Client | None:
    """A client of the server the server file names, if that process lives and answers /health."""
    found = live_server(paths)
    if found is None:
        return None  # never started, or killed without removing its file
    # The person's credential: a token from the environment, else the project's secret, found by itself.
    client = Client(found.url, env.get(TOKEN_ENV) or read_secret(paths), actor)
    if client.probe():
        return client
    client.close()
    return None


def error_from(status: int, body: object) -> GanglineError:
    """The ``GanglineError`` behind the server's ``{"error": {"code", "message", ...}}``; its words kept."""
    try:
        detail = ErrorDetail.model_validate(body.get("error") if isinstance(body, dict) else None)
    except ValidationError:
        return GanglineError(f"the server answered HTTP {status} without saying why")
    if detail.code in ("unauthorized", "forbidden"):
        hint = (
            f"; the CLI sent {TOKEN_ENV} if set, else .gangline/secret: set {TOKEN_ENV} to the token the server "
            "was started with"
            if detail.code == "unauthorized"
            else ""
        )
        refused = ConfigError(TOKEN_ENV, detail.message)
        refused.args = (detail.message + hint,)  # the server's sentence, as for every other error
        return refused
    return error_from_detail(detail)


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
            raise _unexpected(path, err) from None

    def fetch(self, shape: type[T], method: str, path: str, *, params: Any = None, body: Any = None) -> T:
        """The answer read as ``shape`` (a wire record, or a list of them)."""
        raw = self.call_raw(method, path, params=params, body=body)
        try:
            return TypeAdapter(shape).validate_json(raw)
        except ValidationError as err:
            raise _unexpected(path, err) from None

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


def body_of(model: BaseModel) -> dict[str, Any]:
    """A request body: what the model holds that is not a default (an edit sends only its changes)."""
    return model.model_dump(mode="json", exclude_defaults=True)


def _json_or_none(answer: httpx.Response) -> object:
    try:
        return answer.json()
    except ValueError:
        return None


def _unexpected(what: str, err: Exception) -> GanglineError:
    return GanglineError(
        f"the server's answer to {what} is not what this gangline expects ({type(err).__name__}: {err})"
    )


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
