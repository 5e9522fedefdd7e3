"""Integrations page rendering (Google): pure functions from the integrations API's models to HTML
and form values."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from core.action_schemas import IntegrationView
from ui.render import fmt_time

CONNECT_LABELS = {"connected": "Update access", "reconnect": "Reconnect"}


def google_of(views: Sequence[IntegrationView]) -> IntegrationView | None:
    return next((v for v in views if v.provider == "google"), None)


def google_html(view: IntegrationView | None, error: str | None = None) -> str:
    """Where Google stands: not set up (and what to set), not connected, connected, or to reconnect."""
    if view is None:
        return f'<div class="integ-box" id="google-status" data-status="unknown">✖ {escape(error or "")}</div>'
    s = view.status
    if s == "not_configured":
        body = (f"<b>Google is not set up on this server.</b><br>{escape(view.reason or '')}")
    elif s == "disconnected":
        body = "○ Not connected. Choose what agents may do, then connect your Google account."
    elif s == "connected":
        since = f" since {fmt_time(view.connected_at)}" if view.connected_at else ""
        body = f'● Connected as <b class="google-account">{escape(view.account or "an unnamed account")}</b>{since}.'
    else:
        waiting = (f'<div class="integ-waiting">{view.waiting_tasks} task{"s are" if view.waiting_tasks != 1 else " is"} '
                   f"waiting for this.</div>" if view.waiting_tasks else "")
        body = (f'<div class="integ-warn" id="google-reconnect">⚠ Google needs to be connected again: '
                f'{escape(view.reason or "access was lost")}</div>{waiting}')
    return f'<div class="integ-box" id="google-status" data-status="{escape(s)}">{body}</div>'


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


def connect_label(view: IntegrationView | None) -> str:
    return CONNECT_LABELS.get(view.status, "Connect Google") if view else "Connect Google"


def safe_url(url: str | None) -> str | None:
    """Only a web address may be opened (never ``javascript:`` or ``data:``)."""
    url = (url or "").strip()
    return url if url.lower().startswith(("https://", "http://")) else None


def continue_html(url: str | None) -> str:
    """The link to Google's consent page (the page also goes there by itself)."""
    safe = safe_url(url)
    if safe is None:
        return '<div class="integ-warn">✖ The API gave no usable address for Google\'s consent page.</div>'
    return (f'<div class="integ-continue"><a id="google-continue" class="integ-link" href="{escape(safe)}" '
            f'target="_self">Continue to Google →</a> <span class="rec-meta">Google asks you to choose an '
            f"account and allow access, then brings you back here.</span></div>")


def notice_html(text: str, error: bool = False) -> str:
    if error:
        return f'<div class="integ-warn" id="google-notice">✖ {escape(text)}</div>'
    return f'<div class="integ-note" id="google-notice">{escape(text)}</div>'
