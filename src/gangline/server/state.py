"""What every route of the app shares, typed: one ``ServerState`` on ``app.state``, and the routes' dependencies."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Annotated, cast

from fastapi import Depends, Header, Request
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette

from gangline.core.errors import Unavailable
from gangline.core.types import Clock
from gangline.core.wire import ConfigOut
from gangline.pipeline.configwatch import ConfigWatch
from gangline.pipeline.nodedesk import NodeDesk
from gangline.pipeline.onboarding import GateIn, ProofOut
from gangline.pipeline.orchestrator import Orchestrator
from gangline.pipeline.orders import Orders
from gangline.pipeline.permissions import Permissions
from gangline.pipeline.views import Live, Views
from gangline.project.config import ProjectConfig
from gangline.project.paths import ProjectPaths
from gangline.server.lifetime import Serving
from gangline.server.login import Logins
from gangline.server.logring import LogRing
from gangline.store import Store

HEARTBEAT_S = 15.0  # an event stream sends a comment after this much silence


@dataclass
class ServerState:
    """The project the app serves, and what the lifespan adds while the pipeline is driven."""

    paths: ProjectPaths
    config: ProjectConfig
    store: Store
    clock: Clock
    serving: Serving
    heartbeat_s: float = HEARTBEAT_S
    agent_mcp_url: str | None = None  # known before the socket binds when the port is fixed
    orchestrator: Orchestrator | None = None  # set by the lifespan
    permissions: Permissions | None = None
    desk: NodeDesk | None = None  # what build nodes call, once the pipeline is driven
    watch: ConfigWatch | None = None  # project.toml, applied as it is edited (set by the lifespan)
    log_ring: LogRing = field(default_factory=LogRing)  # the server's recent log, for people to read
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)  # the metrics' (server.metrics)
    logins: Logins = field(default_factory=Logins)  # one-time login links and the board's sessions
    views: Views = field(init=False)

    def __post_init__(self) -> None:
        self.views = Views(self.store, self.live, self.clock)

    def live(self) -> Live:
        live = self.orchestrator.live() if self.orchestrator is not None else Live()
        if self.watch is None:
            return live
        found = self.watch.state
        config = ConfigOut(loaded_at=found.loaded_at, error=found.error, refused_at=found.refused_at,
                           restart_needed=list(found.restart_needed))  # fmt: skip
        return dataclasses.replace(live, config=config)

    async def add_gate(self, given: GateIn) -> ProofOut:
        """A gate proven and added to project.toml (``pipeline.onboarding``), then in force at once."""
        proof = await self.running().onboarder.add_gate(given, self.config)
        if proof.added and self.watch is not None:
            self.watch.check()
        return proof

    def reconfigure(self, config: ProjectConfig) -> None:
        """An edit of project.toml that loaded: the pipeline, the permission rules and every route use it."""
        self.config = config
        self.running().reconfigure(config)
        if self.permissions is not None:
            self.permissions.reconfigure(config.permissions)

    def running(self) -> Orchestrator:
        if self.orchestrator is None:
            raise Unavailable("the orchestrator is not running (the app was started without its lifespan)")
        return self.orchestrator

    def node_desk(self) -> NodeDesk:
        """What build nodes call; refused by a standby (nodes go to the server that drives the pipeline)."""
        orch = self.running()
        if orch.standing_by:
            raise Unavailable(STANDING_BY)
        if self.desk is None:
            raise Unavailable("this gangline keeps every agent run itself (gangline run, demo): serve the project "
                              "with gangline serve for build nodes to join")  # fmt: skip
        return self.desk

    def orders(self) -> Orders:
        orch = self.running()
        if orch.standing_by:  # its orders could not reach the runs of the server that drives the pipeline
            raise Unavailable(STANDING_BY)
        return Orders(orch, self.views, self.permissions)


STANDING_BY = (
    "this server is a standby: another server drives the pipeline on this database; give orders there "
    "(this one takes over when that one stops)"
)


def state_of(app: Starlette) -> ServerState:
    return cast(ServerState, app.state.gangline)


def get_state(request: Request) -> ServerState:
    return state_of(request.app)


def get_views(request: Request) -> Views:
    return state_of(request.app).views


def get_orders(request: Request) -> Orders:
    return state_of(request.app).orders()


def get_orchestrator(request: Request) -> Orchestrator:
    return state_of(request.app).running()


def get_actor(
    x_gangline_actor: Annotated[
        str | None,
        Header(description="Who asks, for the event log (default: api).", pattern=r"^[A-Za-z0-9][\w.@+ -]{0,63}$"),
    ] = None,
) -> str:
    return x_gangline_actor.strip() if x_gangline_actor else "api"


StateDep = Annotated[ServerState, Depends(get_state)]
ViewsDep = Annotated[Views, Depends(get_views)]
OrdersDep = Annotated[Orders, Depends(get_orders)]
OrchestratorDep = Annotated[Orchestrator, Depends(get_orchestrator)]
ActorDep = Annotated[str, Depends(get_actor)]
