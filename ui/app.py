"""The Blocks app: a sidebar with the pages and the LLM in use, the pages, and their wiring.

Imported only inside the Serve replica (gradio is heavy and the builder is pickled).
"""

from __future__ import annotations

import typing
from typing import Any

import gradio as gr

from core.schemas import EditableSettings
from ui import views
from ui.approvals import approvals_page
from ui.chat import ChatHandlers
from ui.client import ApiClient
from ui.feedback import feedback_form
from ui.integrations import provider_sections
from ui.memory import memory_page
from ui.pages import ANY, RUN_STATUSES, SETTING_FIELDS, TASK_STATUSES, PageHandlers, Search, table
from ui.people import LOG_OUT_JS, delegates_section, people_section, signed_in_html
from ui.render import plan_html
from ui.tokens import tokens_section

PAGES = {"chat": "Chat", "approvals": "Approvals", "history": "History", "memory": "Memory", "agents": "Agents",
         "integrations": "Integrations", "settings": "Settings"}
SECTIONS = {
    "LLM server": ["llm_provider", "llm_base_url", "llm_model", "llm_worker_model", "llm_slots", "llm_endpoints"],
    "Capacity": ["max_in_flight", "per_type_in_flight", "queue_bound", "max_attempts"],
    "Budgets": ["max_plan_steps", "max_turns", "max_run_tokens", "run_deadline_s", "context_token_budget"],
    "Features": ["stream_replies", "write_summaries", "answer_directly"],
}
STATUS_EVERY_S = 3.0
AGENTS_EVERY_S = 2.0
BADGE_EVERY_S = 10.0  # the count of pending approvals in the sidebar
OPEN_PARAM = "open"  # /?open=<page key> opens that page
QUIET: dict[str, Any] = {"api_visibility": "private", "show_progress": "hidden"}


def search_row(prefix: str, placeholder: str, statuses: list[str]) -> tuple[Any, Any, Any, Any, Any]:
    """Search text, status, agent type, date range and a Search button (ids ``<prefix>-q`` …)."""
    with gr.Row():
        q = gr.Textbox(label="Search", placeholder=placeholder, scale=3, elem_id=f"{prefix}-q")
        status = gr.Dropdown(statuses, value=ANY, label="Status", elem_id=f"{prefix}-status")
        agent = gr.Dropdown([ANY], value=ANY, label="Agent type", elem_id=f"{prefix}-agent")
        when = gr.Dropdown(list(views.DATE_RANGES), value="Any time", label="When", elem_id=f"{prefix}-when")
        go = gr.Button("Search", elem_id=f"{prefix}-search", variant="primary", scale=0, min_width=100)
    return q, status, agent, when, go


def setting_input(name: str) -> gr.components.Component:
    """A form field for one EditableSettings field, chosen by its type."""
    info = EditableSettings.model_fields[name]
    kinds = [a for a in typing.get_args(info.annotation) if a is not type(None)]
    kind = kinds[0] if kinds else str
    common: dict[str, Any] = {"label": name.replace("_", " ").capitalize().replace("Llm", "LLM"),
                              "info": info.description, "elem_id": f"set-{name}"}
    if typing.get_origin(kind) is typing.Literal:
        return gr.Dropdown(choices=list(typing.get_args(kind)), **common)
    if kind is bool:
        return gr.Checkbox(**common)
    if kind in (int, float):
        return gr.Number(precision=0 if kind is int else None, **common)
    return gr.Textbox(**common)


def url_link(outputs: list[Any], show: Any) -> Any:
    """A source link (``/?doc=<id>``) opens the Memory page on that document; ``/?open=<key>`` opens
    that page (Google's consent comes back to ``/?open=integrations``). Not ``?page=``: Gradio
    reads that one itself (multipage apps) and answers 500 for a page it does not have."""
    def open_link(request: gr.Request) -> list[Any]:
        params = request.query_params if request is not None else {}
        document_id, page = params.get("doc"), params.get(OPEN_PARAM)
        if document_id:
            return [*show("memory")(), document_id]
        if page in PAGES:
            return [*show(page)(), gr.skip()]
        return [gr.skip() for _ in outputs] + [gr.skip()]
    return open_link


def build_blocks(client: ApiClient, dashboard_url: str | None) -> gr.Blocks:
    chat, pages = ChatHandlers(client), PageHandlers(client)
    with gr.Blocks(title="Master Agent OS") as demo:
        conversation = gr.State(None)
        run_id = gr.State(None)
        found_ids = gr.State([])
        picked = gr.State(None)
        saved = gr.State({})

        with gr.Sidebar(label="Master Agent OS", open=True, width=240, elem_id="sidebar"):
            gr.Markdown("### Master Agent OS")
            nav = {key: gr.Button(label, elem_id=f"nav-{key}", elem_classes="nav-btn", size="sm",
                                  variant="primary" if key == "chat" else "secondary") for key, label in PAGES.items()}
            llm_badge = gr.HTML(views.sidebar_llm(None, "checking…"), elem_id="sidebar-llm")
            who = gr.HTML(signed_in_html(None, "…"), elem_id="sidebar-who")
            log_out = gr.Button("Log out", elem_id="nav-logout", size="sm")

        with gr.Column(visible=True, elem_id="page-chat") as chat_page:
            with gr.Row(equal_height=False):
                with gr.Column(scale=3):
                    chatbot = gr.Chatbot(elem_id="chatbot", height=600, show_label=False, feedback_options=None,
                                         buttons=["copy", "copy_all"],
                                         placeholder="Ask the master agent for something. It plans the work; "
                                                     "sub-agents carry it out in parallel.")
                    with gr.Row(elem_id="chat-input-row"):
                        message = gr.Textbox(elem_id="chat-input", label="Message", show_label=False, scale=6,
                                             max_lines=6,
                                             container=False,
                                             placeholder="e.g. follow up with every lead tagged webinar",
                                             autofocus=True)
                        send = gr.Button("Send", elem_id="chat-send", variant="primary", scale=0, min_width=100)
                        stop = gr.Button("Stop", elem_id="chat-stop", variant="stop", scale=0, min_width=90)
                        new_chat = gr.Button("New chat", elem_id="chat-new", scale=0, min_width=130)
                    sources = gr.HTML("", elem_id="chat-sources")
                    feedback = feedback_form(client, run_id)
                with gr.Column(scale=2):
                    plan = gr.HTML(plan_html(None), elem_id="plan")
                    drafts = gr.HTML("", elem_id="drafts")

        with gr.Column(visible=False, elem_id="page-history") as history_page:
            gr.Markdown("## History")
            with gr.Tab("Conversations", elem_id="history-tab-conversations"):
                h_q, h_status, h_agent, h_when, h_go = search_row("history", "words in a title or a message",
                                                                  RUN_STATUSES)
                h_note = gr.Markdown(elem_id="history-note")
                h_table = gr.Dataframe(table(views.CONVERSATION_HEADERS, []), interactive=False, wrap=True,
                                       elem_id="history-results", max_height=320,
                                       column_widths=["46%", "9%", "7%", "24%", "14%"])
                h_continue = gr.Button("Continue in Chat", elem_id="history-continue", interactive=False,
                                       variant="primary", size="sm")
                h_record = gr.HTML("", elem_id="history-record")
            with gr.Tab("Tasks", elem_id="history-tab-tasks"):
                t_q, t_status, t_agent, t_when, t_go = search_row("tasks", "words in an instruction, output or error",
                                                                  TASK_STATUSES)
                t_note = gr.Markdown(elem_id="tasks-note")
                t_table = gr.Dataframe(table(views.TASK_HEADERS, []), interactive=False, wrap=True,
                                       elem_id="tasks-results", max_height=480,
                                       column_widths=["14%", "8%", "9%", "7%", "7%", "28%", "27%"])

        approvals = approvals_page(client, nav["approvals"])
        memory = memory_page(client)

        with gr.Column(visible=False, elem_id="page-agents") as agents_page:
            gr.Markdown("## Agents")
            a_totals = gr.Markdown(elem_id="agents-totals")
            a_pools = gr.Dataframe(table(views.POOL_HEADERS, []), interactive=False, elem_id="agents-pools",
                                   column_widths=["20%", "16%", "16%", "16%", "16%", "16%"])
            gr.Markdown("### Machines")
            a_machines = gr.Dataframe(table(views.MACHINE_HEADERS, []), interactive=False, elem_id="agents-machines",
                                      column_widths=["30%", "20%", "25%", "25%"])
            gr.Markdown("### Dead letters")
            a_dead = gr.Dataframe(table(views.DEAD_HEADERS, []), interactive=False, wrap=True, elem_id="agents-dead",
                                  column_widths=["18%", "10%", "9%", "45%", "18%"])
            with gr.Row():
                a_pick = gr.Dropdown([], label="Dead task to retry", allow_custom_value=True, scale=3,
                                     elem_id="agents-retry-pick")
                a_retry = gr.Button("Retry", elem_id="agents-retry", scale=0, min_width=100)
            a_result = gr.Markdown(elem_id="agents-retry-result")
            gr.Markdown(f"[Open the Ray dashboard]({dashboard_url}) for actors, nodes and logs." if dashboard_url
                        else "The Ray dashboard is not running in this cluster.", elem_id="agents-dashboard")

        with gr.Column(visible=False, elem_id="page-integrations") as integrations_page:
            gr.Markdown("## Integrations")
            providers = provider_sections(client)  # one per registered provider
            gr.Markdown("### LLM backend")
            integrations = gr.HTML(views.integrations_html(None, "checking…"), elem_id="integrations-llm")

        with gr.Column(visible=False, elem_id="page-settings") as settings_page:
            gr.Markdown("## Settings")
            with gr.Column(visible=False, elem_id="settings-admin") as admin_settings:  # shown to an admin
                fields: dict[str, gr.components.Component] = {}
                rest = [n for n in SETTING_FIELDS if not any(n in names for names in SECTIONS.values())]
                for title, names in [*SECTIONS.items(), *([("Other", rest)] if rest else [])]:
                    gr.Markdown(f"### {title}")
                    with gr.Row():
                        for name in names:
                            fields[name] = setting_input(name)
                    if title == "LLM server":
                        with gr.Row():
                            s_test = gr.Button("Test connection", elem_id="settings-test", scale=0, min_width=160)
                            s_test_result = gr.Markdown(elem_id="settings-test-result")
                with gr.Row(equal_height=True):
                    s_reauth = gr.Textbox(label="Your password or the login token (needed to change the LLM server)",
                                          type="password", max_lines=1, elem_id="settings-reauth", scale=2)
                    s_save = gr.Button("Save", elem_id="settings-save", variant="primary", scale=0, min_width=120)
                    s_reload = gr.Button("Reload", elem_id="settings-reload", scale=0, min_width=120)
                s_result = gr.Markdown(elem_id="settings-result")
                people = people_section(client)
            tokens, tokens_list = tokens_section(client)
            load_delegates, delegates_outputs = delegates_section(client)

        status_timer = gr.Timer(STATUS_EVERY_S)
        agents_timer = gr.Timer(AGENTS_EVERY_S, active=False)
        badge_timer = gr.Timer(BADGE_EVERY_S)

        # --- wiring ---------------------------------------------------------------------------
        columns = {"chat": chat_page, "approvals": approvals.column, "history": history_page,
                   "memory": memory.column, "agents": agents_page, "integrations": integrations_page,
                   "settings": settings_page}
        switch_outputs: list[Any] = [*(columns[k] for k in PAGES), *nav.values(), agents_timer, approvals.timer]

        def show(key: str) -> Any:
            def switch() -> list[Any]:
                return ([gr.Column(visible=k == key) for k in PAGES]
                        + [gr.Button(variant="primary" if k == key else "secondary") for k in PAGES]
                        + [gr.Timer(active=key == "agents"), gr.Timer(active=key == "approvals")])
            return switch

        history = Search((pages.search, [h_q, h_status, h_agent, h_when], [h_table, found_ids, h_note]),
                         [h_go.click, h_q.submit])
        agents_outputs = [a_pools, a_totals, a_machines, a_dead, a_pick]
        settings_outputs = [*(fields[n] for n in SETTING_FIELDS), saved, s_result]
        whoami_outputs = [who, admin_settings, approvals.policy_edit]
        opening: dict[Search, list[Any]] = {history: [], memory.documents: [], approvals.audit: []}
        for key, button in nav.items():
            switched = button.click(show(key), None, switch_outputs, queue=False, api_visibility="private")
            if key == "history":
                opening[history].append(switched.then(*history.call, **QUIET))
            elif key == "memory":
                opening[memory.documents].append(switched.then(*memory.documents.call, **QUIET))
            elif key == "approvals":
                switched.then(*approvals.refresh, **QUIET).then(*approvals.load_policy, **QUIET)
                opening[approvals.audit].append(switched.then(*approvals.audit.call, **QUIET))
            elif key == "integrations":
                for section in providers:
                    switched.then(*section.refresh, **QUIET)
            elif key == "agents":
                switched.then(pages.agents, None, agents_outputs, **QUIET)
            elif key == "settings":
                switched.then(people.handlers.settings_opened, None, [*whoami_outputs, people.listing], **QUIET).then(
                    pages.load_settings, None, settings_outputs, **QUIET)
                switched.then(tokens.load, None, [tokens_list], **QUIET).then(
                    load_delegates, None, delegates_outputs, **QUIET)

        hide_feedback: dict[str, Any] = {"fn": lambda: gr.Column(visible=False), "inputs": None,
                                         "outputs": [feedback.box], "queue": False, "api_visibility": "private"}
        opened = h_continue.click(show("chat"), None, switch_outputs, queue=False, api_visibility="private").then(
            **hide_feedback).then(chat.open, [picked], [chatbot, conversation, plan, drafts, sources, run_id], **QUIET)
        opened.then(feedback.prepare, [run_id], feedback.outputs, **QUIET)
        chat_io: dict[str, Any] = {"inputs": [message, chatbot, conversation],
                                   "outputs": [chatbot, message, conversation, plan, drafts, sources, run_id],
                                   "api_visibility": "private", "cancels": [opened]}
        submitted = []
        for trigger in (message.submit, send.click):
            run = trigger(**hide_feedback).then(chat.submit, **chat_io, show_progress="hidden")
            run.then(feedback.prepare, [run_id], feedback.outputs, **QUIET)
            submitted.append(run)
        stop.click(chat.stop, [run_id], None, api_visibility="private")
        new_chat.click(lambda: ([], None, plan_html(None), "", "", "", None, gr.Column(visible=False)), None,
                       [chatbot, conversation, plan, drafts, message, sources, run_id, feedback.box],
                       cancels=[opened, *submitted], api_visibility="private")
        loaded = demo.load(url_link(switch_outputs, show), None, [*switch_outputs, memory.picked],
                           **QUIET).then(*memory.open_picked, **QUIET)
        opening[memory.documents].append(loaded.then(*memory.documents.call, **QUIET))
        for section in providers:
            demo.load(*section.refresh, **QUIET)
        demo.load(*approvals.refresh, **QUIET).then(*approvals.load_policy, **QUIET)
        badge_timer.tick(*approvals.badge, **QUIET)

        for search, listings in opening.items():
            search.wire(cancels=listings)
        h_table.select(pages.select, [found_ids], [h_record, picked, h_continue], api_visibility="private")
        task_inputs = [t_q, t_status, t_agent, t_when]
        t_go.click(pages.tasks, task_inputs, [t_table, t_note], api_visibility="private")
        t_q.submit(pages.tasks, task_inputs, [t_table, t_note], api_visibility="private")

        agents_timer.tick(pages.agents, None, agents_outputs, **QUIET)
        a_retry.click(pages.retry, [a_pick], [a_result], api_visibility="private").then(
            pages.agents, None, agents_outputs, **QUIET)

        status_timer.tick(pages.status, None, [llm_badge, integrations], **QUIET)
        demo.load(pages.status, None, [llm_badge, integrations], **QUIET)
        demo.load(people.handlers.whoami, None, whoami_outputs, **QUIET)
        log_out.click(None, None, None, js=LOG_OUT_JS)
        demo.load(pages.agent_choices, None, [h_agent, t_agent], **QUIET)

        s_save.click(pages.save_settings, [*(fields[n] for n in SETTING_FIELDS), saved, s_reauth], [saved, s_result],
                     api_visibility="private")
        s_reload.click(pages.load_settings, None, settings_outputs, api_visibility="private")
        s_test.click(pages.test_connection, [fields["llm_provider"], fields["llm_base_url"], fields["llm_model"]],
                     [s_test_result], api_visibility="private")
    demo.queue(default_concurrency_limit=64)
    return demo
