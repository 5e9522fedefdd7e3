"""Integrations page rendering, one section per registered provider: pure functions from the
integrations API's models to HTML and form values. Element ids carry the provider's name
(``google-status``, ``texting-status``, ...); where a function has no view to read it from, it is
told the provider's ``name``."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from core.action_schemas import IntegrationView
from core.errors import ToolError
from integrations import registry
from ui.render import fmt_time

CONNECT_LABELS = {"connected": "Update access", "reconnect": "Reconnect"}


def label_of(name: str) -> str:
    """What people call provider ``name`` ("Google"); the name itself when this process does not know it."""
    try:
        return registry.get(name).label
    except ToolError:  # registered in the runtime only: still shown, by its name
        return name


def view_of(views: Sequence[IntegrationView], name: str) -> IntegrationView | None:
    return next((v for v in views if v.provider == name), None)


def status_html(view: IntegrationView | None, error: str | None = None, name: str = "google") -> str:
    """Where the provider stands: not set up (and what to set), not connected, connected, or to reconnect."""
    name = view.provider if view is not None else name
    label, key = escape((view.label if view is not None else "") or label_of(name)), escape(name)
    if view is None:
        return f'<div class="integ-box" id="{key}-status" data-status="unknown">✖ {escape(error or "")}</div>'
    s = view.status
    if s == "not_configured":
        body = f"<b>{label} is not set up on this server.</b><br>{escape(view.reason or '')}"
    elif s == "disconnected":
        body = f"○ Not connected. Choose what agents may do, then connect your {label} account."
    elif s == "connected":
        since = f" since {fmt_time(view.connected_at)}" if view.connected_at else ""
        body = (f'● Connected as <b class="{key}-account">{escape(view.account or "an unnamed account")}</b>'
                f"{since}.")
    else:
        waiting = (f'<div class="integ-waiting">{view.waiting_tasks} task{"s are" if view.waiting_tasks != 1 else " is"} '
                   f"waiting for this.</div>" if view.waiting_tasks else "")
        body = (f'<div class="integ-warn" id="{key}-reconnect">⚠ {label} needs to be connected again: '
                f'{escape(view.reason or "access was lost")}</div>{waiting}')
    return f'<div class="integ-box" id="{key}-status" data-status="{escape(s)}">{body}</div>'


def feature_choices(view: IntegrationView | None) -> list[tuple[str, str]]:
    return [(f.label, f.name) for f in (view.features if view else [])]


def feature_value(view: IntegrationView | None) -> list[str]:
    """Checked: what is granted now; before any grant, the read-only features."""
    if view is None:
        return []
    granted: list[str] = [f.name for f in view.features if f.enabled]
    if granted and view.status in ("connected", "reconnect"):
        return granted
    return [f.name for f in view.features if f.name.endswith("_read")]


def connect_label(view: IntegrationView | None, name: str = "google") -> str:
    label = (view.label or label_of(view.provider)) if view is not None else label_of(name)
    return CONNECT_LABELS.get(view.status, f"Connect {label}") if view is not None else f"Connect {label}"


def safe_url(url: str | None) -> str | None:
    """Only a web address may be opened (never ``javascript:`` or ``data:``)."""
    url = (url or "").strip()
    return url if url.lower().startswith(("https://", "http://")) else None


def continue_html(url: str | None, name: str = "google") -> str:
    """The link to the provider's consent page (the page also goes there by itself)."""
    safe, label, key = safe_url(url), escape(label_of(name)), escape(name)
    if safe is None:
        return f'<div class="integ-warn">✖ The API gave no usable address for {label}\'s consent page.</div>'
    return (f'<div class="integ-continue"><a id="{key}-continue" class="integ-link" href="{escape(safe)}" '
            f'target="_self">Continue to {label} →</a> <span class="rec-meta">{label} asks you to choose an '
            f"account and allow access, then brings you back here.</span></div>")


def notice_html(text: str, error: bool = False, name: str = "google") -> str:
    if error:
        return f'<div class="integ-warn" id="{escape(name)}-notice">✖ {escape(text)}</div>'
    return f'<div class="integ-note" id="{escape(name)}-notice">{escape(text)}</div>'
