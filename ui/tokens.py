"""The Settings page's API tokens: the signed-in person's own tokens for the CLI and scripts
(create, shown once; list; revoke) and "log out everywhere". All through the HTTP API, as that
person (the client passes the page's session along).
"""

from __future__ import annotations

from html import escape

import gradio as gr

from core.account_schemas import ApiTokenView
from ui.client import ApiClient, ApiError

TO_LOGIN_JS = "() => { window.location.href = '/login'; }"


def tokens_html(tokens: list[ApiTokenView]) -> str:
    if not tokens:
        return "<p>No API tokens.</p>"
    rows = "".join(f"<tr><td>{escape(t.name)}</td><td><code>{escape(t.id)}</code></td></tr>" for t in tokens)
    return f"<table><tr><th>Name</th><th>Id</th></tr>{rows}</table>"


class TokenHandlers:
    def __init__(self, client: ApiClient) -> None:
        self.client = client

    async def load(self) -> str:
        try:
            return tokens_html(await self.client.tokens())
        except ApiError as exc:
            return f"<p>{escape(str(exc))}</p>"

    async def create(self, name: str) -> tuple[str, str]:
        try:
            made = await self.client.create_token((name or "").strip() or "token")
        except ApiError as exc:
            return await self.load(), f"Not created: {exc}"
        return await self.load(), f"New token **{made.token.name}** (shown once, copy it now): `{made.secret}`"

    async def revoke(self, token_id: str) -> tuple[str, str]:
        try:
            await self.client.revoke_token((token_id or "").strip())
        except ApiError as exc:
            return await self.load(), f"Not revoked: {exc}"
        return await self.load(), "Revoked."

    async def log_out_everywhere(self) -> str:
        try:
            await self.client.log_out_everywhere()
        except ApiError as exc:
            return f"Not logged out: {exc}"
        return "Logged out everywhere."


def tokens_section(client: ApiClient) -> tuple[TokenHandlers, gr.HTML]:
    """Build the section inside the current Blocks context; returns its handlers and the list (to
    load when the page opens)."""
    h = TokenHandlers(client)
    gr.Markdown("### API tokens (for the CLI and scripts: `Authorization: Bearer maos_…`)")
    listing = gr.HTML(elem_id="tokens-list")
    with gr.Row(equal_height=True):
        name = gr.Textbox(label="New token's name", max_lines=1, elem_id="token-name", scale=2)
        create = gr.Button("Create token", elem_id="token-create", scale=0, min_width=140)
        token_id = gr.Textbox(label="Token id to revoke", max_lines=1, elem_id="token-id", scale=2)
        revoke = gr.Button("Revoke", elem_id="token-revoke", scale=0, min_width=120)
    result = gr.Markdown(elem_id="token-result")
    everywhere = gr.Button("Log out everywhere", elem_id="logout-everywhere", variant="stop")
    create.click(h.create, [name], [listing, result], api_visibility="private")
    revoke.click(h.revoke, [token_id], [listing, result], api_visibility="private")
    everywhere.click(h.log_out_everywhere, None, [result], api_visibility="private").then(
        None, None, None, js=TO_LOGIN_JS)
    return h, listing
