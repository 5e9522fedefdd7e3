"""The Google part of the Integrations page: where the connection stands, which features agents
may use, connect (the browser goes to Google's consent page and comes back to ``/?open=integrations``)
and disconnect. All through the HTTP API."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from core.action_schemas import GoogleFeature, IntegrationView
from ui import integration_views as iv
from ui.client import ApiClient, ApiError

REDIRECT_JS = "(url) => { if (url) window.location.href = url; }"  # same tab: Google sends it back here
FEATURES: tuple[GoogleFeature, ...] = ("gmail_read", "gmail_write", "calendar_read", "calendar_write",
                                       "drive_read", "drive_write")


class IntegrationHandlers:
    def __init__(self, client: ApiClient) -> None:
        self.client = client

    def _show(self, view: IntegrationView | None, error: str | None, message: str) -> list[Any]:
        """Outputs: status, features, connect button, disconnect button, message."""
        usable = view is not None and view.status != "not_configured"
        linked = view is not None and view.status in ("connected", "reconnect")
        return [iv.google_html(view, error),
                gr.CheckboxGroup(choices=iv.feature_choices(view), value=iv.feature_value(view),
                                 visible=bool(view and view.features), interactive=usable),
                gr.Button(iv.connect_label(view), interactive=usable, visible=view is not None),
                gr.Button(visible=linked), message]

    async def load(self) -> list[Any]:
        try:
            view = iv.google_of(await self.client.integrations())
        except ApiError as exc:
            return self._show(None, f"Could not ask the API about Google: {exc}", "")
        return self._show(view, "This server offers no Google integration." if view is None else None, "")

    async def connect(self, features: list[str] | None) -> tuple[str, str]:
        """Outputs: message (the link to Google), the address the page then goes to."""
        chosen = [f for f in FEATURES if f in (features or [])]
        if not chosen:
            return iv.notice_html("Choose at least one feature first.", error=True), ""
        try:
            start = await self.client.connect_google(chosen)
        except ApiError as exc:
            return iv.notice_html(str(exc), error=True), ""
        return iv.continue_html(start.authorization_url), iv.safe_url(start.authorization_url) or ""

    async def disconnect(self) -> list[Any]:
        try:
            view = await self.client.disconnect_google()
        except ApiError as exc:
            return [*[gr.skip()] * 4, iv.notice_html(f"Not disconnected: {exc}", error=True)]
        return self._show(view, None, iv.notice_html("✔ Disconnected: Google's tokens were revoked and forgotten."))


@dataclass
class GoogleSection:
    refresh: tuple[Any, list[Any], list[Any]]  # (handler, inputs, outputs) to show where Google stands


def google_section(client: ApiClient) -> GoogleSection:
    """Build the section inside the current Blocks (the Integrations page) and wire its events."""
    h = IntegrationHandlers(client)
    gr.Markdown("### Google (Gmail, Calendar, Drive)")
    status = gr.HTML(iv.google_html(None, "checking…"), elem_id="integrations-google")
    features = gr.CheckboxGroup([], value=[], label="What agents may do", visible=False, elem_id="google-features",
                                info="Reading is enough to search and draft; anything sent or changed still waits "
                                     "for your approval (see Approvals).")
    with gr.Row():
        connect = gr.Button("Connect Google", variant="primary", elem_id="google-connect", scale=0, min_width=170,
                            visible=False)
        disconnect = gr.Button("Disconnect", variant="stop", elem_id="google-disconnect", scale=0, min_width=140,
                               visible=False)
    message = gr.HTML("", elem_id="google-message")
    url = gr.Textbox(visible="hidden", elem_id="google-url", show_label=False)
    outputs = [status, features, connect, disconnect, message]
    connect.click(h.connect, [features], [message, url], api_visibility="private").then(
        None, [url], None, js=REDIRECT_JS, api_visibility="private")
    disconnect.click(h.disconnect, None, outputs, api_visibility="private")
    return GoogleSection((h.load, [], outputs))
