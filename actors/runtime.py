"""The one seam that owns Ray: remote classes, named lookups, kills, cluster info.

Everything else talks to actors through :class:`actors.handles.Handle`. The app is a set of
named actors in one Ray namespace: a Store, LLM gateway(s), the master, the dispatcher, and a
pool per sub-agent type. ``start_app`` creates them (or returns the running ones); ``connect``
finds an app another process started (its Ray address is in ``<data_dir>/app.json``).
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import ray
import structlog
from ray.exceptions import ActorDiedError, ActorUnavailableError, RayActorError, RayTaskError
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from actors._database import database_keys
from actors.agents import names as agent_names
from actors.dispatcher import Dispatcher
from actors.gateway import LLMGateway
from actors.master import MasterAgent
from actors.memory import Memory
from actors.pool import SubAgentPool
from actors.queue import RetryPolicy
from actors.store import Store
from actors.workspace import Workspace
from core.errors import ActorGone, MaosError
from core.logging import configure
from core.settings import Settings, apply_ray_environment, overlay
from integrations.llm.backend import Backend

_log = structlog.get_logger("maos.runtime")
_GONE = (RayActorError, ActorDiedError, ActorUnavailableError)


class RayHandle:
    """A Ray actor behind the Handle protocol; actor death becomes :class:`ActorGone`."""

    def __init__(self, actor: Any, name: str) -> None:
        self.actor = actor
        self.name = name

    async def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        try:
            return await getattr(self.actor, method).remote(*args, **kwargs)
        except _GONE as exc:
            raise ActorGone(f"actor '{self.name}' is gone: {type(exc).__name__}", self.name) from None
        except RayTaskError as exc:
            # The program's own errors cross as themselves, without Ray's traceback in the message.
            if isinstance(exc.cause, MaosError):
                raise exc.cause from None
            raise

    def fire(self, method: str, *args: Any, **kwargs: Any) -> asyncio.Future[Any]:
        ref = getattr(self.actor, method).remote(*args, **kwargs)
        fut = asyncio.wrap_future(ref.future())
        fut.add_done_callback(_log_fire_failure(self.name, method))
        return fut

    async def stream(self, method: str, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        gen = getattr(self.actor, method).remote(*args, **kwargs)
        async for ref in gen:
            yield await ref

    def get(self, method: str, *args: Any, timeout: float | None = None) -> Any:
        """Blocking call, for synchronous callers (the CLI)."""
        try:
            return ray.get(getattr(self.actor, method).remote(*args), timeout=timeout)
        except _GONE as exc:
            raise ActorGone(f"actor '{self.name}' is gone: {type(exc).__name__}", self.name) from None


def _log_fire_failure(name: str, method: str) -> Any:
    def done(fut: asyncio.Future[Any]) -> None:
        if not fut.cancelled() and fut.exception() is not None:
            _log.warning("actor.fire_failed", actor=name, method=method, error=repr(fut.exception()))
    return done


def _with_logging(cls: type, settings: Settings) -> type:
    """A subclass that sets up structlog in the actor's process before the class runs, and hands it
    the settings saved from the UI (an actor Ray restarts gets its start-up arguments again)."""
    level, fmt, namespace = settings.log_level, settings.log_format, settings.namespace

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        configure(level, "json" if fmt == "auto" else fmt)
        if cls is not Store:
            args = _saved_settings_applied(args, namespace)
        cls.__init__(self, *args, **kwargs)  # type: ignore[misc]  # the wrapped class's own constructor

    return type(cls.__name__, (cls,), {"__init__": __init__, "__module__": cls.__module__})


def _saved_settings_applied(args: tuple[Any, ...], namespace: str) -> tuple[Any, ...]:
    """``args`` with any Settings overlaid by what the Store has saved; unchanged if it cannot answer."""
    if not any(isinstance(a, Settings) for a in args):
        return args
    try:
        saved = cast(dict[str, object], ray.get(
            ray.get_actor("store", namespace=namespace).settings_overrides.remote(), timeout=30))
    except Exception as exc:  # no Store (yet): the start-up settings stand
        _log.warning("actor.saved_settings_unavailable", error=str(exc))
        return args
    return tuple(overlay(a, saved) if isinstance(a, Settings) else a for a in args)


# --- cluster -----------------------------------------------------------------------------------


def init_ray(settings: Settings, address: str | None = None) -> str:
    """Join the cluster at ``address`` (or RAY_ADDRESS), else start a local one. Returns its address."""
    if not ray.is_initialized():
        apply_ray_environment()
        target = address if address is not None else settings.ray_address
        env = {"env_vars": {"LITELLM_LOCAL_MODEL_COST_MAP": "True"}}
        if target is not None:
            ray.init(address=target, namespace=settings.namespace, runtime_env=env, log_to_driver=False)
        else:
            ray.init(num_cpus=settings.ray_num_cpus if settings.ray_num_cpus is not None else os.cpu_count(),
                     namespace=settings.namespace, runtime_env=env, include_dashboard=True,
                     dashboard_host="127.0.0.1", log_to_driver=False)
    return str(ray.get_runtime_context().gcs_address)


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
    store: RayHandle
    gateways: list[RayHandle]
    master: RayHandle
    dispatcher: RayHandle
    memory: RayHandle
    workspace: RayHandle
    pools: dict[str, list[RayHandle]] = field(default_factory=dict)

    def all_handles(self) -> list[RayHandle]:
        return [self.dispatcher, self.master, *self.gateways,
                *(h for hs in self.pools.values() for h in hs), self.memory, self.workspace, self.store]


def _app_file(settings: Settings) -> Path:
    return settings.data_dir / "app.json"


def _options(name: str, settings: Settings, **extra: Any) -> dict[str, Any]:
    return {"name": name, "namespace": settings.namespace, "num_cpus": 0, "max_restarts": -1,
            "max_task_retries": 0, "max_concurrency": 100_000, "lifetime": None, **extra}


def start_app(settings: Settings, backend: Backend) -> App:
    """Create the app's actors, wire them, and start dispatching (recovering what a previous app left)."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    epoch = uuid.uuid4().hex[:6]
    retry = RetryPolicy(base_s=settings.retry_base_s, max_s=settings.retry_max_s)
    # The actors owning files under data_dir (DuckDB; embedded Qdrant) stay on this machine's node,
    # in a cluster too, and restart there.
    here = {"scheduling_strategy": NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)}
    store_cls: Any = ray.remote(_with_logging(Store, settings))
    store = RayHandle(store_cls.options(**_options("store", settings, **here)).remote(str(settings.db_path.resolve()), retry=retry, keys=database_keys(settings), threads=settings.db_threads), "store")
    n_gw = settings.gateway_replicas
    per_gw = max(1, -(-settings.llm_slots // n_gw))
    gw_cls: Any = ray.remote(_with_logging(LLMGateway, settings))
    gateways = [
        RayHandle(gw_cls.options(**_options(f"gateway-{i}", settings)).remote(settings, backend, store, per_gw), f"gateway-{i}")
        for i in range(n_gw)
    ]
    memory_cls: Any = ray.remote(_with_logging(Memory, settings))
    memory_on = {} if settings.qdrant_url else here  # with a Qdrant server it may run anywhere
    memory = RayHandle(memory_cls.options(**_options("memory", settings, **memory_on)).remote(
        settings, store, gateways[0]), "memory")
    workspace_cls: Any = ray.remote(_with_logging(Workspace, settings))
    workspace = RayHandle(workspace_cls.options(**_options("workspace", settings)).remote(settings, store), "workspace")
    master_cls: Any = ray.remote(_with_logging(MasterAgent, settings))
    master = RayHandle(master_cls.options(**_options("master", settings)).remote(
        settings, store, gateways[0], None, backend.provider == "embedded", memory), "master")
    dispatcher_name = "dispatcher"
    # Pools find the dispatcher by name (it is created below; the lookup happens on first report).
    dispatcher_ref = _LazyHandle(dispatcher_name, settings.namespace)
    pool_cls: Any = ray.remote(_with_logging(SubAgentPool, settings))
    pools: dict[str, list[RayHandle]] = {}
    k = 0
    for agent in agent_names():
        pools[agent] = []
        for i in range(settings.pool_actors):
            owner = f"{agent}/{i}/{epoch}"
            actor = pool_cls.options(**_options(f"pool-{agent}-{i}", settings)).remote(
                agent, owner, settings, gateways[k % n_gw], store, dispatcher_ref, 0.005, memory, workspace)
            pools[agent].append(RayHandle(actor, owner))
            k += 1
    disp_cls: Any = ray.remote(_with_logging(Dispatcher, settings))
    dispatcher = RayHandle(disp_cls.options(**_options(dispatcher_name, settings)).remote(
        settings, store, pools, master, settings.llm_slots), dispatcher_name)
    ray.get(master.actor.attach.remote(dispatcher))
    ray.get(dispatcher.actor.start.remote())
    app = App(settings, backend, store, gateways, master, dispatcher, memory, workspace, pools)
    _app_file(settings).write_text(json.dumps({"ray_address": ray.get_runtime_context().gcs_address,
                                               "namespace": settings.namespace, "pid": os.getpid(),
                                               "backend": backend.provider, "base_url": backend.base_url}))
    _log.info("app.started", pools=sum(len(v) for v in pools.values()), gateways=n_gw, backend=backend.provider)
    return app


class _LazyHandle:
    """A handle resolved by name on first use (breaks the pool ↔ dispatcher creation cycle)."""

    def __init__(self, name: str, namespace: str) -> None:
        self.name = name
        self._namespace = namespace
        self._inner: RayHandle | None = None

    def _resolve(self) -> RayHandle:
        if self._inner is None:
            self._inner = RayHandle(ray.get_actor(self.name, namespace=self._namespace), self.name)
        return self._inner

    async def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return await self._resolve().call(method, *args, **kwargs)

    def fire(self, method: str, *args: Any, **kwargs: Any) -> asyncio.Future[Any]:
        return self._resolve().fire(method, *args, **kwargs)

    async def stream(self, method: str, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        async for item in self._resolve().stream(method, *args, **kwargs):
            yield item

    def __getstate__(self) -> dict[str, Any]:
        return {"name": self.name, "_namespace": self._namespace, "_inner": None}


def app_address(settings: Settings) -> str | None:
    """The Ray address of a running app on this data directory, if its process is alive."""
    path = _app_file(settings)
    if not path.exists():
        return None
    info = json.loads(path.read_text())
    try:
        os.kill(int(info["pid"]), 0)
    except (OSError, ValueError, KeyError):
        return None
    return str(info["ray_address"])


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
        pools = {agent: [RayHandle(get(f"pool-{agent}-{i}"), f"pool-{agent}-{i}") for i in range(settings.pool_actors)]
                 for agent in agent_names()}
    except ValueError:
        return None
    return App(settings, backend, store, gateways, master, dispatcher, memory, workspace, pools)


def kill_app(app: App) -> None:
    """Kill every actor of the app at once, as a crash would (tests and shutdown)."""
    for h in app.all_handles():
        try:
            ray.kill(h.actor, no_restart=True)
        except Exception as exc:  # already gone
            _log.debug("actor.kill_failed", actor=h.name, error=str(exc))
    for h in app.all_handles():
        _wait_dead(h)


def _wait_dead(h: RayHandle, timeout_s: float = 10.0) -> None:
    try:
        ray.get(h.actor.ping.remote(), timeout=timeout_s)
    except Exception:
        return


def kill_actor(h: RayHandle, restart: bool = True) -> None:
    """Kill one actor like a crash; the runtime restarts it unless ``restart`` is False."""
    ray.kill(h.actor, no_restart=not restart)


def current_address() -> str:
    return str(ray.get_runtime_context().gcs_address)
