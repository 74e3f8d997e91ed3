"""Build nodes' pure rules, as tables: where a run goes, which node may take an offer, what slots may say."""

from __future__ import annotations

import pytest

from gangline.core.errors import ConfigError
from gangline.core.nodes import LEASE_S, NodeRow, Offer, can_take, capacity, check_slots, on_node
from gangline.core.profiles import Role

C, Q, M, CHAT = Role.CODER, Role.QA, Role.MERGEMASTER, Role.CHAT


@pytest.mark.parametrize(
    ("role", "labels", "busy", "limit", "room", "to_node"),
    [
        (C, (), 0, 2, 4, False),  # the server has a free slot
        (C, (), 2, 2, 4, True),  # full: the nodes take more
        (C, (), 2, 2, 0, False),  # full and no node has room: asked beyond every limit, it runs here
        (C, (), 0, 0, 0, True),  # the server runs no agents: it waits for a node
        (C, ("gpu",), 0, 2, 0, True),  # a label only a node has
        (Q, (), 1, 1, 1, True),
        (M, (), 0, 0, 0, False),  # a mergemaster never waits: no node's mergemaster slot, it runs here
        (M, (), 0, 0, 1, True),
        (M, (), 0, 1, 1, False),  # the server's own mergemaster slot is free
        (CHAT, ("gpu",), 0, 0, 4, False),  # the chat agent is the server's
    ],
)
def test_where_a_run_goes(role: Role, labels: tuple[str, ...], busy: int, limit: int, room: int, to_node: bool) -> None:
    assert on_node(role, labels, busy, limit, room) is to_node


def node(**changes: object) -> NodeRow:
    fields: dict[str, object] = {
        "id": 1, "name": "a", "labels": ("gpu",), "slots": {"coder": 1, "qa": 1}, "clis": {"claude": "2"},
        "joined_at": 0.0, "seen_at": 100.0, "draining": False,
    }  # fmt: skip
    return NodeRow(**{**fields, **changes})  # type: ignore[arg-type]


def offer(**changes: object) -> Offer:
    fields: dict[str, object] = {"run_id": "1-coder-1", "item_id": 1, "role": C, "cli": "claude", "labels": (),
                                 "node_id": None, "payload": {}}  # fmt: skip
    return Offer(**{**fields, **changes})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("the_node", "the_offer", "busy", "takes"),
    [
        (node(), offer(), {}, True),
        (node(draining=True), offer(), {}, False),
        (node(), offer(cli="codex"), {}, False),
        (node(), offer(labels=("gpu",)), {}, True),
        (node(labels=()), offer(labels=("gpu",)), {}, False),
        (node(), offer(node_id=2), {}, False),  # the resumed session lives on node 2
        (node(), offer(), {"coder": 1}, False),  # its one coder slot is taken
        (node(), offer(role=Q), {"coder": 1}, True),
        (node(), offer(role=M), {}, False),  # no mergemaster slot
    ],
)
def test_which_node_may_take_an_offer(the_node: NodeRow, the_offer: Offer, busy: dict[str, int], takes: bool) -> None:
    assert can_take(the_node, the_offer, busy) is takes


def test_capacity_counts_the_live_nodes_that_are_not_draining() -> None:
    now = 100.0 + LEASE_S
    nodes = [node(), node(id=2, seen_at=99.0), node(id=3, draining=True), node(id=4, slots={"mergemaster": 1})]
    assert capacity(nodes, now) == {C: 1, Q: 1, M: 1}  # node 2 was last heard from more than a lease ago


@pytest.mark.parametrize(
    ("slots", "said"),
    [({"chat": 1}, "slots.chat: expected one of coder, qa, mergemaster"),
     ({"coder": 65}, "slots.coder: expected an integer from 0 to 64"),
     ({"qa": True}, "slots.qa: expected an integer from 0 to 64")],
)  # fmt: skip
def test_slots_name_the_pipelines_roles_with_a_bounded_count(slots: dict[str, int], said: str) -> None:
    with pytest.raises(ConfigError) as refused:
        check_slots(slots)
    assert str(refused.value) == said
