"""The one seam that owns Ray: remote classes, named lookups, kills, cluster info.

Everything else talks to actors through typed handles (``actors.runtime.typed``). The app is a
set of named actors in one Ray namespace: a Store, LLM gateway(s), the master, the dispatcher, and
pools of each sub-agent type on every node (where each runs: ``actors.runtime.placement``).
``start_app`` creates them (or returns the running ones); ``connect`` finds an app another process
started (its Ray address is in ``<data_dir>/app.json``).

Construction order has no patch-up step: an actor started before one it calls (the master before
the dispatcher; the dispatcher before its pools; pools before nothing) is given a handle *by name*
(:class:`LazyHandle`), resolved on its first call. The name is all the actor needs, and the
runtime creates the named actor before any call can be made (``dispatcher.start`` runs last).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import socket
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import ray
import structlog
from ray.exceptions import ActorDiedError

from actors.agents import names as agent_names
from actors.dispatcher import ActorDispatcher
from actors.gateway import ActorLLMGateway
from actors.master import ActorMasterAgent
from actors.memory import ActorMemory
from actors.runtime.apis import (
    DispatcherApi,
    GatewayApi,
    MasterApi,
    MemoryApi,
    PoolApi,
    StoreApi,
    WorkspaceApi,
)
from actors.runtime.boot import Boot, forget_secrets, publish_secrets
from actors.runtime.placement import (
    NodeWatcher,
    PoolSlot,
    PoolStarter,
    alive_nodes,
    current_node,
    here,
    lazy_pools,
    on_node,
    options,
    pool_slots,
    up,
)
from actors.runtime.ray_handles import LazyHandle, RayHandle
from actors.runtime.typed import handle_of, typed
from actors.storage.queue import RetryPolicy
from actors.store import ActorStore
from actors.workspace import ActorWorkspace
from core.errors import ConfigError
from core.settings import Settings, apply_ray_environment, ensure_ray_token
from integrations.llm.backend import Backend

_log = structlog.get_logger("maos.runtime")


# --- cluster -----------------------------------------------------------------------------------


def init_ray(settings: Settings, address: str | None = None, dashboard: bool = True) -> str:
    """Join the cluster at ``address`` (or RAY_ADDRESS), else start a local one (with Ray's
    dashboard unless ``dashboard`` is False: it is a dozen processes). Returns its address."""
    if not ray.is_initialized():
        target = address if address is not None else settings.ray_address
        if target is None:
            ensure_ray_token(settings.ray_token_path)
        use_token_auth(settings.ray_token_path)
        # No runtime_env: a worker with one cannot be a prestarted worker and waits on the runtime
        # env agent (start-up went from 12.7 to 8.9 s). The gateway sets litellm's environment itself.
        if target is not None:
            ray.init(address=target, namespace=settings.namespace, log_to_driver=False)
        else:
            # "local": a new instance, never a `ray start` cluster found through /tmp/ray (a head run
            # on this machine, or a stale record of one) joined by accident
            ray.init(address="local",
                     num_cpus=settings.ray_num_cpus if settings.ray_num_cpus is not None else os.cpu_count(),
                     namespace=settings.namespace, include_dashboard=dashboard,
                     dashboard_host=settings.dashboard_host, log_to_driver=False)
    return str(ray.get_runtime_context().gcs_address)


def use_token_auth(token_path: Path) -> None:
    """Ray's token authentication on for this process and every Ray process it starts, with the
    token at ``token_path`` (``RAY_AUTH_TOKEN`` in the environment wins: a cluster's own)."""
    from ray._raylet import AuthenticationTokenLoader, Config  # type: ignore[attr-defined]  # compiled, no stubs

    apply_ray_environment(token_path)
    Config.initialize("")  # Ray caches its configuration (the auth mode) on first read
    AuthenticationTokenLoader.instance().reset_cache()


def dashboard_url() -> str | None:
    """The Ray dashboard's URL, when the cluster runs one."""
    from ray._private.worker import get_dashboard_url

    try:
        url = get_dashboard_url()
    except Exception:  # no dashboard in this cluster
        return None
    if not url:
        return None
    return url if url.startswith("http") else f"http://{url}"


def cluster_nodes() -> int:
    return sum(1 for n in ray.nodes() if n.get("Alive"))


def shutdown_ray() -> None:
    if ray.is_initialized():
        ray.shutdown()


# --- the app -----------------------------------------------------------------------------------


@dataclass
class App:
    settings: Settings
    backend: Backend
    store: StoreApi
    gateways: list[GatewayApi]
    master: MasterApi
    dispatcher: DispatcherApi
    memory: MemoryApi
    workspace: WorkspaceApi
    pools: dict[str, list[PoolApi]] = field(default_factory=dict)
    watcher: NodeWatcher | None = None  # keeps pools on every alive node (see actors.runtime.placement)

    def all_handles(self) -> list[RayHandle]:
        return [ray_handle(h) for h in (self.dispatcher, self.master, *self.gateways,
                                        *(h for hs in self.pools.values() for h in hs),
                                        self.memory, self.workspace, self.store)]


def ray_handle(actor: object) -> RayHandle:
    """The Ray handle behind one of an App's typed handles (kills, placement, Ray's own calls)."""
    return cast(RayHandle, handle_of(actor))


def ray_actor(actor: object) -> Any:
    """The Ray actor behind one of an App's typed handles (tests and benchmarks reach it with Ray's own
    ``__ray_call__``)."""
    return ray_handle(actor).actor


def _app_file(settings: Settings) -> Path:
    return settings.data_dir / "app.json"


def start_store(settings: Settings) -> RayHandle:
    """The Store alone, before anything else of an app: the settings saved from the UI are read from it
    (``saved_settings``: no other process opens the database file), and they choose the LLM backend
    the rest is started with (``start_app``). Publishes the secrets (the Store reads its key from them)."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    publish_secrets(settings)
    plain = settings.without_secrets()
    store_cls: Any = ray.remote(ActorStore)
    retry = RetryPolicy(base_s=plain.retry_base_s, max_s=plain.retry_max_s)
    return RayHandle(store_cls.options(**options("store", plain, **here())).remote(
        Boot.of(plain, saved_settings=False), db_path=str(plain.db_path.resolve()), retry=retry, keys_of=plain,
        threads=plain.db_threads), "store")


def saved_settings(store: RayHandle, timeout_s: float = 120.0) -> dict[str, Any]:
    """What the settings page saved, from a Store just started. A Store that cannot open the database
    (a wrong ENCRYPTION_KEY) says why, as a ConfigError."""
    try:
        return dict(ray.get(store.actor.settings_overrides.remote(), timeout=timeout_s))
    except ActorDiedError as exc:
        if not exc.actor_init_failed:
            raise
        lines = [line for line in str(exc.error_msg).splitlines() if line.strip()]
        raise ConfigError(f"the Store did not start: {lines[-1] if lines else exc}") from None


def start_app(settings: Settings, backend: Backend, store: RayHandle | None = None) -> App:
    """Create the app's actors, wire them, and start dispatching (recovering what a previous app left).
    ``store``: the one ``start_store`` started (to read the saved settings first); else one starts here.

    The secrets in ``settings`` (and the backend's API key) are published to the cluster's key-value
    store and read back by each actor as it starts; no actor argument carries one."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    publish_secrets(settings)
    keep = settings
    settings = settings.without_secrets()
    backend = dataclasses.replace(backend, api_key=None)
    epoch = uuid.uuid4().hex[:6]
    head = current_node()
    on_head = on_node(head)  # see actors.runtime.placement: what runs on the head, and why
    boot = Boot.of(settings)
    # The gateway first (after the Store, when the caller read the saved settings from it): importing
    # litellm is the longest start of all (2-3 s of CPU).
    n_gw = settings.gateway_replicas
    per_gw = max(1, -(-settings.llm_slots // n_gw))
    gw_cls: Any = ray.remote(ActorLLMGateway)
    gateways = [
        RayHandle(gw_cls.options(**options(f"gateway-{i}", settings, **on_head)).remote(
            # settings and backend by position: the gateway's prepare_process is given them (see boot)
            boot, settings, backend, store=LazyHandle("store", settings.namespace), slots=per_gw,
            replica=i), f"gateway-{i}")
        for i in range(n_gw)
    ]
    if store is None:  # after the gateway's (the settings saved from the UI are then not applied)
        store = start_store(keep)
    memory_cls: Any = ray.remote(ActorMemory)
    memory_on = {} if settings.qdrant_url else on_head  # with a Qdrant server it may run anywhere
    memory = RayHandle(memory_cls.options(**options("memory", settings, **memory_on)).remote(
        boot, settings=settings, store=store, gateway=gateways[0]), "memory")
    master_cls: Any = ray.remote(ActorMasterAgent)
    master = RayHandle(master_cls.options(**options("master", settings, **on_head)).remote(
        boot, settings=settings, store=store, gateway=gateways[0], dispatcher=LazyHandle("dispatcher", settings.namespace),
        embedded=backend.provider == "embedded", memory=memory), "master")
    # Ray starts one process per actor, a few at a time on a small machine: the ones a first plan
    # waits on are asked for first, the pools last. So the dispatcher finds its pools by name
    # (and pools find the dispatcher by name). The pools: settings.pool_actors of each type on each alive node.
    slots = pool_slots(alive_nodes(), head, agent_names(), settings.pool_actors, epoch)
    disp_cls: Any = ray.remote(ActorDispatcher)
    dispatcher = RayHandle(disp_cls.options(**options("dispatcher", settings, **on_head)).remote(
        boot, settings=settings, store=store, pools=lazy_pools(slots, settings.namespace), master=master, gateway_slots=settings.total_llm_slots),
        "dispatcher")
    workspace_cls: Any = ray.remote(ActorWorkspace)
    # Ray starts no process for an actor before the arguments it is given are ready (``_after``, which
    # the actor never sees). Fourteen processes started at once on a small machine all came up late,
    # the gateway's (importing litellm, what the first plan waits on) among them. So the pools start
    # one after another, the first once the gateway is up (a first plan needs no pool; a pool starting
    # beside the gateway's litellm import delayed it), and the Workspace once the gateway is up too.
    gateway_up = up(gateways[0])
    workspace = RayHandle(workspace_cls.options(**options("workspace", settings, **on_head)).remote(
        boot, settings=settings, store=store, _after=gateway_up), "workspace")
    starter = PoolStarter(settings, boot)
    pools = starter.start(slots, after=gateway_up)
    ray.get(dispatcher.actor.start.remote())
    app = App(keep, backend, typed(store, StoreApi), [typed(g, GatewayApi) for g in gateways], typed(master, MasterApi),
              typed(dispatcher, DispatcherApi), typed(memory, MemoryApi), typed(workspace, WorkspaceApi),
              {agent: [typed(h, PoolApi) for h in pools.get(agent, [])] for agent in agent_names()})
    app.watcher = _node_watcher(app, starter, slots, head, epoch)
    app.watcher.start()
    _app_file(settings).write_text(json.dumps({"ray_address": ray.get_runtime_context().gcs_address,
                                               "namespace": settings.namespace, "pid": os.getpid(),
                                               "backend": backend.provider, "base_url": backend.base_url}))
    _log.info("app.started", pools=sum(len(v) for v in pools.values()), gateways=n_gw, backend=backend.provider)
    return app


def _node_watcher(app: App, starter: PoolStarter, slots: list[PoolSlot], head: str, epoch: str) -> NodeWatcher:
    """The watcher of the app's nodes: a node that joins gets pools, a dead node's pools are dropped, and
    the dispatcher and ``app.pools`` follow."""
    settings = app.settings

    def start_pools(new: list[PoolSlot]) -> None:
        for agent, handles in starter.start(new).items():
            app.pools[agent] = [*app.pools.get(agent, []), *(typed(h, PoolApi) for h in handles)]

    def drop(gone: list[PoolSlot]) -> None:
        owners = {s.owner for s in gone}
        for agent, handles in list(app.pools.items()):
            for h in handles:
                if ray_handle(h).name in owners:
                    _kill_quietly(ray_handle(h))
            app.pools[agent] = [h for h in handles if ray_handle(h).name not in owners]

    def sync(now: list[PoolSlot]) -> None:
        ray.get(ray_actor(app.dispatcher).sync_pools.remote(pools=lazy_pools(now, settings.namespace)), timeout=60)

    return NodeWatcher(slots, head, agent_names(), settings.pool_actors, epoch,
                       nodes=alive_nodes, start_pools=start_pools, drop=drop, sync=sync)


def _kill_quietly(h: RayHandle) -> None:
    try:
        ray.kill(h.actor, no_restart=True)
    except Exception as exc:  # already gone
        _log.debug("actor.kill_failed", actor=h.name, error=str(exc))


def app_address(settings: Settings) -> str | None:
    """The Ray address of a running app on this data directory, if its process is alive and its Ray
    answers (an app stopping may have shut its Ray down already: joining it would wait a minute)."""
    path = _app_file(settings)
    if not path.exists():
        return None
    info = json.loads(path.read_text())
    try:
        os.kill(int(info["pid"]), 0)
    except (OSError, ValueError, KeyError):
        return None
    address = str(info["ray_address"])
    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=2.0).close()
    except (OSError, ValueError):
        return None
    return address


def connect(settings: Settings, backend: Backend) -> App | None:
    """Handles to the app's named actors in the current cluster, or None if it is not running."""
    def get(name: str) -> Any:
        return ray.get_actor(name, namespace=settings.namespace)

    try:
        store = RayHandle(get("store"), "store")
        gateways = [RayHandle(get(f"gateway-{i}"), f"gateway-{i}") for i in range(settings.gateway_replicas)]
        master = RayHandle(get("master"), "master")
        dispatcher = RayHandle(get("dispatcher"), "dispatcher")
        memory = RayHandle(get("memory"), "memory")
        workspace = RayHandle(get("workspace"), "workspace")
        named = [a["name"] for a in ray.util.list_named_actors(all_namespaces=True) if a["namespace"] == settings.namespace]
        pools = {agent: [RayHandle(get(name), name) for name in sorted(named) if _is_pool_of(agent, name)]
                 for agent in agent_names()}
    except ValueError:
        return None
    return App(settings, backend, typed(store, StoreApi), [typed(g, GatewayApi) for g in gateways], typed(master, MasterApi),
               typed(dispatcher, DispatcherApi), typed(memory, MemoryApi), typed(workspace, WorkspaceApi),
               {agent: [typed(h, PoolApi) for h in hs] for agent, hs in pools.items()})


def _is_pool_of(agent: str, name: str) -> bool:
    """Whether ``name`` is one of the pool names of ``agent`` (``pool-<type>-<i>`` on the head,
    ``pool-<type>-<node>-<i>`` elsewhere: see actors.runtime.placement)."""
    return re.fullmatch(rf"pool-{re.escape(agent)}-(?:[0-9a-f]{{8}}-)?\d+", name) is not None


def kill_app(app: App) -> None:
    """Kill every actor of the app at once, as a crash would (tests and shutdown), and withdraw its secrets."""
    if app.watcher is not None:
        app.watcher.stop()
    for h in app.all_handles():
        _kill_quietly(h)
    for h in app.all_handles():
        _wait_dead(h)
    try:
        forget_secrets(app.settings.namespace)
    except Exception as exc:  # Ray already down
        _log.debug("secrets.forget_failed", error=str(exc))


def _wait_dead(h: RayHandle, timeout_s: float = 10.0) -> None:
    try:
        ray.get(h.actor.ping.remote(), timeout=timeout_s)
    except Exception:
        return


def kill_actor(actor: object, restart: bool = True) -> None:
    """Kill one of an App's actors (a typed handle) like a crash; the runtime restarts it unless
    ``restart`` is False."""
    ray.kill(ray_actor(actor), no_restart=not restart)


def current_address() -> str:
    return str(ray.get_runtime_context().gcs_address)
