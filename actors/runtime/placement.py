"""Where the app's actors run, in one machine's Ray or a LAN cluster's.

- **The head** (the node the app is started on) runs what owns files or reaches 127.0.0.1: the Store
  (DuckDB) and the embedded Memory (Qdrant's local path) — their files are there; the LLM gateways
  (the default LLM address and the embedded model are the head's 127.0.0.1); and the master, the
  dispatcher and the Workspace, so a worker machine's loss costs only its pools' steps. All pinned
  with a hard node affinity: Ray restarts them there.
- **The pools** are spread: ``settings.pool_actors`` of each agent type on every alive node. Per
  node rather than a fixed total spread round-robin: a node that joins adds its pools without moving
  any (no running step is reclaimed to rebalance), a node's loss takes exactly its pools, and every
  type stays on every machine. A pool is pinned to its node (a crashed pool restarts there).
- **A watcher** (:class:`NodeWatcher`, a thread of the process that started the app, which owns its
  actors) asks Ray for the alive nodes every few seconds: a node that joined gets its pools; a dead
  node's pools are dropped (a hard affinity to a dead node never schedules: they are not restarted),
  and the dispatcher is given the app's pools as they now are (``sync_pools``: it reclaims the dropped
  ones' steps at once and hands work to the new ones).

Pool names: the head's keep ``pool-<type>-<i>``; another node's are ``pool-<type>-<node>-<i>``, with
``<node>`` the first 8 hex digits of its Ray node id. A pool's owner id (the lease owner of the steps it
runs, and what its ``stats`` report) is ``<type>/<node>/<i>/<epoch>``: where a step ran can be read from it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import ray
import structlog
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from actors.agents import names as agent_names
from actors.pool import ActorSubAgentPool
from actors.runtime.boot import Boot
from actors.runtime.handles import Handle
from actors.runtime.ray_handles import LazyHandle, RayHandle
from core.settings import Settings

_log = structlog.get_logger("maos.placement")

NODE_WATCH_S = 2.0  # how often the watcher asks Ray for the alive nodes


def options(name: str, settings: Settings, **extra: Any) -> dict[str, Any]:
    """Ray options of one of the app's named actors."""
    return {"name": name, "namespace": settings.namespace, "num_cpus": 0, "max_restarts": -1,
            "max_task_retries": 0, "max_concurrency": 100_000, "lifetime": None, **extra}


def up(h: RayHandle) -> Any:
    """A reference that is ready once the actor is (its ``ping`` is asked again if Ray restarts it)."""
    return h.actor.ping.options(max_task_retries=-1).remote()


def current_node() -> str:
    """The Ray node id of this process (the head, for the process that starts the app)."""
    return str(ray.get_runtime_context().get_node_id())


def on_node(node_id: str) -> dict[str, Any]:
    """Placement on one node, restarted there (and nowhere else)."""
    return {"scheduling_strategy": NodeAffinitySchedulingStrategy(node_id, soft=False)}


def here() -> dict[str, Any]:
    """Placement on this process's node (the head): for the actors owning files under data_dir and those
    reaching 127.0.0.1."""
    return on_node(current_node())


def alive_nodes() -> list[str]:
    """The Ray node ids of the cluster's alive nodes."""
    return sorted(str(n["NodeID"]) for n in ray.nodes() if n.get("Alive"))


def short(node_id: str) -> str:
    return node_id[:8]


@dataclass(frozen=True)
class PoolSlot:
    """One pool the placement wants: its type, actor name, owner id and node."""

    agent: str
    name: str
    owner: str
    node: str


def pool_slots(nodes: Iterable[str], head: str, agents: Iterable[str], per_node: int, epoch: str) -> list[PoolSlot]:
    """The pools for ``nodes``: ``per_node`` of each agent type on each (see the module's docstring).
    Ordered type by type, so a first pool of every type comes before a second of any."""
    agents = list(agents)
    out: list[PoolSlot] = []
    for node in sorted(set(nodes), key=lambda n: (n != head, n)):
        for i in range(per_node):
            for agent in agents:
                name = f"pool-{agent}-{i}" if node == head else f"pool-{agent}-{short(node)}-{i}"
                out.append(PoolSlot(agent, name, f"{agent}/{short(node)}/{i}/{epoch}", node))
    return out


def node_of_owner(owner: str) -> str:
    """The short node id in a pool's owner id (``<type>/<node>/<i>/<epoch>``)."""
    parts = owner.split("/")
    return parts[1] if len(parts) == 4 else ""


def lazy_pools(slots: list[PoolSlot], namespace: str) -> dict[str, list[Handle]]:
    """The dispatcher's handles to the pools: by name, labelled with their owner ids."""
    out: dict[str, list[Handle]] = {agent: [] for agent in agent_names()}
    for s in slots:
        out[s.agent].append(LazyHandle(s.name, namespace, s.owner))
    return out


class PoolStarter:
    """Starts pool actors on their nodes, one after another.

    Pools reach the others by name: a process given an actor's handle imports that actor's module as it
    starts (Google's client, onnxruntime, DuckDB: about 0.4 s of each pool's start here); by name, only
    when it first calls it."""

    def __init__(self, settings: Settings, boot: Boot) -> None:
        self._settings = settings
        self._boot = boot
        self._cls: Any = ray.remote(ActorSubAgentPool)
        self._k = 0  # pools started: each is given a gateway in turn

    def start(self, slots: list[PoolSlot], after: Any = None) -> dict[str, list[RayHandle]]:
        """Each pool once the one before it is up (the first once ``after`` is ready)."""
        ns = self._settings.namespace
        out: dict[str, list[RayHandle]] = {}
        previous = after
        for s in slots:
            try:
                actor = self._cls.options(**options(s.name, self._settings, **on_node(s.node))).remote(
                    self._boot, agent=s.agent, owner=s.owner, settings=self._settings,
                    gateway=LazyHandle(f"gateway-{self._k % self._settings.gateway_replicas}", ns),
                    store=LazyHandle("store", ns), dispatcher=LazyHandle("dispatcher", ns),
                    memory=LazyHandle("memory", ns), workspace=LazyHandle("workspace", ns), _after=previous)
            except ValueError:  # the name is taken: started by an earlier look that failed part-way
                actor = ray.get_actor(s.name, namespace=ns)
            out.setdefault(s.agent, []).append(RayHandle(actor, s.owner))
            previous = up(out[s.agent][-1])
            self._k += 1
        return out


class NodeWatcher:
    """Keeps pools on every alive node (see the module's docstring). ``step`` is one look; ``start``
    runs it every ``period_s`` in a daemon thread until ``stop``. The Ray side comes in as callables
    (``nodes``, ``start_pools``, ``drop``, ``sync``), so the decisions are tested without Ray."""

    def __init__(self, slots: list[PoolSlot], head: str, agents: list[str], per_node: int, epoch: str, *,
                 nodes: Callable[[], list[str]], start_pools: Callable[[list[PoolSlot]], None],
                 drop: Callable[[list[PoolSlot]], None], sync: Callable[[list[PoolSlot]], None],
                 period_s: float = NODE_WATCH_S) -> None:
        self.slots = list(slots)
        self._head, self._agents, self._per_node, self._epoch = head, agents, per_node, epoch
        self._nodes, self._start_pools, self._drop, self._sync = nodes, start_pools, drop, sync
        self._period = period_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def step(self) -> tuple[list[PoolSlot], list[PoolSlot]]:
        """One look at the nodes: start the pools of nodes that joined, drop those of nodes gone, and tell
        the dispatcher when anything changed. Returns (started, dropped)."""
        alive = set(self._nodes())
        placed = {s.node for s in self.slots}
        gone = [s for s in self.slots if s.node not in alive and s.node != self._head]
        new = pool_slots(alive - placed, self._head, self._agents, self._per_node, self._epoch)
        if not gone and not new:
            return [], []
        if new:
            self._start_pools(new)
        if gone:
            self._drop(gone)
        self.slots = [s for s in self.slots if s not in gone] + new
        self._sync(self.slots)
        _log.info("placement.changed", started=len(new), dropped=len(gone), nodes=len(alive))
        return new, gone

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="maos-node-watcher", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self._period):
            try:
                self.step()
            except Exception as exc:  # Ray busy or the cluster going down: look again next time
                _log.warning("placement.watch_failed", error=str(exc))

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=30)
