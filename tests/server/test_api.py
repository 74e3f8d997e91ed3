"""The REST API through a real HTTP client against the ASGI app, on real projects driven by fake agents."""

from __future__ import annotations

import asyncio
import hmac
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import hypothesis
import pytest
import schemathesis
from fastapi import FastAPI
from schemathesis import GenerationMode
from schemathesis.python.asgi import shutdown_lifespans

from gangline.core.errors import ServerLockedError
from gangline.core.events import RunOutcome
from gangline.core.stages import Hold, Stage
from gangline.server import guard
from gangline.server.app import create_app
from gangline.server.lifetime import shutdown_bound
from gangline.server.state import state_of
from kits.mcp_kit import Sessions
from kits.pipeline_kit import FAST, Project, commit_file

TOKEN = "s3cret-token-for-tests-0123456789"
WORK = [{"say": "on it"}, *commit_file("work/{item_slug}.txt", "done by {item_id}\n")]
LATER = "2999-01-01T00:00:00Z"  # a start time that keeps an item waiting in the backlog
NO_ACTIVITY = dict.fromkeys(("run_id", "profile", "role", "since", "until", "note"))


@pytest.fixture
def project(tmp_path):  # type: ignore[no-untyped-def]
    return Project(tmp_path)


def make_app(project: Project, token: str | None = None) -> FastAPI:
    assert project.config is not None
    return create_app(project.paths, project.config, project.store, dict(os.environ), token=token, settings=FAST)


@asynccontextmanager
async def client_for(
    app: FastAPI, token: str | None = None, lifespan: bool = True, **transport: Any
) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    asgi = httpx.ASGITransport(app=app, **transport)
    async with httpx.AsyncClient(transport=asgi, base_url="http://127.0.0.1", headers=headers) as client:
        if not lifespan:
            yield client
            return
        async with app.router.lifespan_context(app):
            yield client


async def wait_until(app: FastAPI, check: Callable[[], Awaitable[bool]], timeout_s: float = 60) -> None:
    """Check again after every change the orchestrator makes, for at most ``timeout_s``."""
    orch = state_of(app).running()
    seen = -1
    async with asyncio.timeout(timeout_s):
        while not await check():
            seen = await orch.wait_changed(seen, timeout_s)


async def item_of(client: httpx.AsyncClient, item_id: int) -> dict[str, Any]:
    response = await client.get(f"/api/items/{item_id}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def in_stage(client: httpx.AsyncClient, item_id: int, stage: Stage) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return (await item_of(client, item_id))["stage"] == stage.value

    return check


def error_of(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body: dict[str, Any] = response.json()["error"]
    return body


# --- the happy path --------------------------------------------------------------------------


async def test_an_item_added_through_the_api_reaches_done_with_its_history_log_and_costs(project: Project) -> None:
    project.agent("coder", [WORK])
    project.configure(gates=[("work", 'test -n "$(git ls-files work)"')])
    app = make_app(project)
    async with client_for(app) as client:
        created = await client.post("/api/items", json={"title": "Add a page", "criteria": ["it renders"]})
        assert created.status_code == 201, created.text
        item_id = created.json()["id"]
        assert created.json()["stage"] == "backlog" and created.json()["criteria"] == [
            {"text": "it renders", "checked": False}
        ]
        await wait_until(app, in_stage(client, item_id, Stage.DONE))

        detail = await item_of(client, item_id)
        assert [t["to_stage"] for t in detail["transitions"]] == ["coding", "qa", "merge", "done"]
        assert detail["branch"] == f"gangline/{item_id}-add-a-page" and detail["merged_commit"]
        assert [g["name"] for g in detail["gates"]] == ["work"] and all(g["passed"] for g in detail["gates"])
        [run] = detail["runs"]
        assert run["outcome"] == "succeeded" and not run["live"] and run["cost_usd"] > 0

        runs = (await client.get("/api/runs", params={"item": item_id})).json()
        assert [r["id"] for r in runs] == [run["id"]]
        assert (await client.get("/api/runs", params={"live": True})).json() == []
        assert (await client.get(f"/api/runs/{run['id']}")).json()["outcome"] == "succeeded"

        costs = (await client.get("/api/costs", params={"by": "item"})).json()
        assert costs["rows"][0]["key"] == str(item_id) and costs["total_usd"] == pytest.approx(run["cost_usd"])
        for by in ("profile", "day", "run"):
            assert (await client.get("/api/costs", params={"by": by})).json()["total_usd"] == costs["total_usd"]

        metrics = (await client.get("/metrics")).text
        assert 'gangline_items{stage="done"} 1.0' in metrics
        assert 'gangline_runs_total{outcome="succeeded"} 1.0' in metrics
        assert "gangline_cost_usd_total " in metrics and "gangline_runs_live 0.0" in metrics
        assert "gangline_events_total " in metrics and "gangline_orchestrator_up 1.0" in metrics


async def test_a_run_log_pages_forward_from_an_id_until_it_is_read(project: Project) -> None:
    project.agent("coder", [WORK])
    project.configure()
    app = make_app(project)
    async with client_for(app) as client:
        item_id = (await client.post("/api/items", json={"title": "Logged"})).json()["id"]
        await wait_until(app, in_stage(client, item_id, Stage.DONE))
        [run] = (await client.get("/api/runs", params={"item": item_id})).json()
        everything = (await client.get(f"/api/runs/{run['id']}/log", params={"limit": 5000})).json()
        assert not everything["more"] and not everything["live"]
        ids = [r["id"] for r in everything["records"]]
        assert ids == list(range(1, len(ids) + 1)) and len(ids) > 6
        assert everything["records"][0]["event"]["kind"] == "process_started"

        pages, after = [], 0
        while True:
            page = (await client.get(f"/api/runs/{run['id']}/log", params={"after": after, "limit": 4})).json()
            pages.append([r["id"] for r in page["records"]])
            after = page["next_after"]
            if not page["more"]:
                break
        assert [i for page in pages for i in page] == ids and all(len(p) <= 4 for p in pages)
        last = (await client.get(f"/api/runs/{run['id']}/log", params={"after": ids[-1]})).json()
        assert last["records"] == [] and last["next_after"] == ids[-1]


# --- errors ----------------------------------------------------------------------------------


async def test_errors_are_json_with_a_stable_code_and_invalid_input_names_its_field(project: Project) -> None:
    project.agent("coder", [WORK])
    project.configure()
    app = make_app(project)
    async with client_for(app) as client:
        assert error_of(await client.get("/api/items/99"), 404) == {
            "code": "not_found",
            "message": "item 99 does not exist",
        }
        assert error_of(await client.get("/api/runs/nope"), 404)["code"] == "not_found"
        assert error_of(await client.get("/api/nowhere"), 404)["code"] == "not_found"
        assert error_of(await client.put("/api/items"), 405)["code"] == "method_not_allowed"

        empty = error_of(await client.post("/api/items", json={"title": "  "}), 422)
        assert (empty["code"], empty["field"], empty["location"]) == ("invalid", "title", "body")
        assert "must not be empty" in empty["message"]
        criterion = error_of(await client.post("/api/items", json={"title": "x", "criteria": ["ok", "a\nb"]}), 422)
        assert criterion["field"] == "criteria[1].text"
        assert error_of(await client.post("/api/items", json={"title": "x", "colour": 1}), 422)["field"] == "colour"
        assert error_of(await client.post("/api/items", json=["x"]), 422)["location"] == "body"
        as_json = {"content-type": "application/json"}
        broken = error_of(await client.post("/api/items", content=b"{bad", headers=as_json), 422)
        assert broken["field"] == "body" and "not valid JSON" in broken["message"]
        undecodable = error_of(await client.post("/api/items", content=b"\xc6y\xe5", headers=as_json), 400)
        assert (undecodable["code"], undecodable["field"]) == ("invalid", "body")
        assert error_of(await client.post("/api/items", json={"title": "x", "depends_on": [42]}), 422) == {
            "code": "invalid",
            "message": "depends_on: item 42 does not exist",
            "field": "depends_on",
        }
        naive = error_of(await client.post("/api/items", json={"title": "x", "start_after": "2030-01-01T00:00"}), 422)
        assert naive["field"] == "start_after"
        limit = error_of(await client.get("/api/runs/x/log", params={"limit": 0}), 422)
        assert (limit["field"], limit["location"]) == ("limit", "query")
        assert error_of(await client.post("/api/items/1/explode"), 422)["field"] == "action"
        actor = error_of(await client.post("/api/items", json={"title": "x"}, headers={"X-Gangline-Actor": "-x"}), 422)
        assert actor["location"] == "header"

        first = (await client.post("/api/items", json={"title": "First", "start_after": LATER})).json()
        await client.post("/api/items", json={"title": "Second", "depends_on": [first["id"]], "start_after": LATER})
        illegal = error_of(await client.post(f"/api/items/{first['id']}/approve"), 409)
        assert illegal["code"] == "illegal_transition"
        assert (illegal["stage"], illegal["trigger"]) == ("backlog", "qa_passed") and "hold" not in illegal
        needed = error_of(await client.delete(f"/api/items/{first['id']}"), 409)
        assert needed["code"] == "conflict" and "needed by item(s) 2" in needed["message"]
        frozen = error_of(await client.patch(f"/api/items/{first['id']}", json={"frozen": True}), 422)
        assert frozen["field"] == "frozen" and "freeze or unfreeze" in frozen["message"]


async def test_an_unexpected_error_is_a_500_that_says_internal_and_leaks_nothing(project: Project) -> None:
    project.agent("coder", [WORK])
    project.configure()
    app = make_app(project)

    async def boom() -> None:
        raise RuntimeError("the secret path /home/someone/.ssh")

    app.add_api_route("/api/boom", boom)
    async with client_for(app, raise_app_exceptions=False) as client:
        error = error_of(await client.get("/api/boom"), 500)
    assert error["code"] == "internal" and "secret" not in error["message"] and "Traceback" not in error["message"]


# --- the guard -------------------------------------------------------------------------------


async def test_with_a_token_every_route_but_health_needs_it_compared_in_constant_time(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    project.agent("coder", [WORK])
    project.configure()
    compared: list[bytes] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        compared.append(a)
        return real(a, b)

    monkeypatch.setattr(guard.hmac, "compare_digest", spy)
    app = make_app(project, token=TOKEN)
    async with client_for(app, TOKEN) as authorised, client_for(app, lifespan=False) as anonymous:
        for path in ("/api/items", "/api/status", "/metrics", "/openapi.json", "/docs", "/api/nowhere"):
            refused = await anonymous.get(path)
            assert error_of(refused, 401)["code"] == "unauthorized", path
            assert refused.headers["www-authenticate"] == "Bearer"
        for wrong in (
            f"Bearer {TOKEN[:-1]}",
            f"Bearer {TOKEN}x",
            f"Basic {TOKEN}",
            TOKEN,
            "Bearer \u00fc".encode("latin-1"),
        ):
            assert (await anonymous.get("/api/items", headers={"Authorization": wrong})).status_code == 401, wrong
        assert (await anonymous.post("/api/items", json={"title": "sneaky"})).status_code == 401
        assert (await anonymous.get("/health")).json() == {"ok": True, "db": True, "orchestrator": True}
        assert (await authorised.get("/api/items")).json() == []
        assert (await authorised.get("/metrics")).status_code == 200
        # With a token the server may answer any host name: the token is what keeps others out.
        assert (await authorised.get("/api/items", headers={"Host": "gangline.example"})).status_code == 200
        schema = (await authorised.get("/openapi.json")).json()
    assert TOKEN[:-1].encode() in compared and f"{TOKEN}x".encode() in compared
    assert schema["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"


async def test_without_a_token_only_loopback_names_and_same_origin_writes_get_through(project: Project) -> None:
    project.agent("coder", [WORK])
    project.configure()
    app = make_app(project)
    async with client_for(app) as client:
        rebound = await client.get("/api/items", headers={"Host": "attacker.example:8765"})
        assert error_of(rebound, 403)["code"] == "forbidden"
        for host in ("localhost:8765", "127.0.0.1", "127.0.0.2:80", "[::1]:8765"):
            assert (await client.get("/api/items", headers={"Host": host})).status_code == 200, host
        cross = await client.post("/api/items", json={"title": "x"}, headers={"Origin": "https://attacker.example"})
        assert error_of(cross, 403)["code"] == "forbidden"
        same = await client.post(
            "/api/items", json={"title": "x", "frozen": True}, headers={"Origin": "http://127.0.0.1"}
        )
        assert same.status_code == 201
        assert (await client.get("/api/items", headers={"Origin": "https://attacker.example"})).status_code == 200


# --- actions ---------------------------------------------------------------------------------


async def test_actions_hold_release_block_unblock_freeze_and_edit_a_waiting_item(project: Project) -> None:
    project.agent("coder", [WORK])
    project.configure()
    app = make_app(project)
    async with client_for(app) as client:
        created = (await client.post("/api/items", json={"title": "Later", "start_after": LATER})).json()
        item = f"/api/items/{created['id']}"
        assert created["start_after"] == pytest.approx(32472144000.0)
        assert created["activity"] == {**NO_ACTIVITY, "state": "scheduled", "until": created["start_after"]}
        assert created["actions"] == ["start", "stop", "block", "hold", "freeze", "abandon", "supersede"]
        held = (await client.post(f"{item}/hold", headers={"X-Gangline-Actor": "alice"})).json()
        assert (held["hold"], held["hold_reason"]) == ("review_hold", "held for review by alice")
        assert held["activity"] == {**NO_ACTIVITY, "state": "review_hold", "note": "held for review by alice"}
        assert held["actions"] == ["release", "freeze", "abandon", "supersede"]
        assert error_of(await client.post(f"{item}/block"), 409)["hold"] == "review_hold"
        assert (await client.post(f"{item}/release")).json()["hold"] is None
        blocked = (await client.post(f"{item}/block", json={"reason": "waiting on design"})).json()
        assert (blocked["hold"], blocked["hold_reason"]) == ("blocked", "waiting on design")
        assert (await client.post(f"{item}/unblock", json={})).json()["hold"] is None
        assert (await client.post(f"{item}/freeze")).json()["frozen"] is True
        edited = await client.patch(item, json={"title": "Later, renamed", "priority": 5, "criteria": ["one"]})
        assert edited.json()["title"] == "Later, renamed" and edited.json()["slug"] == "later"
        assert (await client.post(f"{item}/unfreeze")).json()["frozen"] is False

        assert [i["id"] for i in (await client.get("/api/items", params={"q": "RENAMED"})).json()] == [created["id"]]
        assert (await client.get("/api/items", params={"q": "nothing"})).json() == []
        assert len((await client.get("/api/items", params={"stage": ["backlog", "coding"]})).json()) == 1
        assert (await client.get("/api/items", params={"hold": "blocked"})).json() == []
        assert (await client.get("/api/items", params={"kind": "bug"})).json() == []

        status = (await client.get("/api/status")).json()
        assert status["stages"]["backlog"] == 1 and status["holds"]["blocked"] == 0
        assert status["timers"] == [{"item_id": created["id"], "kind": "start_after", "at": created["start_after"]}]
        assert status["orchestrator"]["running"] is True and status["live_runs"] == []

        assert (await client.delete(item)).json()["title"] == "Later, renamed"
        assert error_of(await client.get(item), 404)["code"] == "not_found"
    actors = {(e.kind, e.trigger): e.actor for e in project.store.events_after(0)}
    assert actors[("transition", "hold_for_review")] == "alice" and actors[("deleted", None)] == "api"


async def test_stop_blocks_the_item_and_stops_its_run_and_unblock_starts_it_again(project: Project) -> None:
    project.agent("coder", [[{"say": "thinking"}, {"hang": True}], WORK])
    project.configure()
    app = make_app(project)
    async with client_for(app) as client:
        sessions = Sessions(app)
        item_id = (await client.post("/api/items", json={"title": "Slow", "start_after": LATER})).json()["id"]
        assert (await client.post(f"/api/items/{item_id}/start")).json()["stage"] == "coding"
        run_id, session = await sessions.next()
        [live] = (await client.get("/api/runs", params={"live": True})).json()
        assert live["id"] == run_id
        activity = (await item_of(client, item_id))["activity"]
        assert activity == {**NO_ACTIVITY, "state": "running", "run_id": run_id, "profile": "coder", "role": "coder",
                            "since": live["started_at"]}  # fmt: skip

        stopped = await client.post(f"/api/items/{item_id}/stop", json={"reason": "wrong approach"})
        assert (stopped.json()["hold"], stopped.json()["hold_reason"]) == ("blocked", "stopped by api: wrong approach")

        async def run_ended() -> bool:
            return not (await client.get(f"/api/runs/{live['id']}")).json()["live"]

        await wait_until(app, run_ended)
        first = (await client.get(f"/api/runs/{live['id']}")).json()
        assert first["outcome"] == RunOutcome.STOPPED.value and first["session_id"] == session
        assert error_of(await client.post(f"/api/runs/{live['id']}/stop"), 409)["code"] == "run"

        await client.post(f"/api/items/{item_id}/unblock")
        await wait_until(app, in_stage(client, item_id, Stage.DONE))
        runs = (await client.get("/api/runs", params={"item": item_id, "live": False})).json()
    assert [r["outcome"] for r in runs] == ["stopped", "succeeded"]


async def test_stopping_a_run_blocks_its_item_so_it_does_not_start_again(project: Project) -> None:
    project.agent("coder", [[{"hang": True}]])
    project.configure()
    app = make_app(project)
    async with client_for(app) as client:
        sessions = Sessions(app)
        item_id = (await client.post("/api/items", json={"title": "Hangs"})).json()["id"]
        await sessions.next()
        [run] = (await client.get("/api/runs", params={"live": True})).json()
        response = await client.post(f"/api/runs/{run['id']}/stop", headers={"X-Gangline-Actor": "bob"})
        assert response.status_code == 202 and response.json()["id"] == run["id"]

        async def idle() -> bool:
            status = (await client.get("/api/status")).json()
            return not status["live_runs"] and status["orchestrator"]["jobs"] == 0

        await wait_until(app, idle)
        item = await item_of(client, item_id)
    assert item["hold"] == "blocked" and item["hold_reason"] == f"run {run['id']} stopped by bob"
    assert [r["outcome"] for r in item["runs"]] == ["stopped"]


async def test_human_qa_waits_for_a_person_who_rejects_with_a_reason_then_approves(project: Project) -> None:
    project.agent("coder", [WORK, [*commit_file("tests/{item_slug}.txt", "tested\n")]])
    project.configure(qa_mode="human")
    app = make_app(project)
    async with client_for(app) as client:
        item_id = (await client.post("/api/items", json={"title": "Reviewed"})).json()["id"]
        await wait_until(app, in_stage(client, item_id, Stage.QA))
        waiting = await item_of(client, item_id)
        assert waiting["activity"]["state"] == "waiting" and {"approve", "reject"} <= set(waiting["actions"])
        rejected = await client.post(f"/api/items/{item_id}/reject", json={"reason": "add a test"})
        assert rejected.json()["stage"] == "coding" and rejected.json()["feedback"] == "add a test"
        await wait_until(app, in_stage(client, item_id, Stage.QA))
        approved = await client.post(f"/api/items/{item_id}/approve", headers={"X-Gangline-Actor": "carol"})
        assert approved.json()["stage"] == "merge"
        await wait_until(app, in_stage(client, item_id, Stage.DONE))
    assert "add a test" in project.prompts(item_id)[1]
    approvals = [e for e in project.store.events_after(0) if e.trigger == "qa_passed"]
    assert [e.actor for e in approvals] == ["carol"]


# --- the orchestrator's lifetime ---------------------------------------------------------------


async def test_shutdown_stops_running_agents_and_the_next_start_resumes_their_sessions(project: Project) -> None:
    project.agent("coder", [[{"say": "long job"}, {"hang": True}], WORK])
    project.configure()
    app = make_app(project)
    async with client_for(app) as client:
        sessions = Sessions(app)
        item_id = (await client.post("/api/items", json={"title": "Interrupted"})).json()["id"]
        _run_id, session = await sessions.next()
        began = time.monotonic()
    assert time.monotonic() - began < shutdown_bound(FAST)
    [stopped] = project.store.runs(item_id)
    item = project.item(item_id)
    assert stopped.outcome is RunOutcome.STOPPED and stopped.session_id == session
    assert item.stage is Stage.CODING and item.state.hold is None and item.session_id == stopped.session_id

    again = make_app(project)
    async with client_for(again) as client:
        await wait_until(again, in_stage(client, item_id, Stage.DONE))
    resumed = project.store.runs(item_id)[1]
    assert resumed.resumed_session == stopped.session_id and resumed.outcome is RunOutcome.SUCCEEDED


async def test_a_second_server_on_the_same_project_reports_its_orchestrator_down(project: Project) -> None:
    project.agent("coder", [WORK])
    project.configure()
    first, second = make_app(project), make_app(project)
    async with client_for(first) as one, client_for(second) as two:
        assert (await one.get("/health")).json()["orchestrator"] is True
        down = await two.get("/health")
        assert down.status_code == 503 and down.json() == {"ok": False, "db": True, "orchestrator": False}
        assert isinstance(state_of(second).serving.error, ServerLockedError)
        assert "gangline_orchestrator_up 0.0" in (await two.get("/metrics")).text


async def test_the_openapi_schema_documents_every_route_with_models_and_the_error_shape(project: Project) -> None:
    project.agent("coder", [WORK])
    project.configure()
    async with client_for(make_app(project), lifespan=False) as client:
        schema = (await client.get("/openapi.json")).json()
    paths = schema["paths"]
    for path, method in [
        ("/api/items", "get"),
        ("/api/items", "post"),
        ("/api/items/{item_id}", "patch"),
        ("/api/items/{item_id}/{action}", "post"),
        ("/api/runs/{run_id}/log", "get"),
        ("/api/runs/{run_id}/stop", "post"),
        ("/api/status", "get"),
        ("/api/costs", "get"),
        ("/health", "get"),
        ("/metrics", "get"),
    ]:
        operation = paths[path][method]
        assert "200" in operation["responses"] or "201" in operation["responses"] or "202" in operation["responses"]
    invalid = paths["/api/items"]["post"]["responses"]["422"]["content"]["application/json"]["schema"]
    assert invalid == {"$ref": "#/components/schemas/ErrorOut"}
    assert {"ItemOut", "ItemDetail", "RunOut", "LogPage", "StatusOut", "CostsOut"} <= set(
        schema["components"]["schemas"]
    )
    assert "HTTPValidationError" not in schema["components"]["schemas"]
    actions = schema["components"]["schemas"]["ItemAction"]["enum"]
    assert {"approve", "reject", "retry-merge", "stop"} <= set(actions)
    assert "/api/items/{item_id}" in paths and set(paths["/api/items/{item_id}"]) == {"get", "patch", "delete"}
    assert paths["/api/items"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]["items"] == {
        "$ref": "#/components/schemas/ItemOut"
    }
    assert Hold.BLOCKED.value in schema["components"]["schemas"]["Hold"]["enum"]


# --- the schema, fuzzed ----------------------------------------------------------------------


@pytest.mark.fuzz
def test_no_request_generated_from_the_openapi_schema_makes_the_server_fail(project: Project) -> None:
    # A coder that cannot start: items the fuzzer adds are blocked at once, with no agent processes.
    project.add_agent({"name": "coder", "cli": "fake", "command": str(project.root / "no-such-agent")})
    project.configure()
    app = make_app(project, token=TOKEN)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    streams = {
        (path, method.upper())
        for path, operations in app.openapi()["paths"].items()
        for method, operation in operations.items()
        if "text/event-stream" in str(operation.get("responses", {}))
    }
    # schemathesis runs the app, lifespan included, on its own event loop thread until told to stop.
    schema = schemathesis.openapi.from_asgi("/openapi.json", app, headers=auth)
    try:
        for result in schema.get_all_operations():
            operation = result.ok()
            streaming = (operation.path, operation.method.upper()) in streams
            _fuzz(operation, auth, examples=5 if streaming else 20, timeout_s=0.5 if streaming else 10)
    finally:
        shutdown_lifespans()


def _fuzz(operation: Any, auth: dict[str, str], examples: int, timeout_s: float) -> None:
    # Valid and invalid input alike: invalid input must be a 4xx, never a 5xx.
    cases = operation.as_strategy() | operation.as_strategy(generation_mode=GenerationMode.NEGATIVE)

    @hypothesis.settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
        suppress_health_check=list(hypothesis.HealthCheck),
    )
    @hypothesis.given(case=cases)
    def check(case: Any) -> None:
        response = case.call(headers=auth, timeout=timeout_s)
        assert response.status_code < 500, f"{case.method} {case.formatted_path}: {response.text[:500]}"

    check()
