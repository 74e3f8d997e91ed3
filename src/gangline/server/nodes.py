"""REST for build nodes: the people's list, join tokens and draining (``/api/nodes``), and what nodes call (``/node``).

``/node`` routes are not the person's: the Guard lets them through, and each checks the
node's own credential (``Authorization: Bearer``), or for ``/node/join`` a one-time join token.
``/node/git`` serves the project's repository over git's smart HTTP protocol; a push must name
its run and lease (``X-Gangline-Run``, ``X-Gangline-Epoch``). A standby answers 503 to nodes:
they go to the server that drives the pipeline.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Depends, Header, Path, Request, Response
from pydantic import BaseModel
from starlette.requests import ClientDisconnect

from gangline.core.errors import ConfigError
from gangline.core.nodes import NodeRefused, NodeRow
from gangline.core.nodewire import (
    DRAINING_HEADER,
    EPOCH_HEADER,
    RUN_HEADER,
    FinishIn,
    JoinIn,
    JoinOut,
    LeaseIn,
    LeaseOut,
    NodeHello,
    NodeOut,
    RenewIn,
    RenewOut,
    TokenOut,
    UploadOut,
)
from gangline.pipeline.fleet import Fleet
from gangline.pipeline.nodedesk import NodeDesk
from gangline.server.errors import ERRORS
from gangline.server.githttp import serve_git
from gangline.server.state import ActorDep, ServerState, StateDep, state_of

NODE_PREFIX = "/node"
router = APIRouter(responses=ERRORS)
RunIdPath = Annotated[str, Path(min_length=1, max_length=128)]


class DrainIn(BaseModel):
    draining: bool = True


def _fleet(state: ServerState) -> Fleet:
    return Fleet(state.store, state.config.nodes.lease_s)


def _desk(request: Request) -> NodeDesk:
    return state_of(request.app).node_desk()


def _node(request: Request, authorization: Annotated[str, Header()] = "") -> NodeRow:
    scheme, _, credential = authorization.partition(" ")
    if scheme.lower() != "bearer" or not credential.strip():
        raise NodeRefused("a node's call needs Authorization: Bearer <its credential>")
    return _desk(request).node(credential.strip())


DeskDep = Annotated[NodeDesk, Depends(_desk)]
NodeDep = Annotated[NodeRow, Depends(_node)]


# --- people's ----------------------------------------------------------------------------------


@router.get("/api/nodes", response_model=list[NodeOut], tags=["nodes"], summary="List the build nodes")
async def list_nodes(state: StateDep) -> list[NodeOut]:
    return _fleet(state).nodes()


@router.post("/api/nodes/token", response_model=TokenOut, tags=["nodes"], summary="Make a one-time join token")
async def new_token(state: StateDep, actor: ActorDep) -> TokenOut:
    return _fleet(state).new_token(actor)


@router.post("/api/nodes/{name}/drain", response_model=NodeOut, tags=["nodes"], summary="Drain a node (or not)")
async def drain(name: Annotated[str, Path(max_length=64)], state: StateDep, actor: ActorDep,
                body: Annotated[DrainIn | None, Body()] = None) -> NodeOut:  # fmt: skip
    return _fleet(state).drain(name, (body or DrainIn()).draining, actor)


# --- nodes' ------------------------------------------------------------------------------------


@router.post(f"{NODE_PREFIX}/join", response_model=JoinOut, tags=["node protocol"])
async def join(given: JoinIn, request: Request) -> JoinOut:
    """Spend a one-time join token (in the body: no credential yet) on this node's credential."""
    return _desk(request).join(given)


@router.post(f"{NODE_PREFIX}/hello", response_model=NodeOut, tags=["node protocol"])
async def hello(given: NodeHello, node: NodeDep, desk: DeskDep, state: StateDep) -> NodeOut:
    return _fleet(state).out(desk.hello(node, given))


@router.post(f"{NODE_PREFIX}/lease", response_model=LeaseOut, tags=["node protocol"],
             responses={204: {"description": "No run for this node within wait_s"}})  # fmt: skip
async def lease(given: LeaseIn, node: NodeDep, desk: DeskDep, state: StateDep) -> LeaseOut | Response:
    leased = await desk.lease(node, given, state.serving.closing)
    if leased is None:
        return Response(status_code=204, headers={DRAINING_HEADER: str(int(node.draining))})
    return leased


@router.post(f"{NODE_PREFIX}/runs/{{run_id}}/renew", response_model=RenewOut, tags=["node protocol"])
async def renew(run_id: RunIdPath, given: RenewIn, node: NodeDep, desk: DeskDep) -> RenewOut:
    return desk.renew(node, run_id, given.epoch)


@router.post(f"{NODE_PREFIX}/runs/{{run_id}}/events", response_model=UploadOut, tags=["node protocol"])
async def upload(run_id: RunIdPath, request: Request, node: NodeDep, desk: DeskDep,
                 epoch: Annotated[int, Header(alias=EPOCH_HEADER)]) -> UploadOut | Response:  # fmt: skip
    """The run's log lines (``Record`` JSON, one per line) since the last upload."""
    try:
        lines = await request.body()
    except ClientDisconnect:  # the node died mid-upload: nothing was taken, it sends the lines again if it lives
        return Response(status_code=400)
    return desk.ingest(node, run_id, epoch, lines)


@router.post(f"{NODE_PREFIX}/runs/{{run_id}}/finish", status_code=204, tags=["node protocol"])
async def finish(run_id: RunIdPath, given: FinishIn, node: NodeDep, desk: DeskDep) -> Response:
    await desk.finish(node, run_id, given)
    return Response(status_code=204)


@router.api_route(f"{NODE_PREFIX}/git/{{path:path}}", methods=["GET", "POST"], include_in_schema=False)
async def git_http(path: str, request: Request, node: NodeDep, desk: DeskDep, state: StateDep) -> Response:
    """The project's repository for nodes: fetches for any node, a push only under its run's lease."""
    env: dict[str, str] = {}
    if path.endswith("git-receive-pack") or request.query_params.get("service") == "git-receive-pack":
        run_id, epoch = request.headers.get(RUN_HEADER, ""), request.headers.get(EPOCH_HEADER, "")
        if not run_id or not epoch.isdigit():
            raise ConfigError(EPOCH_HEADER, f"a push names its run and lease: {RUN_HEADER} and {EPOCH_HEADER}")
        env = desk.push_env(node, run_id, int(epoch))
    return await serve_git(request, state.paths.root, "/" + path, env)
