"""History, agents, integrations and settings rendering: pure functions from API data to rows and HTML."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from core.schemas import (
    AgentsView,
    ConnectionResult,
    ConversationSummary,
    ConversationView,
    RunView,
    SettingsView,
    SystemStatus,
    TaskRecord,
)
from ui.render import SYMBOLS, fmt_seconds, fmt_time, short

CONVERSATION_HEADERS = ["Title", "Status", "Runs", "Agents", "Last activity"]
TASK_HEADERS = ["Task", "Agent", "Status", "Attempts", "Took", "Instruction", "Output or error"]
POOL_HEADERS = ["Agent type", "Actors", "In flight", "Queued", "Done last minute", "Dead"]
DEAD_HEADERS = ["Task", "Agent", "Attempts", "Error", "Updated"]
MACHINE_HEADERS = ["Machine", "Node", "Role · state", "Steps running"]
DATE_RANGES = {"Any time": None, "Today": 86_400.0, "Last 7 days": 7 * 86_400.0, "Last 30 days": 30 * 86_400.0}


def since_for(range_label: str, now: float) -> float | None:
    span = DATE_RANGES.get(range_label)
    return None if span is None else now - span


def conversation_rows(items: Sequence[ConversationSummary]) -> list[list[Any]]:
    return [[c.title, c.last_status or "", c.runs, ", ".join(c.agents), fmt_time(c.updated_at)] for c in items]


def task_rows(items: Sequence[TaskRecord]) -> list[list[Any]]:
    def took(t: TaskRecord) -> str:
        return fmt_seconds(t.finished_at - t.started_at) if t.started_at and t.finished_at else ""

    return [[t.id, t.agent, f"{SYMBOLS.get(t.status, '·')} {t.status}", t.attempts, took(t),
             short(t.instruction, 80), short(t.error if t.status != "done" else t.result, 80)] for t in items]


def pool_rows(view: AgentsView) -> list[list[Any]]:
    return [[p.agent, len(p.actors), p.in_flight, p.queued, p.done_last_minute, p.dead] for p in view.pools]


def machine_rows(view: AgentsView) -> list[list[Any]]:
    return [[m.address, m.node, f"{'head' if m.head else 'worker'} · {'alive' if m.alive else 'lost'}", m.steps_running]
            for m in view.machines]


def dead_rows(view: AgentsView) -> list[list[Any]]:
    return [[t.id, t.agent, t.attempts, short(t.error, 80), fmt_time(t.updated_at)] for t in view.dead]


def agents_totals(view: AgentsView) -> str:
    actors = sum(len(p.actors) for p in view.pools)
    done = sum(p.done_last_minute for p in view.pools)
    return (f"**{view.in_flight}** sub-agents in flight · **{view.queued}** queued · **{done}** done in the last "
            f"minute · **{len(view.dead)}** dead letters · {actors} pool actors over {len(view.pools)} types")


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{escape(str(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f'<table class="rec-table"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def record_html(view: ConversationView, runs: Mapping[str, RunView]) -> str:
    """A conversation's full record: its messages, then each run with its plan and task table."""
    c = view.conversation
    parts = [f'<div class="record" data-conversation="{escape(c.id)}"><h3>{escape(c.title)}</h3>'
             f'<div class="rec-meta">{c.runs} request(s) · started {fmt_time(c.created_at)} · last activity '
             f'{fmt_time(c.updated_at)} · {escape(c.last_status or "no runs")}</div><h4>Messages</h4>']
    for m in view.messages:
        parts.append(f'<div class="rec-msg rec-{m.role}"><b>{"You" if m.role == "user" else "Assistant"}</b> '
                     f'<span class="rec-when">{fmt_time(m.created_at)}</span><pre>{escape(m.content)}</pre></div>')
    for run in view.runs:
        took = fmt_seconds(run.finished_at - run.created_at) if run.finished_at else "still going"
        parts.append(f'<h4>Run {escape(run.id)}: {SYMBOLS.get(run.status, "◐")} {escape(run.status)} · {took}</h4>')
        if run.plan is not None:
            parts.append(f'<div class="plan-goal">{escape(run.plan.goal)}</div>')
        if run.error:
            parts.append(f'<pre class="step-err">{escape(run.error)}</pre>')
        rv = runs.get(run.id)
        if rv is not None and rv.tasks:
            parts.append(_table(TASK_HEADERS, task_rows(rv.tasks)))
    parts.append("</div>")
    return "".join(parts)


def sidebar_llm(status: SystemStatus | None, error: str | None = None) -> str:
    """The backend and models that answer now: always on screen."""
    if status is None:
        return f'<div class="llm-badge" data-reachable="false">LLM: unknown<br><small>{escape(error or "")}</small></div>'
    ok = status.llm_reachable
    models = status.llm_models
    planner, worker = models.get("planner", "?"), models.get("worker", "?")
    model_line = escape(planner) if planner == worker else f"{escape(planner)} (planner)<br>{escape(worker)} (agents)"
    return (f'<div class="llm-badge" id="llm-badge" data-reachable="{str(ok).lower()}">'
            f'<div class="llm-state">{"●" if ok else "○"} LLM {"ready" if ok else "not answering"}</div>'
            f'<div class="llm-provider">{escape(status.llm_provider)}</div>'
            f'<div class="llm-model">{model_line}</div>{_tools_line(status)}{_waits_line(status)}</div>')


def _waits_line(status: SystemStatus) -> str:
    """Why LLM work waits now ("all 6 LLM slots busy", "1 of 2 LLM endpoints down"), when it does."""
    if status.llm_wait_reason is None:
        return ""
    return f'<div class="llm-waits" id="llm-waits">⏳ {escape(status.llm_wait_reason)}</div>'


def _endpoint_rows(status: SystemStatus) -> list[tuple[str, str]]:
    """One row per LLM endpoint when there are several: up or down (and why), requests at it of its slots."""
    if len(status.llm_endpoints) < 2:
        return []
    return [(f"Endpoint {e.url}", f"{'up ✔' if e.up else 'down ✖'} · {e.in_flight} of {e.slots} slots busy"
             + (f" · {e.last_error}" if not e.up and e.last_error else "")) for e in status.llm_endpoints]


_TOOLS_LABEL = {"checking": "tools: checking…", "native": "tools ✔", "text": "tools ✔ (as text: {format})",
                "none": "⚠ cannot call tools", "unknown": "tools: not checked yet"}


def _tools_line(status: SystemStatus) -> str:
    """Whether the agents' model calls tools, with what that means on hover (and in full when it cannot)."""
    tools = status.llm_tools
    if tools is None:
        return ""
    label = _TOOLS_LABEL[tools.state].format(format=tools.format or "")
    detail = f'<br><small class="llm-tools-meaning">{escape(tools.meaning)}</small>' if tools.state == "none" else ""
    return (f'<div class="llm-tools" data-tools="{escape(tools.state)}" title="{escape(tools.meaning)}">'
            f'{escape(label)}{detail}</div>')


def integrations_html(status: SystemStatus | None, error: str | None = None) -> str:
    if status is None:
        return f'<div class="integ">The API did not answer: {escape(error or "")}</div>'
    rows = [("Provider", status.llm_provider), ("Base URL", status.llm_base_url),
            *((f"Model ({role})", name) for role, name in sorted(status.llm_models.items())),
            ("Reachable", "yes ✔" if status.llm_reachable else "no ✖"),
            *((("Tool calls", status.llm_tools.meaning),) if status.llm_tools is not None else ()),
            ("Requests in flight", str(status.llm_in_flight)), ("Requests waiting", str(status.llm_waiting)),
            *_endpoint_rows(status), *((("Why work waits", status.llm_wait_reason),) if status.llm_wait_reason else ()),
            ("Ray", f"{status.ray_nodes} node(s)")]
    body = "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in rows)
    return f'<table class="rec-table integ" id="integrations-table"><tbody>{body}</tbody></table>'


def changed_settings(form: Mapping[str, Any], saved: Mapping[str, Any]) -> dict[str, Any]:
    """Only the fields the person changed (blank fields are left as they are)."""
    out: dict[str, Any] = {}
    for name, value in form.items():
        if value is None or (isinstance(value, str) and not value.strip()):
            continue
        if isinstance(value, str):
            value = value.strip()
        elif isinstance(value, float) and isinstance(saved.get(name), int) and value.is_integer():
            value = int(value)
        if value != saved.get(name):
            out[name] = value
    return out


def saved_message(view: SettingsView, changed: Sequence[str]) -> str:
    applied = ", ".join(view.applied) or "nothing"
    restart = ", ".join(view.restart_required) or "nothing"
    return f"✔ Saved {', '.join(changed)}; applied now: {applied}; needs restart: {restart}."


def connection_message(result: ConnectionResult) -> str:
    if not result.ok:
        return f"✖ No: {result.error or 'the server did not answer'}"
    models = ", ".join(result.models[:8]) + (" …" if len(result.models) > 8 else "")
    return f"✔ Answered in {result.latency_ms:.0f} ms. Models: {models or 'none listed'}"
