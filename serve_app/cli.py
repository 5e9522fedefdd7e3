"""The ``maos`` command line."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from typing import Any

from pydantic import ValidationError

from actors.runtime.apis import StoreApi
from actors.runtime.typed import blocking, typed
from core.audit import cancel_entries
from core.errors import ConfigError, MaosError
from core.logging import configure
from core.schemas import FINAL_RUN_STATUSES, TERMINAL_TASK_STATUSES, RunCancel, RunView, TaskRecord
from core.settings import Settings

_SYMBOL = {"pending": "·", "ready": "○", "running": "◐", "failed": "↻", "done": "✔", "dead": "✖", "blocked": "⊘", "waiting": "⏸",
           "cancelled": "■"}


_JSON_OUT: list[Any] = []  # the real stdout while a --json command runs


def _print_json(value: Any) -> None:
    out = _JSON_OUT[-1] if _JSON_OUT else sys.stdout
    print(json.dumps(value, indent=2), file=out, flush=True)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:2] == ["dev", "sim-llm"]:  # its options are its own (argparse's REMAINDER refuses "--port" there)
        _sim_llm(argv[2:])
        return
    parser = argparse.ArgumentParser(prog="maos", description="Master Agent OS")
    sub = parser.add_subparsers(dest="command", required=True)
    ask = sub.add_parser("ask", help="ask the master agent to do something; shows the plan and live progress")
    ask.add_argument("message")
    ask.add_argument("--json", action="store_true", help="print the finished run as one JSON object")
    ask.add_argument("--conversation", default=None, help="continue this conversation")
    ask.add_argument("--max-tokens", type=int, default=None, help="stop the run once its LLM calls used this many tokens")
    ask.add_argument("--deadline", type=float, default=None, help="stop the run after this many seconds")
    cancel = sub.add_parser("cancel", help="stop a run: its steps not started never start, running ones stop")
    cancel.add_argument("run_id")
    cancel.add_argument("--json", action="store_true")
    sub.add_parser("status", help="Ray, LLM backend, pools, queue depth")
    tasks = sub.add_parser("tasks", help="list tasks")
    tasks.add_argument("--status", default=None)
    tasks.add_argument("--run", default=None)
    tasks.add_argument("--limit", type=int, default=50)
    tasks.add_argument("--json", action="store_true")
    dead = sub.add_parser("dead", help="list dead tasks with their last error")
    dead.add_argument("--json", action="store_true")
    retry = sub.add_parser("retry", help="requeue a dead task")
    retry.add_argument("task_id")
    serve = sub.add_parser("serve", help="start the app and its HTTP server")
    serve.add_argument("--host", default=None)
    serve.add_argument("--port", type=int, default=None)
    token = sub.add_parser("token", help="the web login: make a new login token (the old one stops working)")
    token.add_argument("--new", action="store_true", help="make a new token, print it once, keep only its hash")
    from serve_app import cli_cluster, cli_google, cli_memory, cli_tls, cli_users

    more = {**cli_memory.add_commands(sub), **cli_google.add_commands(sub), **cli_cluster.add_commands(sub),
            **cli_users.add_commands(sub), **cli_tls.add_commands(sub)}
    dev = sub.add_parser("dev", help="developer tools").add_subparsers(dest="tool", required=True)
    sim = dev.add_parser("sim-llm", help="run the simulated LLM server (a test tool)")
    sim.add_argument("options", nargs="*", help="see `maos dev sim-llm --help`")
    args = parser.parse_args(argv)
    try:
        settings = Settings()
    except ValidationError as exc:  # the environment or .env names a bad value: say which, no traceback
        problems = "; ".join((f"MAOS_{str(e['loc'][0]).upper()}: " if e["loc"] else "") + e["msg"] for e in exc.errors())
        print(f"maos: the settings are not valid: {problems}", file=sys.stderr)
        sys.exit(2)
    configure(settings.log_level, settings.log_format)
    if getattr(args, "json", False):  # stdout is for the JSON alone: Ray's own notices go to stderr
        _JSON_OUT.append(sys.stdout)
        sys.stdout = sys.stderr
    handler = {"ask": _ask, "cancel": _cancel, "status": _status, "tasks": _tasks, "dead": _dead, "retry": _retry, "serve": _serve,
               "token": _token, **more}
    try:
        code = handler[args.command](settings, args)
    except (ConfigError, MaosError) as exc:
        print(f"maos: {exc}", file=sys.stderr)
        code = 2
    sys.exit(code)


def _sim_llm(options: list[str]) -> None:
    """``maos dev sim-llm``: the simulated LLM server, a test tool that lives outside the product
    (testing/, the ``maos-testing`` distribution); the one place the product names it."""
    try:
        from maos_testing.llm import sim_server
    except ModuleNotFoundError as exc:
        if exc.name is None or exc.name.split(".")[0] != "maos_testing":
            raise
        print("maos dev sim-llm: the test tools are not installed. From the repository: "
              "`.venv/bin/pip install -e ./testing` (`make setup` does it).", file=sys.stderr)
        sys.exit(2)
    sim_server.main(options)


# --- ask ---------------------------------------------------------------------------------------


def _ask(settings: Settings, args: argparse.Namespace) -> int:
    from rich.console import Console

    from serve_app.boot import attach_or_start

    console = Console(stderr=args.json)
    with console.status("starting Master Agent OS…"):
        booted = attach_or_start(settings, dashboard=False)
    try:
        app = booted.app
        console.print(f"[dim]LLM: {app.backend.provider} · {app.backend.planner_model} at {app.backend.base_url}[/dim]")
        run = blocking(app.master.submit(message=args.message, user_id=settings.user_id,
                                         conversation_id=args.conversation, max_tokens=args.max_tokens,
                                         deadline_s=args.deadline), timeout=60)
        view = _follow(app, run.id, console, quiet=False)
        blocking(app.memory.settle(run.id), timeout=60)  # its learning is written before this app may stop
    finally:
        booted.close()
    if args.json:
        _print_json(run_json(view))
    return 0 if view.run.status == "done" else 1


def _follow(app: Any, run_id: str, console: Any, quiet: bool) -> RunView:
    from rich.live import Live
    from rich.markup import escape
    from rich.progress import BarColumn, Progress, TextColumn

    plan_shown = False
    progress = Progress(TextColumn("{task.description}"), BarColumn(bar_width=20), TextColumn("{task.fields[state]}"),
                        console=console, transient=False)
    bars: dict[str, Any] = {}
    many = False
    with Live(progress, console=console, refresh_per_second=8):
        while True:
            found = blocking(app.store.get_run(run_id), timeout=30)
            assert found is not None  # the run was just submitted
            view = found
            if view.run.plan is not None and not plan_shown:
                plan_shown = True
                console.print(f"[bold]Plan[/bold] ({len(view.run.plan.steps)} steps): {escape(view.run.plan.goal)}")
                many = len(view.tasks) > 12
                if many:
                    bars["all"] = progress.add_task("all steps", total=len(view.tasks), state="")
                else:
                    for t in view.tasks:
                        deps = f" ← {', '.join(t.depends_on)}" if t.depends_on else ""
                        console.print(escape(f"  {t.step_id} [{t.agent}] {t.instruction[:90]}{deps}"))
                        bars[t.id] = progress.add_task(f"{t.step_id} {t.agent:<9}", total=1, state=t.status)
            if view.run.status == "planning" and view.run.error:
                console.print(f"[yellow]{escape(view.run.error)}[/yellow]")
            nodes = Counter(t.node for t in view.tasks if t.node)  # where steps ran, shown once spread
            if many:
                counts = Counter(t.status for t in view.tasks)
                final = sum(counts.get(s, 0) for s in TERMINAL_TASK_STATUSES)
                spread = f" · on nodes {' '.join(f'{n}:{c}' for n, c in sorted(nodes.items()))}" if len(nodes) > 1 else ""
                progress.update(bars["all"], completed=final,
                                state=" ".join(f"{k}:{v}" for k, v in sorted(counts.items())) + spread)
            else:
                for t in view.tasks:
                    where = f" · node {t.node}" if len(nodes) > 1 and t.node else ""
                    progress.update(bars[t.id], completed=1 if t.status in TERMINAL_TASK_STATUSES else 0,
                                    state=_task_state(t) + where)
            if view.run.status in FINAL_RUN_STATUSES:
                break
            time.sleep(0.2)
    if view.run.summary:
        console.print(f"\n[bold]Result[/bold]\n{escape(view.run.summary)}")
    if view.run.error:
        console.print(f"\n[red]{escape(view.run.error)}[/red]")
    if view.sources:
        console.print(f"\n[bold]Sources[/bold] ({len(view.sources)} memories given to the model)")
        for src in view.sources:
            where = f" › {src.heading}" if src.heading else ""
            console.print(escape(f"  [{src.collection}] {src.title}{where}  {src.score:.2f}  {src.link}"))
    return view


def _task_state(t: TaskRecord) -> str:
    state = f"{_SYMBOL.get(t.status, '?')} {t.status}"
    if t.attempts > 1:
        state += f" (attempt {t.attempts})"
    if t.status in ("failed", "dead", "blocked", "cancelled") and t.error:
        state += f": {t.error[:80]}"
    elif t.status == "ready" and t.error:
        state += f": {t.error[:80]}"
    return state


def run_json(view: RunView) -> dict[str, Any]:
    return {
        "run_id": view.run.id,
        "conversation_id": view.run.conversation_id,
        "status": view.run.status,
        "goal": view.run.plan.goal if view.run.plan else None,
        "plan": [s.model_dump() for s in view.run.plan.steps] if view.run.plan else [],
        "steps": [
            {"id": t.step_id, "task_id": t.id, "agent": t.agent, "status": t.status, "attempts": t.attempts,
             "depends_on": t.depends_on, "result": t.result, "error": t.error, "node": t.node}
            for t in view.tasks
        ],
        "summary": view.run.summary,
        "error": view.run.error,
        "sources": [src.model_dump() for src in view.sources],
    }


# --- queue inspection: through the running app, or straight from the DuckDB file ---------------


def _store(settings: Settings) -> StoreApi:
    """The Store (calls awaited with ``blocking``): the running app's actor, else the file opened here."""
    from actors.runtime import LocalHandle
    from serve_app.cli_memory import app_or_file

    app, store = app_or_file(settings)
    return app.store if app is not None else typed(LocalHandle(store, "store"), StoreApi)


def _cancel(settings: Settings, args: argparse.Namespace) -> int:
    """``maos cancel RUN``: through the running app (its running steps stop at once), else in the database
    file (an app started later never runs its steps). Asking again changes nothing."""
    from actors.runtime import LocalHandle
    from serve_app.cli_memory import app_or_file

    reason = f"cancelled by {settings.user_id}"
    app, local = app_or_file(settings)
    if app is not None:
        out: RunCancel = blocking(app.master.cancel(run_id=args.run_id, user_id=settings.user_id, reason=reason),
                                  timeout=30)
    else:  # no app: the database file here (audited as the app's cancel is)
        store = typed(LocalHandle(local, "store"), StoreApi)
        out = blocking(store.cancel_run(run_id=args.run_id, user_id=settings.user_id, reason=reason), timeout=30)
        for entry in cancel_entries(out, settings.user_id, settings.user_id, reason, time.time()):
            blocking(store.record_audit(entry=entry), timeout=30)
    if args.json:
        _print_json(out.model_dump())
    elif out.cancelled:
        print(f"cancelled {out.run_id}: {len(out.stopped_steps)} running step(s) stopped, "
              f"{len(out.withdrawn)} proposal(s) withdrawn")
    else:
        print(f"{out.run_id} had already ended: {out.status}")
    return 0


def _print_tasks(tasks: list[TaskRecord], as_json: bool) -> None:
    if as_json:
        _print_json([t.model_dump() for t in tasks])
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("task", "agent", "status", "attempts", "error / result")
    for t in tasks:
        table.add_row(t.id, t.agent, t.status, str(t.attempts), (t.error or t.result or "")[:70])
    Console().print(table)


def _tasks(settings: Settings, args: argparse.Namespace) -> int:
    tasks = blocking(_store(settings).list_tasks(status=args.status, run_id=args.run, limit=args.limit), timeout=30)
    _print_tasks(tasks, args.json)
    return 0


def _dead(settings: Settings, args: argparse.Namespace) -> int:
    _print_tasks(blocking(_store(settings).list_tasks(status="dead", limit=1000), timeout=30), args.json)
    return 0


def _retry(settings: Settings, args: argparse.Namespace) -> int:
    store = _store(settings)
    if blocking(store.requeue(args.task_id), timeout=30):
        print(f"requeued {args.task_id}")
        return 0
    task = blocking(store.get_task(args.task_id), timeout=30)
    print(f"cannot retry {args.task_id}: " + ("no such task" if task is None else f"it is {task.status}, not dead"),
          file=sys.stderr)
    return 2


def _status(settings: Settings, args: argparse.Namespace) -> int:
    from actors.runtime import wiring

    address = wiring.app_address(settings)
    if address is None:
        from serve_app.boot import probe_backend

        print("app: not running (start it with `make run` or `maos serve`)")
        print(probe_backend(settings))
        return 0
    wiring.init_ray(settings, address)
    app = wiring.connect(settings, None)  # type: ignore[arg-type]
    if app is None:
        print("app: not running")
        return 0
    health = blocking(app.gateways[0].health(), timeout=10)
    pools = blocking(app.dispatcher.status(), timeout=10)
    counts = blocking(app.store.queue_counts(), timeout=10)
    print(f"ray: {address} ({wiring.cluster_nodes()} node(s))")
    print(f"llm: {health['provider']} at {health['base_url']} · planner {health['models']['planner']} · "
          f"worker {health['models']['worker']} · {'reachable' if health['reachable'] else 'UNREACHABLE'} · "
          f"in flight {health['in_flight']}, waiting {health['waiting']}")
    for line in llm_lines([health, *(blocking(g.health(), timeout=10) for g in app.gateways[1:])]):
        print(line)
    print("queue: " + (", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "empty"))
    for p in pools:
        print(f"pool {p.agent:<9} actors {p.actors} · in flight {p.in_flight} · ready {p.ready}")
    return 0


def _token(settings: Settings, args: argparse.Namespace) -> int:
    from serve_app.auth import new_login

    if settings.api_token is not None:
        print("the login token is MAOS_API_TOKEN (set in the environment); change it there")
        return 1
    if not args.new:
        print(f"the login token was printed at the first start; only its hash is kept ({settings.login_hash_path}).\n"
              "`maos token --new` makes a new one")
        return 0
    _, fresh = new_login(settings.login_hash_path)
    print(f"new login token (shown once): {fresh}")
    if runtime_running(settings):
        print("restart the app (`make run`) for the web login to take it")
    return 0


def runtime_running(settings: Settings) -> bool:
    from actors.runtime import wiring

    return wiring.app_address(settings) is not None


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    from serve_app.server import serve

    return serve(settings, args.host, args.port)


if __name__ == "__main__":
    main()


def llm_lines(healths: list[dict[str, Any]]) -> list[str]:
    """``maos status``'s lines on the LLM endpoints (when there are several) and why LLM work waits."""
    from integrations.llm.endpoints import llm_endpoints, wait_reason

    endpoints, waiting = llm_endpoints(healths)
    lines = [f"llm endpoint {e.url} · {'up' if e.up else 'DOWN'} · {e.in_flight} of {e.slots} slots busy"
             + (f" · {e.last_error}" if not e.up and e.last_error else "") for e in endpoints if len(endpoints) > 1]
    reason = wait_reason(endpoints, waiting)
    return [*lines, *([f"llm: work waits: {reason}"] if reason is not None else [])]
