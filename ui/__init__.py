"""The Gradio web UI, mounted by serve_app at ``/``; it talks to the runtime through the HTTP API."""

from __future__ import annotations

import ssl
from collections.abc import Callable
from typing import Any

# Set in the Serve replica before gradio is imported: no analytics calls, no Node server-side rendering.
UI_ENV = {"GRADIO_ANALYTICS_ENABLED": "False", "GRADIO_SSR_MODE": "False"}
LOGIN_MESSAGE = "Log in first: /login (your name and password, or the login token printed by `make run`)."


def mount_ui(api: Any, api_base: str, dashboard_url: str | None, user_of: Callable[[Any], str | None], ui_key: str,
             head: str = "", verify: ssl.SSLContext | bool = True) -> None:
    """Mount the Blocks app at ``/`` of ``api`` (call after the API routes: ``/`` catches the rest).

    gradio is imported here, in the replica that builds the app, never where the builder is pickled.
    The UI needs a login (serve_app's ``/login`` page; ``user_of`` names the request's user, or None
    for a stranger), ``head`` goes into its pages' ``<head>`` (the CSRF token on its requests), and
    its own API calls carry ``ui_key``, a key of this process, and act for the person whose page
    made them (:func:`page_person`); over HTTPS they trust the certificate ``verify`` pins.
    """
    import gradio as gr

    from ui.app import build_blocks
    from ui.client import ApiClient
    from ui.style import CSS

    demo = build_blocks(ApiClient(api_base, ui_key, person=page_person, verify=verify), dashboard_url)
    gr.mount_gradio_app(api, demo, path="/", ssr_mode=False, footer_links=[],
                        auth_dependency=user_of, auth_message=LOGIN_MESSAGE, head=head,
                        theme=gr.themes.Soft(primary_hue="indigo"), css=CSS)


def page_person() -> dict[str, str]:
    """The headers of a UI call for the person whose page made it: their session (``X-Maos-Session``),
    read from the request of the Gradio event being handled. No session, no person: the API refuses."""
    from gradio.context import LocalContext

    from core.account_schemas import SESSION_COOKIE, UI_SESSION_HEADER

    request = LocalContext.request.get(None)
    session = request.cookies.get(SESSION_COOKIE) if request is not None else None
    return {UI_SESSION_HEADER: session} if session else {}
