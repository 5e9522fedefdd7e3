"""Ray's view of a cluster, for ``maos cluster`` and the Agents page: the code version the head
publishes in Ray's key-value store (GCS) and a joining machine's check of it before it starts a Ray
node; the nodes with the app's actors on each; the gateways' health. The Ray calls of the cluster
commands."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import ray
import structlog

from actors.runtime.apis import GatewayApi
from actors.runtime.placement import short
from actors.runtime.ray_handles import RayHandle
from actors.runtime.typed import blocking, typed
from actors.runtime.wiring import use_token_auth
from core.cluster_schemas import NodeView
from core.errors import ConfigError
from core.schemas import MachineView

_log = structlog.get_logger("maos.cluster")
_KV_NAMESPACE = b"maos"
_VERSION_KEY = b"code_version"


class HeadUnreachable(ConfigError):
    """Nothing answers at the head's address."""


class HeadRefused(ConfigError):
    """The head's Ray refused this machine's token."""


def _gcs(address: str, timeout_s: float) -> Any:
    """A client of the head's GCS (no Ray node needed here), after a plain TCP check: Ray's own client
    waits 40 s on an address where nothing listens."""
    from ray._raylet import GcsClient  # type: ignore[attr-defined]  # compiled, no stubs
    from ray.exceptions import AuthenticationError

    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except (OSError, ValueError) as exc:
        raise HeadUnreachable(f"nothing answers at {address} ({exc}): is `maos cluster head` running there, "
                              "and is the port open between the machines?") from None
    try:
        return GcsClient(address=address)
    except AuthenticationError:
        raise HeadRefused(f"the head at {address} refused this machine's token") from None


def publish_version(address: str, version: str, token_path: Path, timeout_s: float = 10.0) -> None:
    """Record the head's code version in its GCS, for machines that join to compare with theirs."""
    use_token_auth(token_path)
    _gcs(address, timeout_s).internal_kv_put(_VERSION_KEY, version.encode(), True, _KV_NAMESPACE, timeout=timeout_s)
    _log.info("cluster.version_published", version=version)


def head_version(address: str, token_path: Path, timeout_s: float = 10.0) -> str | None:
    """The code version the head at ``address`` published (None: it was not started by ``maos cluster
    head``). Raises :class:`HeadRefused` when the head refuses the token at ``token_path``."""
    use_token_auth(token_path)
    value = _gcs(address, timeout_s).internal_kv_get(_VERSION_KEY, _KV_NAMESPACE, timeout=timeout_s)
    return None if value is None else bytes(value).decode()


def lan_address() -> str:
    """This machine's address on the network (the one its default route leaves from)."""
    return str(ray.util.get_node_ip_address())


def attach(address: str, token_path: Path, namespace: str) -> None:
    """Connect this process to the cluster at ``address`` as a driver (a Ray node must run here:
    the head, or a machine that joined)."""
    if not ray.is_initialized():
        use_token_auth(token_path)
        ray.init(address=address, namespace=namespace, log_to_driver=False)


def nodes(namespace: str) -> tuple[list[NodeView], str | None]:
    """Every node Ray knows, with the names of the app's live actors on each (the actors of
    ``namespace``); and why actors are not listed, when they cannot be."""
    placed, note = _actors_by_node(namespace)
    found = []
    for n in _ray_nodes():
        res = n["resources"]
        found.append(NodeView(node_id=n["id"], address=n["address"], alive=n["alive"], head=n["head"],
                              cpus=float(res.get("CPU", 0.0)), gpus=float(res.get("GPU", 0.0)),
                              memory_gb=round(float(res.get("memory", 0.0)) / 1e9, 1),
                              actors=sorted(placed.get(n["id"], []))))
    return found, note


def machines(running: dict[str, int]) -> list[MachineView]:
    """Every node Ray knows as the Agents page lists it, with ``running`` (steps by node, 8 hex digits).
    Only Ray's node table: no state API call (the page asks every few seconds)."""
    return [MachineView(node=short(n["id"]), address=n["address"], head=n["head"], alive=n["alive"],
                        steps_running=running.get(short(n["id"]), 0)) for n in _ray_nodes()]


def _ray_nodes() -> list[dict[str, Any]]:
    """Ray's node table, head first, then alive ones, by address: each with its id, address, alive, head
    and resources."""
    found = [{"id": str(n["NodeID"]), "address": str(n.get("NodeManagerAddress", "")), "alive": bool(n.get("Alive")),
              "head": "node:__internal_head__" in n.get("Resources", {}), "resources": n.get("Resources", {})}
             for n in ray.nodes()]
    return sorted(found, key=lambda n: (not n["head"], not n["alive"], n["address"], n["id"]))


def _actors_by_node(namespace: str) -> tuple[dict[str, list[str]], str | None]:
    """Live named actors of ``namespace`` by node id, from Ray's state API (served by the dashboard);
    without a dashboard, from the GCS's actor table (which does not say the namespace)."""
    placed: dict[str, list[str]] = {}
    try:
        from ray.util.state import list_actors

        for a in list_actors(filters=[("state", "=", "ALIVE")], detail=True, limit=10_000, timeout=15,
                             raise_on_missing_output=False):
            if a.name and a.ray_namespace == namespace and a.node_id:
                placed.setdefault(a.node_id, []).append(a.name)
        return placed, None
    except Exception as exc:  # no dashboard in this cluster: the GCS's table
        _log.info("cluster.state_api_unavailable", error=type(exc).__name__)
    from ray._private.state import actors as actor_table

    for a in actor_table().values():
        if a.get("Name") and a.get("State") == "ALIVE":
            placed.setdefault(str(a["Address"]["NodeID"]), []).append(str(a["Name"]))
    return placed, "Ray's state API did not answer (no dashboard?): every named actor is listed, of any namespace"


def gateway_names(namespace: str, upto: int = 64) -> list[str]:
    """The names of the app's gateways running in the cluster, in order."""
    found = []
    for i in range(upto):
        try:
            ray.get_actor(f"gateway-{i}", namespace=namespace)
        except ValueError:
            break
        found.append(f"gateway-{i}")
    return found


def gateway_healths(namespace: str, timeout_s: float = 10.0) -> list[dict[str, Any]]:
    """What each of the app's gateways says in ``health()`` (its endpoints among it); a gateway that
    does not answer (restarting) is left out."""
    found = []
    for name in gateway_names(namespace):
        gateway = typed(RayHandle(ray.get_actor(name, namespace=namespace), name), GatewayApi)
        try:
            found.append(blocking(gateway.health(), timeout=timeout_s))
        except Exception as exc:  # the others still say what they know
            _log.warning("cluster.gateway_health_failed", gateway=name, error=type(exc).__name__)
    return found
