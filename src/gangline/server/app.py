"""The ASGI app: its factory, the orchestrator's lifespan, the guard, errors as JSON, health and metrics."""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from typing import Annotated, Any, cast
from urllib.parse import urlsplit

from fastapi import Depends, FastAPI, Header, HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from fastapi.security import HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from pydantic import BaseModel
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from gangline import __version__
from gangline.core.errors import (
    ConfigError,
    GanglineError,
    NotFoundError,
    RunnerError,
    ServerLockedError,
    StateConflict,
)
from gangline.core.profiles import RunnerSettings
from gangline.core.stages import Hold, IllegalTransition, Stage
from gangline.pipeline.orchestrator import Clock, Orchestrator
from gangline.project.config import ProjectConfig, ProjectPaths
from gangline.server.ui import SecurityHeaders, is_ui_path, mount_ui
from gangline.store import Store

log = logging.getLogger(__name__)

# /health: probes (systemd, a load balancer, the CLI looking for a server) carry no secret.
# /mcp: checks its own bearer, which is either a run's token or the server token.
OPEN_PATHS = frozenset({"/health", "/mcp"})
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_HTTP_CODES = {401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed", 503: "unavailable"}


# --- errors ----------------------------------------------------------------------------------


class ErrorDetail(BaseModel):
    """What went wrong: a stable ``code`` to branch on, a ``message`` for people, and where."""

    code: str
    message: str
    field: str | None = None  # the input that is wrong (``title``, ``criteria[0].text``, ``limit``)
    location: str | None = None  # where that input was: body, query, path or header
    stage: Stage | None = None  # illegal_transition: the item's current state and the trigger refused
    hold: Hold | None = None
    trigger: str | None = None
    expected: str | None = None  # conflict: the state the change expected, and the one it found
    current: str | None = None


class ErrorOut(BaseModel):
    error: ErrorDetail


ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorOut, "description": text}
    for status, text in (
        (401, "Missing or wrong bearer token"),
        (404, "No such item or run"),
        (409, "The item's state does not allow it, or it changed meanwhile"),
        (422, "Invalid input; `field` names it"),
    )
}


def error_response(status: int, detail: ErrorDetail, headers: Mapping[str, str] | None = None) -> JSONResponse:
    body = ErrorOut(error=detail).model_dump(mode="json", exclude_none=True)
    return JSONResponse(body, status_code=status, headers=dict(headers or {}))


def _describe_gangline(err: GanglineError) -> tuple[int, ErrorDetail]:
    message = str(err)
    if isinstance(err, ConfigError):
        return 422, ErrorDetail(code="invalid", message=message, field=err.field)
    if isinstance(err, NotFoundError):
        return 404, ErrorDetail(code="not_found", message=message)
    if isinstance(err, IllegalTransition):
        state = err.state
        detail = ErrorDetail(
            code="illegal_transition", message=message, stage=state.stage, hold=state.hold, trigger=err.trigger.value
        )
        return 409, detail
    if isinstance(err, StateConflict):
        return 409, ErrorDetail(code="conflict", message=message, expected=err.expected, current=err.current)
    if isinstance(err, RunnerError):
        return 409, ErrorDetail(code="conflict", message=message)
    if isinstance(err, ServerLockedError):
        return 503, ErrorDetail(code="locked", message=message)
    return 500, ErrorDetail(code="internal", message=message)


async def _gangline_error(_request: Request, exc: Exception) -> JSONResponse:
    status, detail = _describe_gangline(cast(GanglineError, exc))
    if status >= 500:
        log.error("request failed", exc_info=exc, extra={"action": "api_error", "error": str(exc)})
    return error_response(status, detail)


def _where(loc: Iterable[int | str]) -> str:
    text = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc)
    return text.lstrip(".")


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    errors = cast(RequestValidationError, exc).errors()
    first = errors[0] if errors else {"loc": ("body",), "msg": "invalid request", "type": "invalid"}
    location, *path = first["loc"] or ("body",)
    field = _where(path) or str(location)
    message = f"{field}: {first['msg']}"
    if first["type"] == "json_invalid":  # the location holds the position in the text, not a field
        field = str(location)
        why = cast(dict[str, Any], first.get("ctx") or {}).get("error", "")
        message = f"{field} is not valid JSON (at character {path[0] if path else '?'}): {why}"
    if len(errors) > 1:
        message += f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})"
    return error_response(422, ErrorDetail(code="invalid", message=message, field=field, location=str(location)))


async def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    err = cast(StarletteHTTPException, exc)
    if err.status_code == 400:  # FastAPI's only 400: a body that is not text in the declared encoding
        detail = ErrorDetail(code="invalid", message=f"body: {err.detail}", field="body", location="body")
    else:
        detail = ErrorDetail(code=_HTTP_CODES.get(err.status_code, f"http_{err.status_code}"), message=str(err.detail))
    return error_response(err.status_code, detail, err.headers)


async def _internal_error(request: Request, exc: Exception) -> JSONResponse:
    # The traceback goes to the server's log, never to the client.
    log.error("unexpected error", exc_info=exc, extra={"action": "api_internal_error", "error": request.url.path})
    return error_response(500, ErrorDetail(code="internal", message="internal server error; the server log has more"))


# --- the guard -------------------------------------------------------------------------------


class Guard:
    """With a token: every request but OPEN_PATHS carries ``Authorization: Bearer <token>``.

    Without one (loopback only): the Host must be a loopback name, so a page that rebinds its
    DNS name to 127.0.0.1 is refused, and a write from a browser must come from this origin,
    so another site's form cannot POST to the server (CSRF).
    """

    def __init__(self, app: ASGIApp, token: str | None) -> None:
        self.app = app
        self.token = token.encode() if token is not None else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        refused = self.refusal(scope, Headers(scope=scope))
        if refused is None:
            await self.app(scope, receive, send)
        elif scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008, "reason": refused[1].message[:120]})
        else:
            status, detail = refused
            challenge = {"WWW-Authenticate": "Bearer"} if status == 401 else None
            await error_response(status, detail, challenge)(scope, receive, send)

    def refusal(self, scope: Scope, headers: Headers) -> tuple[int, ErrorDetail] | None:
        if self.token is not None:
            if scope["path"] in OPEN_PATHS or is_ui_path(scope["path"]):
                return None
            scheme, _, credentials = headers.get("authorization", "").partition(" ")
            # compare_digest takes as long for a near miss as for a wild guess.
            given = credentials.strip().encode("latin-1")
            if scheme.lower() == "bearer" and hmac.compare_digest(given, self.token):
                return None
            return 401, ErrorDetail(code="unauthorized", message="this server needs Authorization: Bearer <token>")
        host = headers.get("host", "")
        if not is_loopback(_hostname(host)):
            message = (
                f"Host {host!r} is not a loopback name; a server without a token answers only 127.0.0.1 / localhost"
            )
            return 403, ErrorDetail(code="forbidden", message=message)
        origin = headers.get("origin")
        if scope.get("method", "GET") not in _SAFE_METHODS and origin is not None and urlsplit(origin).netloc != host:
            return 403, ErrorDetail(code="forbidden", message=f"a write from origin {origin!r} is not allowed")
        return None


def is_loopback(host: str) -> bool:
    """``localhost`` or a loopback address (127.0.0.0/8, ::1), bracketed or not."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _hostname(host: str) -> str:
    if host.startswith("["):
        return host[1:].partition("]")[0]
    return host.rpartition(":")[0] if host.count(":") == 1 else host


# --- the orchestrator's lifetime -------------------------------------------------------------


class Serving:
    """The orchestrator the app drives: started by the lifespan, stopped (bounded) at shutdown.

    ``on_stop`` is called when the orchestrator ends by itself (a crash, or another server
    holding the project lock), so whoever runs the server can stop serving too. ``closing``
    (also ``app.state.closing``) is set when shutdown begins, so event streams end and the
    server need not wait out its graceful timeout for them.
    """

    def __init__(self, shutdown_s: float) -> None:
        self.shutdown_s = shutdown_s
        self.error: Exception | None = None
        self.on_stop: Callable[[], None] = lambda: None
        self.closing = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    @asynccontextmanager
    async def run(self, orch: Orchestrator) -> AsyncIterator[None]:
        self.error, self.closing = None, asyncio.Event()
        task = asyncio.create_task(self._drive(orch), name="orchestrator")
        self._task = task
        # serve() takes the project lock in its first step: let it, so a locked project is known at startup.
        await asyncio.sleep(0)
        try:
            yield
        finally:
            self.closing.set()
            task.cancel()  # serve() stops its runs; their items keep their sessions for the next start
            done, _ = await asyncio.wait({task}, timeout=self.shutdown_s)
            if not done:
                log.error("orchestrator did not stop in time", extra={"action": "shutdown_timeout"})

    async def _drive(self, orch: Orchestrator) -> None:
        try:
            await orch.serve()
        except Exception as err:
            self.error = err
            log.error("orchestrator stopped", exc_info=err, extra={"action": "orchestrator_failed", "error": str(err)})
            self.on_stop()


def shutdown_bound(settings: RunnerSettings) -> float:
    """How long shutdown waits for the runs to stop: the runner's own bound, plus room to record them."""
    return settings.kill_grace_s + settings.drain_timeout_s + 15.0


# --- the app ---------------------------------------------------------------------------------


def create_app(
    paths: ProjectPaths,
    config: ProjectConfig,
    store: Store,
    env: Mapping[str, str],
    *,
    token: str | None = None,
    clock: Clock = time.time,
    settings: RunnerSettings | None = None,
    guide: str = "",
) -> FastAPI:
    """The whole server: REST under /api, the event stream, health and metrics; the lifespan runs the pipeline."""
    from gangline.server import diff as api_diff  # they import this module
    from gangline.server import items as api_items
    from gangline.server import permissions as api_permissions
    from gangline.server import runs as api_runs
    from gangline.server import streams as api_events
    from gangline.server.mcp import GanglineMcp

    if token is not None and not token.strip():
        raise ConfigError("token", "must not be empty")
    settings = settings or RunnerSettings(inactivity_timeout_s=config.inactivity_timeout_s)
    serving = Serving(shutdown_bound(settings))
    mcp = GanglineMcp(token)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        orch = Orchestrator(paths, config, store, env, clock=clock, settings=settings, guide=guide)
        app.state.orchestrator = orch
        # Known before the socket binds when the port is fixed (serve.build_server); with port 0,
        # serve sets it once listening, and agents started before then run without MCP.
        orch.agents.mcp_url = getattr(app.state, "agent_mcp_url", None)
        app.state.permissions = mcp.attach(orch)
        async with mcp.run(), serving.run(orch):  # agents stop first, then MCP sessions close
            app.state.closing = serving.closing
            yield

    # Documents the scheme (and gives /docs its Authorize button); the Guard enforces it.
    documented = [Depends(HTTPBearer(auto_error=False))] if token is not None else []
    app = FastAPI(
        title="gangline",
        version=__version__,
        description=_DESCRIPTION,
        lifespan=lifespan,
        dependencies=documented,
    )
    app.state.store, app.state.serving, app.state.config, app.state.clock = store, serving, config, clock
    app.state.registry = _registry(app)
    app.add_middleware(Guard, token=token)
    app.add_middleware(SecurityHeaders)  # outermost: refusals carry the headers too
    app.add_exception_handler(GanglineError, _gangline_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _internal_error)
    app.include_router(api_items.router)
    app.include_router(api_diff.router)
    app.include_router(api_runs.router)
    app.include_router(api_events.router)
    app.include_router(api_permissions.router)
    app.state.mcp = mcp
    # A class instance as the endpoint: Starlette hands it the raw ASGI call, every method.
    app.router.routes.append(Route("/mcp", mcp, include_in_schema=False))
    app.add_api_route("/health", health, methods=["GET"], response_model=HealthOut, tags=["server"])
    app.add_api_route("/metrics", metrics, methods=["GET"], response_class=PlainTextResponse, tags=["server"])
    mount_ui(app)
    return app


_DESCRIPTION = """\
Work items through the pipeline (backlog → coding → qa → merge → done), their agent runs, and
the live events. With a token every route but `/health` needs `Authorization: Bearer <token>`.
Errors are `{"error": {"code", "message", "field"?}}` with a stable `code`: `invalid` (422,
`field` names the input), `unauthorized` (401), `forbidden` (403), `not_found` (404),
`illegal_transition` and `conflict` (409), `locked` and `unavailable` (503), `internal` (500).
Who acts is taken from `X-Gangline-Actor` (default `api`) and recorded with every change."""


# --- what routes depend on -------------------------------------------------------------------


def get_store(request: Request) -> Store:
    return cast(Store, request.app.state.store)


def get_orchestrator(request: Request) -> Orchestrator:
    orch = getattr(request.app.state, "orchestrator", None)
    if orch is None:
        raise HTTPException(503, "the orchestrator is not running (the app was started without its lifespan)")
    return cast(Orchestrator, orch)


def get_actor(
    x_gangline_actor: Annotated[
        str | None,
        Header(description="Who asks, for the event log (default: api).", pattern=r"^[A-Za-z0-9][\w.@+ -]{0,63}$"),
    ] = None,
) -> str:
    return x_gangline_actor.strip() if x_gangline_actor else "api"


StoreDep = Annotated[Store, Depends(get_store)]
OrchestratorDep = Annotated[Orchestrator, Depends(get_orchestrator)]
ActorDep = Annotated[str, Depends(get_actor)]


# --- health and metrics ----------------------------------------------------------------------


class HealthOut(BaseModel):
    ok: bool
    db: bool  # the database answers
    orchestrator: bool  # the pipeline is being driven


async def health(request: Request, response: Response) -> HealthOut:
    """Liveness, open without a token: it tells only whether the database and the orchestrator are up."""
    try:
        get_store(request).last_event_id()
        db = True
    except Exception:
        log.warning("database check failed", exc_info=True, extra={"action": "health"})
        db = False
    running = cast(Serving, request.app.state.serving).running
    if not (db and running):
        response.status_code = 503
    return HealthOut(ok=db and running, db=db, orchestrator=running)


async def metrics(request: Request) -> PlainTextResponse:
    """Prometheus text: items per stage and hold, live runs, runs by outcome, tokens, cost and events."""
    registry = cast(CollectorRegistry, request.app.state.registry)
    return PlainTextResponse(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


class _PipelineCollector:
    """Reads the figures from the store at scrape time: nothing to keep in step, nothing global."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app

    def collect(self) -> Iterable[Metric]:
        store = cast(Store, self.app.state.store)
        items = store.list_items()
        runs = store.runs()
        stages = Counter(item.stage for item in items)
        holds = Counter(item.state.hold for item in items if item.state.hold)
        yield _labelled(GaugeMetricFamily("gangline_items", "Work items per stage", labels=["stage"]), stages, Stage)
        yield _labelled(GaugeMetricFamily("gangline_items_held", "Work items per hold", labels=["hold"]), holds, Hold)
        yield GaugeMetricFamily("gangline_items_frozen", "Frozen work items", value=sum(i.state.frozen for i in items))
        yield GaugeMetricFamily("gangline_runs_live", "Agent runs in progress", value=sum(r.live for r in runs))
        outcomes = CounterMetricFamily("gangline_runs", "Finished agent runs by outcome", labels=["outcome"])
        for outcome, count in sorted(Counter(r.outcome.value for r in runs if r.outcome).items()):
            outcomes.add_metric([outcome], count)
        yield outcomes
        tokens = CounterMetricFamily("gangline_tokens", "Tokens used by agent runs", labels=["kind"])
        for kind in ("input", "output", "cache_read", "cache_write"):
            tokens.add_metric([kind], sum(getattr(r, f"{kind}_tokens") for r in runs))
        yield tokens
        yield CounterMetricFamily("gangline_cost_usd", "Agent cost in USD", value=sum(r.cost_usd for r in runs))
        yield CounterMetricFamily("gangline_events", "Pipeline events recorded", value=store.last_event_id())
        serving = cast(Serving, self.app.state.serving)
        yield GaugeMetricFamily("gangline_orchestrator_up", "1 while the pipeline is driven", value=serving.running)


def _labelled(family: GaugeMetricFamily, counts: Counter[Any], values: Iterable[Stage | Hold]) -> GaugeMetricFamily:
    for value in values:
        family.add_metric([value.value], counts.get(value, 0))
    return family


def _registry(app: FastAPI) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_PipelineCollector(app))
    return registry
