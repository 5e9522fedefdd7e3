"""The Gradio web UI, mounted by serve_app at ``/``; it talks to the runtime through the HTTP API."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

# Set in the Serve replica before gradio is imported: no analytics calls, no Node server-side rendering.
UI_ENV = {"GRADIO_ANALYTICS_ENABLED": "False", "GRADIO_SSR_MODE": "False"}
LOGIN_MESSAGE = "Log in with any user name and the MAOS_API_TOKEN as the password."


def token_check(token: str) -> Callable[[str, str], bool]:
    """Gradio's login: the password must be the API token (the user name is not used)."""
    expected = token.encode()

    def check(_user: str, password: str) -> bool:
        return secrets.compare_digest((password or "").encode(), expected)

    return check


def mount_ui(api: Any, settings: Any, api_base: str, dashboard_url: str | None) -> None:
    """Mount the Blocks app at ``/`` of ``api`` (call after the API routes: ``/`` catches the rest).

    gradio is imported here, in the replica that builds the app, never where the builder is pickled.
    With an API token set, the UI has a login page and its own API calls carry the token.
    """
    import gradio as gr

    from ui.app import build_blocks
    from ui.client import ApiClient
    from ui.style import CSS

    secret = getattr(settings, "api_token", None)
    token = secret.get_secret_value() if secret is not None else None
    demo = build_blocks(ApiClient(api_base, token), dashboard_url)
    gr.mount_gradio_app(api, demo, path="/", ssr_mode=False, footer_links=[],
                        auth=token_check(token) if token else None, auth_message=LOGIN_MESSAGE,
                        theme=gr.themes.Soft(primary_hue="indigo"), css=CSS)
