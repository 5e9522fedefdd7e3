"""Who is signed in (the sidebar says so; an admin's pages open only for an admin), and the Settings
page's People section for admins: every account, invite a person (a one-time link, shown once),
a new link for a forgotten password, disable or enable, make admin or member. All through the HTTP
API as the person on the page, which refuses a member whatever the page shows.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from html import escape
from typing import Any

import gradio as gr

from core.account_schemas import InviteView, Role, UserView
from core.action_schemas import DelegatesView
from ui.client import ApiClient, ApiError

LOG_OUT_JS = ("async () => { await fetch('/api/auth/logout', {method: 'POST'}); "
              "window.location.href = '/login'; }")  # the page's CSRF script adds the token to the POST
CHANGES = {"disable": "disabled (sessions ended, API tokens revoked)", "enable": "enabled",
           "admin": "now an admin", "member": "now a member"}


def signed_in_html(me: UserView | None, error: str = "") -> str:
    if me is None:
        return f"<p class='maos-who'>{escape(error or 'Not signed in')}</p>"
    return (f"<p class='maos-who' id='signed-in-as'>Signed in as <b>{escape(me.name)}</b> "
            f"<span class='maos-role'>({escape(me.role)})</span></p>")


def users_html(users: list[UserView]) -> str:
    rows = "".join(
        f"<tr><td>{escape(u.name)}</td><td><code>{escape(u.id)}</code></td><td>{escape(u.role)}</td>"
        f"<td>{'disabled' if u.disabled else ('active' if u.has_password else 'invited')}</td></tr>" for u in users)
    return f"<table id='people-table'><tr><th>Name</th><th>Id</th><th>Role</th><th>State</th></tr>{rows}</table>"


def link_html(made: InviteView, origin: str) -> str:
    url = f"{origin}{made.link}"
    return (f"Send this one-time link to **{escape(made.user.name)}** (shown once; valid 72 h, "
            f"used once): `{url}`")


def _origin(request: gr.Request | None) -> str:
    """The address the admin's browser used (the door let only this app's own names through), so
    the link works where they are."""
    url = getattr(request, "url", None) if request is not None else None
    return f"{url.scheme}://{url.netloc}" if url is not None else ""


def delegates_html(view: DelegatesView) -> str:
    def names(people: list[Any]) -> str:
        return ", ".join(f"<b>{escape(p.name)}</b>" for p in people) or "nobody"

    return (f"<p id='delegates-mine'>May decide your pending actions besides you: {names(view.delegates)}.</p>"
            f"<p id='delegates-for'>You may decide the pending actions of: {names(view.delegate_for)}.</p>")


class DelegateHandlers:
    """Your approval delegates: the people who may also approve, edit or reject your agents' actions."""

    def __init__(self, client: ApiClient) -> None:
        self.client = client

    async def load(self) -> tuple[str, str]:
        """Outputs: who, and the names in the box (to edit)."""
        try:
            view = await self.client.delegates()
        except ApiError as exc:
            return f"<p>{escape(str(exc))}</p>", ""
        return delegates_html(view), ", ".join(p.name for p in view.delegates)

    async def save(self, names: str) -> tuple[str, str, str]:
        """Outputs: who, the box, the result."""
        wanted = [n.strip() for n in (names or "").replace("\n", ",").split(",") if n.strip()]
        try:
            view = await self.client.set_delegates(wanted)
        except ApiError as exc:
            shown, box = await self.load()
            return shown, box, f"Not saved: {exc}"
        return delegates_html(view), ", ".join(p.name for p in view.delegates), "Saved."


class PeopleHandlers:
    def __init__(self, client: ApiClient) -> None:
        self.client = client

    async def whoami(self) -> tuple[str, Any, Any]:
        """Outputs: the sidebar's line, the admin-only settings (shown to an admin), the policy's save
        row (an admin's)."""
        line, admin = await self._whoami()
        return line, gr.Column(visible=admin), gr.Row(visible=admin)

    async def settings_opened(self) -> tuple[str, Any, Any, Any]:
        """As :meth:`whoami`, then the People list: an admin's, read when Settings opens (a member's
        page asks for none)."""
        line, admin = await self._whoami()
        listing = await self.load() if admin else gr.update()
        return line, gr.Column(visible=admin), gr.Row(visible=admin), listing

    async def _whoami(self) -> tuple[str, bool]:
        """The sidebar's line, and whether the person is an admin."""
        try:
            me = await self.client.me()
        except ApiError as exc:
            return signed_in_html(None, str(exc)), False
        return signed_in_html(me), me.role == "admin"

    async def load(self) -> str:
        try:
            return users_html(await self.client.users())
        except ApiError as exc:
            return f"<p>{escape(str(exc))}</p>"

    async def _user(self, name_or_id: str) -> UserView:
        wanted = (name_or_id or "").strip()
        found = next((u for u in await self.client.users() if wanted in (u.name, u.id)), None)
        if found is None:
            raise ApiError(404, f"no account '{wanted}'")
        return found

    async def invite(self, name: str, role: Role, request: gr.Request) -> tuple[str, str]:
        try:
            made = await self.client.invite_user((name or "").strip(), role)
        except ApiError as exc:
            return await self.load(), f"Not invited: {exc}"
        return await self.load(), link_html(made, _origin(request))

    async def reinvite(self, name_or_id: str, request: gr.Request) -> tuple[str, str]:
        try:
            made = await self.client.reinvite_user((await self._user(name_or_id)).id)
        except ApiError as exc:
            return await self.load(), f"No new link: {exc}"
        return await self.load(), link_html(made, _origin(request))

    async def change(self, name_or_id: str, what: str) -> tuple[str, str]:
        """``what``: disable, enable, admin or member (:data:`CHANGES`)."""
        try:
            user = await self._user(name_or_id)
            if what in ("disable", "enable"):
                await self.client.change_user(user.id, disabled=what == "disable")
            else:
                await self.client.change_user(user.id, role="admin" if what == "admin" else "member")
        except ApiError as exc:
            return await self.load(), f"Not changed: {exc}"
        return await self.load(), f"{user.name}: {CHANGES[what]}"


@dataclass
class People:
    handlers: PeopleHandlers
    listing: gr.HTML


def delegates_section(client: ApiClient) -> tuple[Any, list[Any]]:
    """Build "Approval delegates" inside the current Blocks context: everyone's, for their own
    approvals. Returns the handler that fills it and its outputs (to load when Settings opens)."""
    h = DelegateHandlers(client)
    gr.Markdown("### Approval delegates\nPeople who may also approve, edit or reject what your agents propose "
                "(an admin may not, unless named here).")
    shown = gr.HTML(elem_id="delegates")
    with gr.Row(equal_height=True):
        names = gr.Textbox(label="Login names, separated by commas (empty: nobody)", max_lines=1,
                           elem_id="delegates-names", scale=3)
        save = gr.Button("Save delegates", elem_id="delegates-save", scale=0, min_width=150)
    result = gr.Markdown(elem_id="delegates-result")
    save.click(h.save, [names], [shown, names, result], api_visibility="private")
    return h.load, [shown, names]


def people_section(client: ApiClient) -> People:
    """Build the admin's People section inside the current Blocks context."""
    h = PeopleHandlers(client)
    gr.Markdown("### People")
    listing = gr.HTML(elem_id="people-list")
    with gr.Row(equal_height=True):
        name = gr.Textbox(label="Invite (login name)", max_lines=1, elem_id="people-name", scale=2)
        role = gr.Dropdown(["member", "admin"], value="member", label="Role", elem_id="people-role", scale=1)
        invite = gr.Button("Invite", elem_id="people-invite", variant="primary", scale=0, min_width=120)
    with gr.Row(equal_height=True):
        who = gr.Textbox(label="Account (name or id)", max_lines=1, elem_id="people-who", scale=2)
        buttons = {what: gr.Button(label, elem_id=f"people-{what}", scale=0, min_width=110)
                   for what, label in (("reinvite", "New link"), ("disable", "Disable"), ("enable", "Enable"),
                                       ("admin", "Make admin"), ("member", "Make member"))}
    result = gr.Markdown(elem_id="people-result")
    invite.click(h.invite, [name, role], [listing, result], api_visibility="private")
    buttons["reinvite"].click(h.reinvite, [who], [listing, result], api_visibility="private")
    for what in CHANGES:
        buttons[what].click(partial(h.change, what=what), [who], [listing, result], api_visibility="private")
    return People(h, listing)
