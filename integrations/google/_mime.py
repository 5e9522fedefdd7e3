"""Email text in and out: base64url, headers, the readable body of a Gmail payload, HTML to text,
and the MIME of an outgoing message."""

from __future__ import annotations

import base64
import re
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import parsedate_to_datetime
from html.parser import HTMLParser
from typing import Any

from core.errors import GoogleApiError
from core.html_text import hidden

_SKIP = frozenset({"script", "style", "head", "title", "noscript", "template", "svg", "iframe", "object"})
_VOID = frozenset({"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr"})
_BLOCK = frozenset({
    "p", "div", "section", "article", "header", "footer", "table", "tr", "ul", "ol", "blockquote", "pre",
    "h1", "h2", "h3", "h4", "h5", "h6", "hr", "dl", "dt", "dd", "center", "form",
})


def b64url_decode(data: str) -> bytes:
    return base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))


def b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii")


def header(headers: list[dict[str, Any]] | None, name: str) -> str:
    """The first header called ``name`` (any case), '' when absent."""
    wanted = name.lower()
    for item in headers or []:
        if str(item.get("name", "")).lower() == wanted:
            return str(item.get("value", ""))
    return ""


def iso_date(date_header: str, internal_ms: str | int | None) -> str | None:
    """ISO time of a message: Gmail's internalDate (reliable), else the Date header."""
    if internal_ms not in (None, ""):
        try:
            return datetime.fromtimestamp(int(internal_ms) / 1000, UTC).isoformat(timespec="seconds")
        except (TypeError, ValueError, OverflowError):
            pass
    try:
        return parsedate_to_datetime(date_header).isoformat(timespec="seconds") if date_header else None
    except (TypeError, ValueError):
        return date_header or None


class _Text(HTMLParser):
    """Visible text of an email's HTML. Hidden elements (display:none, zero size) are dropped:
    they are where mail hides text meant for machines, not people."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self._skip: list[str] = []  # tags of the skipped elements we are inside

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _VOID:
            if tag in ("br", "hr") and not self._skip:
                self.out.append("\n")
            return
        if self._skip or tag in _SKIP or hidden(attrs):
            self._skip.append(tag)
            return
        if tag == "li":
            self.out.append("\n- ")
        elif tag in _BLOCK:
            self.out.append("\n")
        elif tag in ("td", "th"):
            self.out.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in _VOID:
            return
        if self._skip:
            if tag in self._skip:  # close up to the matching open tag (tolerates unclosed children)
                while self._skip and self._skip.pop() != tag:
                    pass
            return
        if tag in _BLOCK:
            self.out.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.out.append(data)


def html_to_text(html: str) -> str:
    """Visible text of an HTML document: scripts, styles and hidden elements dropped, blocks on
    their own lines, list items as '- ' lines, at most one blank line in a row."""
    parser = _Text()
    parser.feed(html)
    parser.close()
    lines = [re.sub(r"[ \t\r\f\v\u00a0\u200b\u200c\u200d\u034f]+", " ", line).strip()
             for line in "".join(parser.out).split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def _charset(part: dict[str, Any]) -> str:
    match = re.search(r'charset="?([\w.:-]+)', header(part.get("headers"), "Content-Type"), re.I)
    return match.group(1) if match else "utf-8"


def _decode(part: dict[str, Any]) -> str:
    raw = b64url_decode(str(part.get("body", {}).get("data", "")))
    try:
        return raw.decode(_charset(part), "replace")
    except LookupError:  # an unknown charset name
        return raw.decode("utf-8", "replace")


def _parts(payload: dict[str, Any]) -> list[dict[str, Any]]:
    """Every part, depth first."""
    found = [payload]
    for child in payload.get("parts") or []:
        found += _parts(child)
    return found


def body_text(payload: dict[str, Any]) -> str:
    """The message's text: its text/plain part, else its HTML as text; attachments skipped."""
    inline = [p for p in _parts(payload) if not p.get("filename") and p.get("body", {}).get("data")]
    plain = next((p for p in inline if p.get("mimeType") == "text/plain"), None)
    html = next((p for p in inline if p.get("mimeType") == "text/html"), None)
    if plain is not None:
        text = _decode(plain).replace("\r\n", "\n").strip()
    elif html is not None:
        text = html_to_text(_decode(html))
    else:
        text = ""
    return text


_ATTRIBUTION = re.compile(r"^(On .{4,200}wrote:|-{2,} ?Original Message ?-{2,})$", re.I)


def strip_quoted(text: str) -> str:
    """Text without the earlier messages a reply quotes ('> ' lines and their 'On … wrote:' line)."""
    lines = text.split("\n")
    kept: list[str] = []
    cut = False
    for i, line in enumerate(lines):
        stripped = line.strip()
        if stripped.startswith(">"):
            cut = True
            continue
        if _ATTRIBUTION.match(stripped):
            following = next((x.strip() for x in lines[i + 1:] if x.strip()), "")
            if following.startswith(">"):
                cut = True
                continue
        kept.append(line)
    out = re.sub(r"\n{3,}", "\n\n", "\n".join(kept)).strip()
    return out + "\n[quoted earlier messages cut]" if cut else out


def attachment_names(payload: dict[str, Any]) -> list[str]:
    return [str(p["filename"]) for p in _parts(payload) if p.get("filename")]


def cap(text: str, max_chars: int) -> str:
    if len(text) <= max_chars:
        return text
    return text[:max_chars] + f"\n[… cut: {len(text) - max_chars} more characters]"


def build_message(*, to: list[str], cc: list[str], subject: str, body: str, message_id: str | None = None,
                  action: str | None = None, in_reply_to: str | None = None,
                  references: str | None = None) -> EmailMessage:
    """A plain-text message. Header values are single lines: a line break in one is refused."""
    message = EmailMessage()
    try:
        if to:
            message["To"] = ", ".join(to)
        if cc:
            message["Cc"] = ", ".join(cc)
        message["Subject"] = " ".join(subject.split())
        if message_id is not None:
            message["Message-ID"] = message_id
        if action is not None:
            message["X-Maos-Action"] = action
        if in_reply_to:
            message["In-Reply-To"] = in_reply_to
        if references:
            message["References"] = references
    except ValueError as exc:  # header injection attempt, or an address that is not one
        raise GoogleApiError(f"Gmail: the message headers are invalid ({exc})", 400, "invalidArgument") from None
    message.set_content(body)
    return message
