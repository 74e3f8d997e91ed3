"""The ASGI app: its factory, and the lifespan that drives the pipeline while it serves."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager

from fastapi import Depends, FastAPI
from fastapi.responses import PlainTextResponse
from fastapi.security import HTTPBearer
from starlette.routing import Route

from gangline import __version__
from gangline.core.errors import ConfigError
from gangline.core.profiles import RunnerSettings
from gangline.core.types import Clock
from gangline.core.wire import HealthOut
from gangline.pipeline.configwatch import ConfigWatch
from gangline.pipeline.nodedesk import NodeDesk
from gangline.pipeline.orchestrator import Orchestrator
from gangline.pipeline.orders import Door
from gangline.pipeline.permissions import Permissions
from gangline.project.config import ProjectConfig
from gangline.project.paths import ProjectPaths
from gangline.server import diff, errors, items, nodes, onboarding, permissions, runs, serverlog, signin, streams
from gangline.server.guard import Guard
from gangline.server.lifetime import Serving, shutdown_bound
from gangline.server.logring import keeping
from gangline.server.mcp import GanglineMcp
from gangline.server.metrics import health, metrics, registry_for
from gangline.server.state import ServerState
from gangline.server.ui import SecurityHeaders, mount_ui
from gangline.store import Store

_DESCRIPTION = """\
Work items through the pipeline (backlog → coding → qa → merge → done), their agent runs, and
the live events. With a token every route but `/health` needs `Authorization: Bearer <token>`.
Errors are `{"error": {"code", "message", "field"?}}` with a stable `code`: `invalid` (422,
`field` names the input), `unauthorized` (401), `forbidden` (403), `not_found` (404),
`illegal_transition`, `conflict` and `run` (409), `locked`, `busy` and `unavailable` (503),
`internal` and `error` (500). The same codes come from the MCP tools and, as exit codes, from the
CLI. Who acts is taken from `X-Gangline-Actor` (default `api`) and recorded with every change."""


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
    doors: Sequence[Door] = (),
    standby: bool = False,
    on_driving: Callable[[], None] = lambda: None,
    take_nodes: bool = True,
) -> FastAPI:
    """The whole server: REST under /api, the event streams, MCP, health and metrics; the lifespan runs the pipeline,
    the ``doors`` beside it (chat), the configuration watch and the log ring. A ``standby`` drives (and opens its
    doors) once the server driving its database stopped; ``on_driving`` is told then. ``take_nodes``: nodes join."""
    if token is not None and not token.strip():
        raise ConfigError("token", "must not be empty")
    settings = settings or RunnerSettings(inactivity_timeout_s=config.inactivity_timeout_s)
    state = ServerState(paths, config, store, clock, Serving(shutdown_bound(settings)))
    state.registry = registry_for(state)
    mcp = GanglineMcp(token, state)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        orch = Orchestrator(paths, config, store, env, clock=clock, settings=settings, guide=guide, standby=standby)
        orch.on_driving = on_driving
        # With port 0 the URL is known once listening (server.serving sets it then); agents
        # started before that run without MCP.
        orch.set_agent_mcp_url(state.agent_mcp_url)
        asking = Permissions(store, config.permissions, clock=clock)
        orch.grants.on_revoke.append(lambda grant: asking.cancel_run(grant.run_id))
        state.orchestrator, state.permissions, state.desk = orch, asking, NodeDesk(paths, orch) if take_nodes else None
        state.watch = ConfigWatch(paths, config, env, store, state.reconfigure, clock)
        # On the way out: the doors beside the pipeline close, agents stop, then MCP sessions close.
        async with mcp.run(), state.serving.run(orch), state.watch.watching(), AsyncExitStack() as beside:
            beside.enter_context(keeping(state.log_ring))
            for door in doors:
                opened = door(state.orders) if not standby else once_driving(orch, door(state.orders))
                await beside.enter_async_context(opened)
            yield

    # Documents the scheme (and gives /docs its Authorize button); the Guard enforces it.
    documented = [Depends(HTTPBearer(auto_error=False))] if token is not None else []
    app = FastAPI(title="gangline", version=__version__, description=_DESCRIPTION, lifespan=lifespan,
                  dependencies=documented)  # fmt: skip
    app.state.gangline = state
    app.add_middleware(Guard, token=token, logins=state.logins)
    app.add_middleware(SecurityHeaders)  # outermost: refusals carry the headers too
    errors.install(app)
    for module in (items, diff, runs, streams, permissions, signin, nodes, onboarding, serverlog):
        app.include_router(module.router)
    # A class instance as the endpoint: Starlette hands it the raw ASGI call, every method.
    app.router.routes.append(Route("/mcp", mcp, include_in_schema=False))
    app.add_api_route("/health", health, methods=["GET"], response_model=HealthOut, tags=["server"])
    app.add_api_route("/metrics", metrics, methods=["GET"], response_class=PlainTextResponse, tags=["server"])
    mount_ui(app)
    return app


@asynccontextmanager
async def once_driving(orch: Orchestrator, door: AbstractAsyncContextManager[None]) -> AsyncIterator[None]:
    """A door entered only once ``orch`` drives the pipeline: a standby's chat accounts stay quiet until then."""

    async def open_when_driving() -> None:
        await orch.recovered()
        async with door:
            await asyncio.Event().wait()

    task = asyncio.create_task(open_when_driving(), name="door once driving")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
