"""RFC 822 messages for the fake Gmail: building seeds, parsing sent mail, Gmail's payload format."""

from __future__ import annotations

import email
import email.policy
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from email.message import EmailMessage, Message
from email.utils import format_datetime, getaddresses, make_msgid

from maos_testing.google._fake_wire import Json, b64url, strip_tags

MSGID_DOMAIN = "mail.fake.example.test"


def build_message(*, sender: str, to: Iterable[str], subject: str, body: str, date: float,
                  html: bool, headers: dict[str, str]) -> bytes:
    """RFC 822 bytes for a seeded message; ``headers`` override the generated ones."""
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = ", ".join(to)
    msg["Subject"] = subject
    msg["Date"] = format_datetime(datetime.fromtimestamp(date, UTC))
    msg["Message-ID"] = make_msgid(domain=MSGID_DOMAIN)
    for name, value in headers.items():
        del msg[name]
        msg[name] = value
    if html:
        msg.set_content(strip_tags(body))
        msg.add_alternative(body, subtype="html")
    else:
        msg.set_content(body)
    return msg.as_bytes()


def parse(raw: bytes) -> EmailMessage:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def complete(raw: bytes, account_email: str, now: float) -> bytes:
    """Fill in what Gmail adds to outgoing mail that lacks it: From, Date, Message-ID."""
    msg = parse(raw)
    missing = {"From": account_email, "Date": format_datetime(datetime.fromtimestamp(now, UTC)),
               "Message-ID": make_msgid(domain=MSGID_DOMAIN)}
    added = False
    for name, value in missing.items():
        if msg[name] is None:
            msg[name] = value
            added = True
    return msg.as_bytes() if added else raw


def restamp(raw: bytes) -> bytes:
    """What Gmail's API does to a message it sends: a Message-ID of its own, whatever the client set."""
    msg = parse(raw)
    del msg["Message-ID"]
    msg["Message-ID"] = make_msgid(domain=MSGID_DOMAIN)
    return msg.as_bytes()


def header(msg: Message, name: str) -> str:
    value = msg.get(name)
    return "" if value is None else str(value)


def addresses(msg: Message, *names: str) -> list[str]:
    values = [str(v) for name in names for v in (msg.get_all(name) or [])]
    return [address for _, address in getaddresses(values) if address]


def strip_angle(message_id: str) -> str:
    return message_id.strip().strip("<>").strip()


def text_body(msg: Message) -> str:
    """The text/plain part (first one), else the text/html part with its tags removed."""
    html_text = None
    for part in msg.walk():
        if part.is_multipart() or part.get_content_disposition() == "attachment":
            continue
        kind = part.get_content_type()
        if kind == "text/plain":
            return _decoded(part)
        if kind == "text/html" and html_text is None:
            html_text = strip_tags(_decoded(part))
    return html_text or ""


def _decoded(part: Message) -> str:
    data = part.get_payload(decode=True)
    if not isinstance(data, bytes):
        return ""
    return data.decode(part.get_content_charset() or "utf-8", "replace")


def snippet(msg: Message) -> str:
    return re.sub(r"\s+", " ", text_body(msg)).strip()[:200]


def payload(part: Message, part_id: str = "", header_filter: set[str] | None = None,
            with_body: bool = True) -> Json:
    """Gmail's ``MessagePart`` for ``part``: headers, mimeType, base64url body data, nested parts."""
    headers = [{"name": name, "value": str(value)} for name, value in part.items()
               if header_filter is None or name.lower() in header_filter]
    out: Json = {"partId": part_id, "mimeType": part.get_content_type(), "filename": part.get_filename() or "",
                 "headers": headers}
    if not with_body:
        return out
    if part.is_multipart():
        children = part.get_payload()
        assert isinstance(children, list)
        out["body"] = {"size": 0}
        out["parts"] = [payload(child, f"{part_id}.{i}" if part_id else str(i)) for i, child in enumerate(children)]
    else:
        data = part.get_payload(decode=True)
        data = data if isinstance(data, bytes) else b""
        out["body"] = {"size": len(data), "data": b64url(data)} if data else {"size": 0}
    return out
