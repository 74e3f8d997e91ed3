"""Build nodes' rows in the real store, on SQLite and PostgreSQL: joining, claims, epochs, lapses."""

from __future__ import annotations

import threading

import pytest

from gangline.core.errors import NotFoundError
from gangline.core.events import RunOutcome
from gangline.core.items import ItemDraft
from gangline.core.nodes import LeaseLost, NodeRefused, NodeRow, Offer, digest
from gangline.core.profiles import Role
from gangline.core.records import NewRun, RunEnd
from gangline.store import Store
from kits.clock import Clock

ABOUT = {"labels": ["gpu"], "slots": {"coder": 2, "qa": 1}, "clis": {"fake": "1.0"}}


def joined(store: Store, name: str, **about: object) -> NodeRow:
    store.add_node_token(digest(f"token-{name}"), 3600)
    return store.join_node(digest(f"token-{name}"), digest(f"cred-{name}"), name, {**ABOUT, **about})


def offered(store: Store, title: str, labels: tuple[str, ...] = (), node_id: int | None = None) -> str:
    item = store.create_item(ItemDraft(title=title), "person")
    run_id = f"{item.id}-coder-1"
    store.start_run(NewRun(run_id, item.id, Role.CODER, "coder", 1, "/w", "/l"), item.state, "server")
    store.offer_run(Offer(run_id, item.id, Role.CODER, "fake", labels, node_id, {"run_id": run_id}, store.clock()))
    return run_id


def test_a_join_token_is_spent_once_and_expires(store: Store, clock: Clock) -> None:
    node = joined(store, "a")
    assert (node.name, node.labels, dict(node.slots)) == ("a", ("gpu",), {"coder": 2, "qa": 1})
    assert store.node_by_credential(digest("cred-a")).id == node.id
    with pytest.raises(NodeRefused, match="already used"):
        store.join_node(digest("token-a"), digest("other"), "b", ABOUT)
    store.add_node_token(digest("late"), 60)
    clock.now += 61
    with pytest.raises(NodeRefused, match="expired"):
        store.join_node(digest("late"), digest("other"), "b", ABOUT)
    with pytest.raises(NodeRefused, match="not known"):
        store.node_by_credential(digest("wrong"))


def test_a_node_joining_again_under_its_name_gets_a_new_credential_and_the_old_one_stops_working(store: Store) -> None:
    first = joined(store, "a")
    store.add_node_token(digest("again"), 60)
    again = store.join_node(digest("again"), digest("new-cred"), "a", ABOUT)
    assert again.id == first.id and len(store.nodes()) == 1
    with pytest.raises(NodeRefused):
        store.node_by_credential(digest("cred-a"))


def test_claims_take_the_oldest_offer_the_node_can_take_with_ever_larger_epochs(store: Store, clock: Clock) -> None:
    plain, gpu = joined(store, "plain", labels=[]), joined(store, "gpu")
    needs_gpu = offered(store, "Needs a GPU", labels=("gpu",))
    clock.now += 1
    anyone = offered(store, "Anyone")
    assert store.claim(plain, {}) is not None and store.lease_of(anyone) is not None  # the GPU offer is not its
    claimed = store.claim(gpu, {})
    assert claimed is not None and claimed[0].run_id == needs_gpu
    assert store.lease_of(needs_gpu).epoch > store.lease_of(anyone).epoch  # type: ignore[union-attr]
    assert store.get_run(needs_gpu).node_id == gpu.id
    assert store.claim(gpu, {}) is None  # nothing left


def test_a_full_or_draining_node_claims_nothing_and_an_offer_for_one_node_waits_for_it(store: Store) -> None:
    a, b = joined(store, "a"), joined(store, "b")
    run_id = offered(store, "Resumes on a", node_id=a.id)
    assert store.claim(a, {"coder": 2}) is None  # its coder slots are full
    assert store.claim(b, {}) is None  # the session lives on a
    store.drain_node("a", True, "person")
    assert store.claim(store.nodes()[0], {}) is None
    store.drain_node("a", False, "person")
    claimed = store.claim(store.nodes()[0], {})
    assert claimed is not None and claimed[0].run_id == run_id
    with pytest.raises(NotFoundError):
        store.drain_node("nobody", True, "person")


def test_a_lease_is_refused_once_it_lapsed_ended_or_its_run_ended_or_to_others(store: Store, clock: Clock) -> None:
    a, b = joined(store, "a"), joined(store, "b")
    run_id = offered(store, "Item")
    claimed = store.claim(a, {}, lease_s=90)
    assert claimed is not None
    epoch = claimed[1].epoch
    clock.now += 80
    assert store.renew_lease(a.id, run_id, epoch, lease_s=90).expires_at == clock.now + 90
    with pytest.raises(LeaseLost, match="no such lease"):
        store.check_lease(b.id, run_id, epoch)
    clock.now += 91
    with pytest.raises(LeaseLost, match="lapsed"):
        store.renew_lease(a.id, run_id, epoch)
    other = offered(store, "Other")
    again = store.claim(a, {})
    assert again is not None and again[0].run_id == other
    store.finish_run(other, RunEnd(RunOutcome.SUCCEEDED, "done"), "server")
    with pytest.raises(LeaseLost, match="run has ended"):
        store.check_lease(a.id, other, again[1].epoch)
    assert store.end_lease(run_id, "lapsed") is not None
    with pytest.raises(LeaseLost, match="lapsed"):
        store.check_lease(a.id, run_id, epoch)


def test_an_offer_whose_run_ended_meanwhile_is_not_leased(store: Store) -> None:
    a = joined(store, "a")
    run_id = offered(store, "Closed by a restart")
    store.finish_run(run_id, RunEnd(RunOutcome.CRASHED, "gangline stopped while this run was live"), "server")
    assert store.claim(a, {}) is None


def test_an_offer_no_node_took_can_be_withdrawn_and_one_taken_cannot(store: Store) -> None:
    a = joined(store, "a")
    waiting, taken = offered(store, "Waiting"), offered(store, "Taken")
    assert store.withdraw_offer(waiting)
    assert store.claim(a, {}) is not None
    assert not store.withdraw_offer(taken)
    assert store.claim(joined(store, "b"), {}) is None  # nothing is left to lease


def test_nodes_claiming_at_once_each_get_a_different_run(store: Store) -> None:
    nodes = [joined(store, f"n{i}", slots={"coder": 64}) for i in range(4)]
    runs = {offered(store, f"Item {i}") for i in range(12)}
    got: list[str] = []
    lock = threading.Lock()

    def claim_all(node: NodeRow) -> None:
        while (claimed := store.claim(node, {})) is not None:
            with lock:
                got.append(claimed[0].run_id)

    threads = [threading.Thread(target=claim_all, args=(node,)) for node in nodes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(got) == sorted(runs)  # each run once
