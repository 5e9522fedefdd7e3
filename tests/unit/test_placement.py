"""Placement decisions without Ray: pools per type on each node, names and owner ids that say the node,
and the node watcher starting pools on a node that joins and dropping those of a node lost."""

from __future__ import annotations

from actors.runtime.placement import NodeWatcher, PoolSlot, node_of_owner, pool_slots, short

HEAD = "aaaaaaaa" + "0" * 48
W1 = "bbbbbbbb" + "1" * 48
W2 = "cccccccc" + "2" * 48
AGENTS = ["email", "leads"]


def test_each_node_gets_pool_actors_of_every_type_and_the_heads_keep_their_names() -> None:
    slots = pool_slots([W1, HEAD], HEAD, AGENTS, per_node=2, epoch="e1")
    assert [s.name for s in slots if s.node == HEAD] == ["pool-email-0", "pool-leads-0", "pool-email-1", "pool-leads-1"]
    assert [s.name for s in slots if s.node == W1] == [
        "pool-email-bbbbbbbb-0", "pool-leads-bbbbbbbb-0", "pool-email-bbbbbbbb-1", "pool-leads-bbbbbbbb-1"]
    assert slots[0].node == HEAD  # the head's first: a first plan's steps start there
    assert {s.owner for s in slots if s.agent == "leads"} == {
        "leads/aaaaaaaa/0/e1", "leads/aaaaaaaa/1/e1", "leads/bbbbbbbb/0/e1", "leads/bbbbbbbb/1/e1"}
    assert {node_of_owner(s.owner) for s in slots} == {short(HEAD), short(W1)}
    assert node_of_owner("an-old-owner") == ""


class _Cluster:
    def __init__(self, nodes: list[str]) -> None:
        self.nodes = nodes
        self.started: list[PoolSlot] = []
        self.dropped: list[PoolSlot] = []
        self.synced: list[list[PoolSlot]] = []

    def watcher(self) -> NodeWatcher:
        slots = pool_slots(self.nodes, HEAD, AGENTS, 1, "e1")
        return NodeWatcher(slots, HEAD, AGENTS, 1, "e1", nodes=lambda: list(self.nodes),
                           start_pools=self.started.extend, drop=self.dropped.extend, sync=self.synced.append)


def test_a_node_that_joins_gets_its_pools_and_the_dispatcher_is_told() -> None:
    c = _Cluster([HEAD, W1])
    w = c.watcher()
    assert w.step() == ([], []) and c.synced == []  # nothing changed: nothing asked of Ray or the dispatcher
    c.nodes.append(W2)
    started, dropped = w.step()
    assert [s.name for s in started] == ["pool-email-cccccccc-0", "pool-leads-cccccccc-0"] and dropped == []
    assert c.started == started
    assert {s.node for s in c.synced[-1]} == {HEAD, W1, W2} and len(c.synced[-1]) == 6
    assert w.step() == ([], [])  # started once


def test_a_lost_nodes_pools_are_dropped_not_restarted_and_the_head_is_never_dropped() -> None:
    c = _Cluster([HEAD, W1, W2])
    w = c.watcher()
    c.nodes.remove(W1)
    started, dropped = w.step()
    assert started == [] and {s.node for s in dropped} == {W1} and len(dropped) == 2
    assert c.dropped == dropped
    assert {s.node for s in c.synced[-1]} == {HEAD, W2}
    c.nodes.remove(HEAD)  # Ray briefly lists no head (its GCS busy): the head's pools stay
    assert w.step() == ([], [])
    assert {s.node for s in w.slots} == {HEAD, W2}


def test_a_node_lost_and_a_new_one_joined_in_one_look() -> None:
    c = _Cluster([HEAD, W1])
    w = c.watcher()
    c.nodes = [HEAD, W2]
    started, dropped = w.step()
    assert {s.node for s in started} == {W2} and {s.node for s in dropped} == {W1}
    assert sorted(s.name for s in c.synced[-1]) == sorted(
        ["pool-email-0", "pool-leads-0", "pool-email-cccccccc-0", "pool-leads-cccccccc-0"])
