"""The Integrations page's provider sections, one per registered provider (``integrations.registry``):
where the connection stands, which features agents may use, connect (the browser goes to the
provider's consent page and comes back to ``/?open=integrations``) and disconnect. All through the
HTTP API."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from core.action_schemas import IntegrationView
from integrations import registry
from ui import integration_views as iv
from ui.client import ApiClient, ApiError

REDIRECT_JS = "(url) => { if (url) window.location.href = url; }"  # same tab: the provider sends it back here


class IntegrationHandlers:
    """The section of provider ``name`` (Google unless said)."""

    def __init__(self, client: ApiClient, name: str = "google") -> None:
        self.client = client
        self.name = name
        provider = registry.get(name)
        self.label = provider.label
        self.features = tuple(provider.features)  # the order they are asked for in

    def _show(self, view: IntegrationView | None, error: str | None, message: str) -> list[Any]:
        """Outputs: status, features, connect button, disconnect button, message."""
        usable = view is not None and view.status != "not_configured"
        linked = view is not None and view.status in ("connected", "reconnect")
        return [iv.status_html(view, error, self.name),
                gr.CheckboxGroup(choices=iv.feature_choices(view), value=iv.feature_value(view),
                                 visible=bool(view and view.features), interactive=usable),
                gr.Button(iv.connect_label(view, self.name), interactive=usable, visible=view is not None),
                gr.Button(visible=linked), message]

    async def load(self) -> list[Any]:
        try:
            view = iv.view_of(await self.client.integrations(), self.name)
        except ApiError as exc:
            return self._show(None, f"Could not ask the API about {self.label}: {exc}", "")
        return self._show(view, f"This server offers no {self.label} integration." if view is None else None, "")

    async def connect(self, features: list[str] | None) -> tuple[str, str]:
        """Outputs: message (the link to the consent page), the address the page then goes to."""
        chosen = [f for f in self.features if f in (features or [])]
        if self.features and not chosen:
            return iv.notice_html("Choose at least one feature first.", error=True, name=self.name), ""
        try:
            start = await self.client.connect_integration(self.name, chosen)
        except ApiError as exc:
            return iv.notice_html(str(exc), error=True, name=self.name), ""
        return iv.continue_html(start.authorization_url, self.name), iv.safe_url(start.authorization_url) or ""

    async def disconnect(self) -> list[Any]:
        try:
            view = await self.client.disconnect_integration(self.name)
        except ApiError as exc:
            return [*[gr.skip()] * 4, iv.notice_html(f"Not disconnected: {exc}", error=True, name=self.name)]
        return self._show(view, None, iv.notice_html(f"✔ Disconnected: {self.label}'s tokens were revoked and "
                                                     "forgotten.", name=self.name))


@dataclass
class ProviderSection:
    name: str
    refresh: tuple[Any, list[Any], list[Any]]  # (handler, inputs, outputs) to show where it stands


def provider_section(client: ApiClient, name: str) -> ProviderSection:
    """Build provider ``name``'s section inside the current Blocks and wire its events."""
    h = IntegrationHandlers(client, name)
    description = registry.get(name).description
    gr.Markdown(f"### {h.label}" + (f" ({description})" if description else ""))
    status = gr.HTML(iv.status_html(None, "checking…", name), elem_id=f"integrations-{name}")
    features = gr.CheckboxGroup([], value=[], label="What agents may do", visible=False, elem_id=f"{name}-features",
                                info="Reading is enough to search and draft; anything sent or changed still waits "
                                     "for your approval (see Approvals).")
    with gr.Row():
        connect = gr.Button(f"Connect {h.label}", variant="primary", elem_id=f"{name}-connect", scale=0,
                            min_width=170, visible=False)
        disconnect = gr.Button("Disconnect", variant="stop", elem_id=f"{name}-disconnect", scale=0, min_width=140,
                               visible=False)
    message = gr.HTML("", elem_id=f"{name}-message")
    url = gr.Textbox(visible="hidden", elem_id=f"{name}-url", show_label=False)
    outputs = [status, features, connect, disconnect, message]
    connect.click(h.connect, [features], [message, url], api_visibility="private").then(
        None, [url], None, js=REDIRECT_JS, api_visibility="private")
    disconnect.click(h.disconnect, None, outputs, api_visibility="private")
    return ProviderSection(name, (h.load, [], outputs))


def provider_sections(client: ApiClient) -> list[ProviderSection]:
    """One section per registered provider, in registration order (built-ins first)."""
    return [provider_section(client, p.name) for p in registry.registered()]
