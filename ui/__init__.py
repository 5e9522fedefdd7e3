"""The Gradio web UI, mounted by serve_app at ``/``; it talks to the runtime through the HTTP API."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

# Set in the Serve replica before gradio is imported: no analytics calls, no Node server-side rendering.
UI_ENV = {"GRADIO_ANALYTICS_ENABLED": "False", "GRADIO_SSR_MODE": "False"}
LOGIN_MESSAGE = "Log in with the login token (printed by `make run` at first start, or MAOS_API_TOKEN)."


def mount_ui(api: Any, api_base: str, dashboard_url: str | None, verify: Callable[[str], bool], ui_key: str) -> None:
    """Mount the Blocks app at ``/`` of ``api`` (call after the API routes: ``/`` catches the rest).

    gradio is imported here, in the replica that builds the app, never where the builder is pickled.
    The UI always has a login page (``verify`` checks the password: the login token; the user name
    is not used yet), and its own API calls carry ``ui_key``, a key of this process.
    """
    import gradio as gr

    from ui.app import build_blocks
    from ui.client import ApiClient
    from ui.style import CSS

    demo = build_blocks(ApiClient(api_base, ui_key), dashboard_url)
    gr.mount_gradio_app(api, demo, path="/", ssr_mode=False, footer_links=[],
                        auth=lambda _user, password: verify(password or ""), auth_message=LOGIN_MESSAGE,
                        theme=gr.themes.Soft(primary_hue="indigo"), css=CSS)
