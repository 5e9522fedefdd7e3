"""``maos cluster``: run on several machines with the project's own commands.

``head`` starts a Ray head on this machine (token auth on, the dashboard on the LAN address), the
app on it, and says how other machines join; ``join HEAD`` checks that this machine runs the head's
code version and adds it to the cluster as a Ray node; ``status`` lists the nodes, what runs where,
and the LLM endpoints with their health. ``head`` and ``join`` stay in the foreground: Ctrl-C stops
what they started (the app, then the Ray node), nothing else.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core.cluster_schemas import ClusterView
from core.code_version import code_version
from core.errors import ConfigError
from core.settings import Settings, ensure_ray_token

DEFAULT_RAY_PORT = 6379
START_TIMEOUT_S = 180.0
# Exit statuses of a refused join (2: anything else that cannot work, as every maos command).
REFUSED_TOKEN = 3
OTHER_VERSION = 4


def add_commands(sub: Any) -> dict[str, Callable[[Settings, argparse.Namespace], int]]:
    cluster = sub.add_parser("cluster", help="several machines: start a head, join it, see what runs where").add_subparsers(
        dest="cluster_command", required=True)
    more = "more `ray start` options, e.g. --ray-arg=--ray-client-server-port=10002 (repeatable)"
    head = cluster.add_parser("head", help="start a Ray head here (token auth on) and the app on it; prints how to join")
    head.add_argument("--host", default=None, help="the app's HTTP bind address (default MAOS_HOST, 127.0.0.1)")
    head.add_argument("--port", type=int, default=None, help="the app's HTTP port (default MAOS_PORT, 8000)")
    head.add_argument("--ray-port", type=int, default=DEFAULT_RAY_PORT, help="the head's Ray (GCS) port")
    head.add_argument("--node-ip-address", default=None, help="the address other machines reach this one at "
                                                              "(default: this machine's LAN address)")
    head.add_argument("--dashboard-host", default=None, help="where Ray's dashboard listens (default: the LAN "
                                                             "address; it asks for Ray's token)")
    head.add_argument("--dashboard-port", type=int, default=8265)
    head.add_argument("--num-cpus", type=int, default=None, help="CPUs this node offers (default MAOS_RAY_NUM_CPUS, all)")
    head.add_argument("--num-gpus", type=int, default=None)
    head.add_argument("--ray-arg", action="append", default=[], metavar="OPTION", help=more)
    join = cluster.add_parser("join", help="add this machine to the cluster of the head at HEAD (same code version)")
    join.add_argument("head", metavar="HEAD", help="the head's Ray address, HOST[:PORT], as `maos cluster head` prints it")
    join.add_argument("--token-file", type=Path, default=None, help="Ray's token copied from the head "
                                                                    "(default: <data dir>/ray_token)")
    join.add_argument("--node-ip-address", default=None, help="this machine's address (default: its LAN address)")
    join.add_argument("--num-cpus", type=int, default=None)
    join.add_argument("--num-gpus", type=int, default=None)
    join.add_argument("--detach", action="store_true", help="start the Ray node in the background and return "
                                                            "(it stays until Ray is stopped on this machine)")
    join.add_argument("--ray-arg", action="append", default=[], metavar="OPTION", help=more)
    status = cluster.add_parser("status", help="nodes, the app's actors on each, LLM endpoints and their health")
    status.add_argument("--address", default=None, help="the head's Ray address (default: the app running on this "
                                                        "data directory, else RAY_ADDRESS)")
    status.add_argument("--token-file", type=Path, default=None, help="Ray's token (default: <data dir>/ray_token)")
    status.add_argument("--json", action="store_true")
    return {"cluster": _cluster}


def _cluster(settings: Settings, args: argparse.Namespace) -> int:
    return {"head": _head, "join": _join, "status": _status}[args.cluster_command](settings, args)


def ray_address(text: str) -> str:
    """``HOST[:PORT]`` as Ray's address (the port defaults to Ray's 6379)."""
    return text if ":" in text.rsplit("]", 1)[-1] else f"{text}:{DEFAULT_RAY_PORT}"


def _node_options(args: argparse.Namespace, num_cpus: int | None) -> list[str]:
    options = [f"--node-ip-address={args.node_ip_address}"] if args.node_ip_address else []
    if num_cpus is not None:
        options.append(f"--num-cpus={num_cpus}")
    if args.num_gpus is not None:
        options.append(f"--num-gpus={args.num_gpus}")
    return options + list(args.ray_arg)


def _stop_on_signals() -> threading.Event:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    return stop


def _say(text: str) -> None:
    print(text, flush=True)


def _refuse(text: str, code: int) -> int:
    print(f"maos cluster: {text}", file=sys.stderr, flush=True)
    return code


# --- head --------------------------------------------------------------------------------------


def _head(settings: Settings, args: argparse.Namespace) -> int:
    from ray import serve as ray_serve

    from actors.runtime import cluster_info, ray_node, wiring
    from serve_app.auth import check_bind, ensure_login
    from serve_app.boot import Booted, attach_or_start
    from serve_app.server import serve_http

    host = args.host if args.host is not None else settings.host
    port = args.port if args.port is not None else settings.port
    check_bind(settings, host)
    if wiring.app_address(settings) is not None:
        return _refuse(f"Master Agent OS is already running for {settings.data_dir}", 1)
    ensure_ray_token(settings.ray_token_path)
    wiring.use_token_auth(settings.ray_token_path)
    node_ip = args.node_ip_address or cluster_info.lan_address()
    dashboard_host = args.dashboard_host if args.dashboard_host is not None else node_ip
    address = f"{node_ip}:{args.ray_port}"
    cpus = args.num_cpus if args.num_cpus is not None else settings.ray_num_cpus
    options = ["--head", f"--port={args.ray_port}", "--include-dashboard=true", f"--dashboard-host={dashboard_host}",
               f"--dashboard-port={args.dashboard_port}", *_node_options(args, cpus)]
    _say(f"starting a Ray head at {address} (token auth on)…")
    try:
        node = ray_node.start_started_node(options, settings.data_dir / "logs" / "ray-head.log", START_TIMEOUT_S)
    except KeyboardInterrupt:  # the node, if up, gets SIGTERM as this process exits
        return 130
    booted: Booted | None = None
    try:
        version = code_version()
        cluster_info.publish_version(address, version, settings.ray_token_path)
        _say("starting Master Agent OS on it…")
        booted = attach_or_start(settings.model_copy(update={"ray_address": address}))
        login_hash, new_token = ensure_login(booted.settings)
        shown_host = node_ip if dashboard_host in ("0.0.0.0", "::", "") else dashboard_host
        dashboard = f"http://{shown_host}:{args.dashboard_port}"
        serve_http(booted.settings, host, port, dashboard, login_hash)
        stop = _stop_on_signals()
        _print_head(settings, host, port, address, dashboard, version, new_token, booted)
        while node.running() and not stop.wait(1.0):
            pass
        if not node.running():
            return _refuse(f"the Ray head stopped (exit {node.process.returncode}):\n{node.tail()}", 1)
        return 0
    except KeyboardInterrupt:
        return 130
    finally:
        if booted is not None:
            try:
                ray_serve.shutdown()
            finally:
                booted.close()
        node.stop()


def _print_head(settings: Settings, host: str, port: int, address: str, dashboard: str, version: str,
                new_token: str | None, booted: Any) -> None:
    token = settings.ray_token_path.resolve()
    b = booted.app.backend
    _say(f"Master Agent OS cluster head is running: {settings.url_scheme}://{host}:{port}/")
    if new_token is not None:
        _say(f"  Login token (shown once; only its hash is kept): {new_token}")
    _say(f"  Ray head       {address} · token auth on · maos {version}")
    _say(f"  Ray dashboard  {dashboard}  (it asks for Ray's token)")
    _say(f"  Ray token      {token}")
    _say("                 copy this file to each machine that joins, over a secure channel (scp, ssh); never by "
         "chat or mail: it lets its holder run code on every machine of the cluster")
    _say("  On each other machine (the same checkout, `make setup` done, the token copied):")
    _say(f"    .venv/bin/maos cluster join {address} --token-file data/ray_token")
    _say(f"  LLM  {b.provider} · {b.planner_model} at {b.base_url}")
    _say("  See the cluster: .venv/bin/maos cluster status · Ctrl-C stops the app and this Ray head")


# --- join --------------------------------------------------------------------------------------


def _join(settings: Settings, args: argparse.Namespace) -> int:
    from actors.runtime import cluster_info, ray_node

    address = ray_address(args.head)
    token: Path = args.token_file if args.token_file is not None else settings.ray_token_path
    if not token.is_file():
        return _refuse(f"no Ray token at {token}: copy the head's data/ray_token to this machine over a secure "
                       f"channel (e.g. `scp HEAD:master-agent-os/data/ray_token {token}`), then join again", 2)
    ensure_ray_token(token)  # narrows a copied file to 0600
    try:
        theirs = cluster_info.head_version(address, token)
    except cluster_info.HeadRefused:
        return _refuse(f"the head at {address} refused this machine's token ({token}): copy the head's "
                       "data/ray_token again", REFUSED_TOKEN)
    mine = code_version()
    if theirs is None:
        return _refuse(f"the Ray head at {address} published no maos version: start it with `maos cluster head`",
                       OTHER_VERSION)
    if theirs != mine:
        return _refuse(f"this machine runs maos {mine}, the head runs {theirs}: install the same version "
                       "(the same checkout, then `make setup`) on both", OTHER_VERSION)
    cpus = args.num_cpus if args.num_cpus is not None else settings.ray_num_cpus
    options = [f"--address={address}", *_node_options(args, cpus)]
    _say(f"joining the cluster at {address} (maos {mine})…")
    log = settings.data_dir / "logs" / "ray-join.log"
    try:
        node = ray_node.start_started_node(options, log, START_TIMEOUT_S, detach=args.detach)
    except ConfigError:
        if "InvalidAuthToken" in log.read_text(errors="replace"):
            return _refuse(f"the head at {address} refused this machine's token ({token})", REFUSED_TOKEN)
        raise
    except KeyboardInterrupt:
        return 130
    if args.detach:
        _say(f"joined {address}: this machine's Ray node runs in the background until Ray is stopped here")
        return 0
    stop = _stop_on_signals()
    _say(f"joined {address}: this machine is a node of the cluster. Ctrl-C leaves it")
    try:
        while node.running() and not stop.wait(1.0):
            pass
        if not node.running():
            return _refuse(f"this machine's Ray node stopped (exit {node.process.returncode}):\n{node.tail()}", 1)
        return 0
    finally:
        node.stop()


# --- status ------------------------------------------------------------------------------------


def _status(settings: Settings, args: argparse.Namespace) -> int:
    from actors.runtime import cluster_info, wiring
    from integrations.llm.endpoints import llm_endpoints, wait_reason

    found = args.address if args.address is not None else wiring.app_address(settings) or settings.ray_address
    if found is None:
        return _refuse("no cluster on this machine: start one with `maos cluster head`, or give --address HEAD", 1)
    address = ray_address(found)
    token: Path = args.token_file if args.token_file is not None else settings.ray_token_path
    try:
        version = cluster_info.head_version(address, token)
    except cluster_info.HeadRefused:
        return _refuse(f"the head at {address} refused this machine's token ({token})", REFUSED_TOKEN)
    cluster_info.attach(address, token, settings.namespace)
    nodes, note = cluster_info.nodes(settings.namespace)
    healths = cluster_info.gateway_healths(settings.namespace)
    endpoints, waiting = llm_endpoints(healths)
    view = ClusterView(address=address, head_version=version, nodes=nodes, endpoints=endpoints, actors_note=note,
                       app_running=bool(cluster_info.gateway_names(settings.namespace)),
                       wait_reason=wait_reason(endpoints, waiting))
    if args.json:
        from serve_app.cli import _print_json

        _print_json(view.model_dump())
    else:
        print_status(view)
    return 0


def print_status(view: ClusterView) -> None:
    alive = sum(1 for n in view.nodes if n.alive)
    _say(f"cluster {view.address} · maos {view.head_version or '(no version published)'} · "
         f"{alive} node(s) alive of {len(view.nodes)}")
    for n in view.nodes:
        role = " (head)" if n.head else ""
        _say(f"node {n.address}{role} {n.node_id[:8]} · {'alive' if n.alive else 'DEAD'} · {n.cpus:g} CPU · "
             f"{n.gpus:g} GPU · {n.memory_gb:g} GB")
        if n.alive:
            _say(f"  runs: {', '.join(n.actors) if n.actors else '(none of the app)'}")
    if view.actors_note:
        _say(f"  ({view.actors_note})")
    if not view.app_running:
        _say("app: not running in this cluster (start it with `maos cluster head`)")
    for e in view.endpoints:
        error = f" · {e.last_error}" if not e.up and e.last_error else ""
        _say(f"llm endpoint {e.url} · {'up' if e.up else 'DOWN'} · {e.in_flight} of {e.slots} slots busy{error}")
    if view.wait_reason is not None:
        _say(f"llm: work waits: {view.wait_reason}")
