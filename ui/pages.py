"""Handlers of the History, Agents, Integrations and Settings pages (all through the HTTP API)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import gradio as gr

from core.schemas import EditableSettings, RunView, SystemStatus
from ui import views
from ui.client import ApiClient, ApiError

ANY = "Any"
RUN_STATUSES = [ANY, "planning", "running", "summarizing", "done", "failed", "cancelled"]
TASK_STATUSES = [ANY, "pending", "ready", "running", "failed", "done", "dead", "blocked", "waiting", "cancelled"]
SETTING_FIELDS: list[str] = list(EditableSettings.model_fields)
Table = dict[str, Any]


def table(headers: list[str], rows: list[list[Any]]) -> Table:
    return {"headers": headers, "data": rows}


@dataclass(eq=False)  # compared, and used as a key, by identity
class Search:
    """A listing that opening a page starts, and the events by which the user asks for one of their own.

    The app wires the triggers (``wire``) once it knows the listings that opening the page starts: a search
    of one's own cancels them, so a slower listing cannot land after it and overwrite what was asked for.
    """

    call: tuple[Any, list[Any], list[Any]]  # (handler, inputs, outputs)
    triggers: list[Any]  # e.g. [button.click, box.submit]

    def wire(self, cancels: list[Any]) -> None:
        for trigger in self.triggers:
            trigger(*self.call, api_visibility="private", cancels=cancels)


def _opt(value: str | None) -> str | None:
    return None if value in (None, "", ANY) else value


class PageHandlers:
    def __init__(self, client: ApiClient) -> None:
        self.client = client

    # --- sidebar and integrations --------------------------------------------------------------

    async def status(self) -> tuple[str, str]:
        try:
            s: SystemStatus | None = await self.client.status()
            error = None
        except ApiError as exc:
            s, error = None, str(exc)
        return views.sidebar_llm(s, error), views.integrations_html(s, error)

    async def agent_choices(self) -> Any:
        try:
            names = [p.agent for p in (await self.client.agents()).pools]
        except ApiError:
            names = []
        return gr.Dropdown(choices=[ANY, *names]), gr.Dropdown(choices=[ANY, *names])

    # --- history -------------------------------------------------------------------------------

    async def search(self, q: str, status: str, agent: str, when: str) -> tuple[Table, list[str], str]:
        try:
            found = await self.client.list_conversations(q=(q or "").strip() or None, status=_opt(status),
                                                         agent=_opt(agent), since=views.since_for(when, time.time()))
        except ApiError as exc:
            return table(views.CONVERSATION_HEADERS, []), [], f"✖ {exc}"
        note = f"{len(found)} conversation(s)" + (" · select a row to open it" if found else "")
        return table(views.CONVERSATION_HEADERS, views.conversation_rows(found)), [c.id for c in found], note

    async def record(self, conversation_id: str | None) -> str:
        if not conversation_id:
            return ""
        try:
            view = await self.client.get_conversation(conversation_id)
            runs: dict[str, RunView] = {r.id: await self.client.get_run(r.id) for r in view.runs[-10:]}
        except ApiError as exc:
            return f'<div class="record">✖ {exc}</div>'
        return views.record_html(view, runs)

    async def select(self, ids: list[str], evt: gr.SelectData) -> tuple[str, str | None, Any]:
        index = evt.index[0] if isinstance(evt.index, list | tuple) else evt.index
        chosen = ids[index] if isinstance(index, int) and 0 <= index < len(ids) else None
        return await self.record(chosen), chosen, gr.Button(interactive=chosen is not None)

    async def tasks(self, q: str, status: str, agent: str, when: str) -> tuple[Table, str]:
        try:
            found = await self.client.list_tasks(q=(q or "").strip() or None, status=_opt(status), agent=_opt(agent),
                                                 since=views.since_for(when, time.time()), limit=200)
        except ApiError as exc:
            return table(views.TASK_HEADERS, []), f"✖ {exc}"
        return table(views.TASK_HEADERS, views.task_rows(found)), f"{len(found)} task(s)"

    # --- agents --------------------------------------------------------------------------------

    async def agents(self) -> tuple[Table, str, Table, Table, Any]:
        try:
            view = await self.client.agents()
        except ApiError as exc:
            return (table(views.POOL_HEADERS, []), f"✖ {exc}", table(views.MACHINE_HEADERS, []),
                    table(views.DEAD_HEADERS, []), gr.Dropdown())
        dead = [t.id for t in view.dead]
        return (table(views.POOL_HEADERS, views.pool_rows(view)), views.agents_totals(view),
                table(views.MACHINE_HEADERS, views.machine_rows(view)), table(views.DEAD_HEADERS, views.dead_rows(view)),
                gr.Dropdown(choices=dead))

    async def retry(self, task_id: str | None) -> str:
        if not task_id:
            return "Pick a dead task first."
        try:
            task = await self.client.retry_task(task_id)
        except ApiError as exc:
            return f"✖ {exc}"
        return f"✔ {task.id} is back in the queue ({task.status})."

    # --- settings ------------------------------------------------------------------------------

    async def load_settings(self) -> list[Any]:
        try:
            values = (await self.client.get_settings()).values.model_dump()
        except ApiError as exc:
            return [gr.update() for _ in SETTING_FIELDS] + [{}, f"✖ Could not load the settings: {exc}"]
        return [values[name] for name in SETTING_FIELDS] + [values, ""]

    async def save_settings(self, *args: Any) -> tuple[dict[str, Any], str]:
        *form, saved, reauth = args
        changes = views.changed_settings(dict(zip(SETTING_FIELDS, form, strict=True)), saved or {})
        if not changes:
            return saved, "Nothing changed."
        try:
            view = await self.client.update_settings(changes, reauth or None)
        except ApiError as exc:
            return saved, f"✖ Not saved: {exc.detail}"
        return view.values.model_dump(), views.saved_message(view, list(changes))

    async def test_connection(self, provider: str, base_url: str, model: str) -> str:
        if provider == "auto":
            try:
                provider = (await self.client.status()).llm_provider
            except ApiError as exc:
                return f"✖ {exc}"
        try:
            result = await self.client.test_connection(provider, (base_url or "").strip(), (model or "").strip() or None)
        except ApiError as exc:
            return f"✖ {exc.detail}"
        return views.connection_message(result)
