"""Gmail (userId "me"): search, read threads, labels, drafts, and sending one message exactly once.

Gmail's API replaces the Message-ID of what it sends, so a sent message cannot be found again by an
id the client chose. Sending is therefore in two steps: ``stage`` makes the message a draft of its
own (the caller records the draft's id), and ``send_staged`` sends that draft. Gmail sends a draft
once and deletes it as it does, so a staged message cannot go out twice; after a crash,
``staged_outcome`` tells whether it went out (the draft is gone and the message is in Sent).
"""

from __future__ import annotations

import html
import re
from email.utils import getaddresses
from typing import Any

from core.errors import GoogleApiError
from integrations.google._mime import (
    attachment_names,
    b64url_encode,
    body_text,
    build_message,
    cap,
    header,
    iso_date,
    strip_quoted,
)
from integrations.google.api import execute

_ME = "me"
_MAX_SEARCH = 50
_MAX_BATCH = 1000
_MESSAGE_ID = re.compile(r"^<[^<>@\s]+@[^<>@\s]+>$")
_REPLY_HEADERS = ["From", "To", "Cc", "Reply-To", "Subject", "Message-ID", "References"]


def profile(svc: Any) -> dict[str, Any]:
    """The account: emailAddress, messagesTotal, threadsTotal."""
    result: dict[str, Any] = execute(svc.users().getProfile(userId=_ME), what="the account profile")
    return result


def search(svc: Any, query: str, limit: int = 20) -> list[dict[str, Any]]:
    """Messages matching a Gmail query ('from:ann is:unread'), newest first, with their headers."""
    limit = max(1, min(limit, _MAX_SEARCH))
    listed = execute(svc.users().messages().list(userId=_ME, q=query, maxResults=limit),
                     what=f"the search '{query}'")
    found: list[dict[str, Any]] = []
    for ref in (listed.get("messages") or [])[:limit]:
        try:
            message = execute(svc.users().messages().get(
                userId=_ME, id=ref["id"], format="metadata", metadataHeaders=["From", "To", "Subject", "Date"]),
                what=f"message '{ref['id']}'")
        except GoogleApiError as exc:
            if exc.status == 404:  # deleted between the list and the get
                continue
            raise
        headers = message.get("payload", {}).get("headers")
        labels = list(message.get("labelIds") or [])
        found.append({
            "id": message["id"], "thread_id": message.get("threadId"), "from": header(headers, "From"),
            "to": header(headers, "To"), "subject": header(headers, "Subject"),
            "date": iso_date(header(headers, "Date"), message.get("internalDate")),
            "snippet": html.unescape(str(message.get("snippet", ""))), "labels": labels, "unread": "UNREAD" in labels,
        })
    return found


def read_thread(svc: Any, thread_id: str, max_chars: int = 4000) -> dict[str, Any]:
    """A thread's messages, oldest first, each body as plain text without quoted replies, capped."""
    thread = execute(svc.users().threads().get(userId=_ME, id=thread_id, format="full"),
                     what=f"thread '{thread_id}'")
    messages: list[dict[str, Any]] = []
    for message in thread.get("messages") or []:
        payload = message.get("payload") or {}
        headers = payload.get("headers")
        item = {
            "id": message.get("id"), "from": header(headers, "From"), "to": header(headers, "To"),
            "cc": header(headers, "Cc"), "date": iso_date(header(headers, "Date"), message.get("internalDate")),
            "subject": header(headers, "Subject"), "body": cap(strip_quoted(body_text(payload)), max_chars),
        }
        attachments = attachment_names(payload)
        if attachments:
            item["attachments"] = attachments
        if "DRAFT" in (message.get("labelIds") or []):
            item["draft"] = True
        messages.append(item)
    subject = next((str(m["subject"]) for m in messages if m["subject"]), "")
    return {"thread_id": thread.get("id", thread_id), "subject": subject, "messages": messages}


def list_labels(svc: Any) -> list[dict[str, Any]]:
    """Every label: {id, name, type ('system' or 'user')}."""
    listed = execute(svc.users().labels().list(userId=_ME), what="the label list")
    return [{"id": lab["id"], "name": lab.get("name", lab["id"]), "type": lab.get("type", "user")}
            for lab in listed.get("labels") or []]


def apply_labels(svc: Any, message_ids: list[str], add: list[str], remove: list[str]) -> dict[str, Any]:
    """Add and remove labels (by name; system labels like UNREAD or STARRED too) on messages.
    A user label in ``add`` that does not exist is created."""
    ids = list(dict.fromkeys(m.strip() for m in message_ids if m.strip()))
    add = list(dict.fromkeys(a.strip() for a in add if a.strip()))
    remove = list(dict.fromkeys(r.strip() for r in remove if r.strip()))
    if not ids:
        raise GoogleApiError("Gmail: no message ids given", 400, "invalidArgument")
    if not add and not remove:
        raise GoogleApiError("Gmail: no labels to add or remove", 400, "invalidArgument")
    known = {key.lower(): lab["id"] for lab in list_labels(svc) for key in (lab["name"], lab["id"])}
    created: list[str] = []
    for name in add:
        if name.lower() not in known:
            label = execute(svc.users().labels().create(userId=_ME, body={
                "name": name, "labelListVisibility": "labelShow", "messageListVisibility": "show"}),
                what=f"label '{name}'")
            known[name.lower()] = label["id"]
            created.append(name)
    unknown = [name for name in remove if name.lower() not in known]
    body = {"addLabelIds": [known[n.lower()] for n in add],
            "removeLabelIds": [known[n.lower()] for n in remove if n.lower() in known]}
    if body["addLabelIds"] or body["removeLabelIds"]:
        for start in range(0, len(ids), _MAX_BATCH):
            execute(svc.users().messages().batchModify(userId=_ME, body={"ids": ids[start:start + _MAX_BATCH], **body}),
                    what=f"the labels of {len(ids)} message(s)")
    result: dict[str, Any] = {"messages": len(ids), "added": add,
                              "removed": [n for n in remove if n not in unknown], "created": created}
    if unknown:
        result["unknown_labels"] = unknown
    return result


def reply_headers(svc: Any, thread_id: str) -> dict[str, Any]:
    """How a reply to the thread's last message is addressed: {to, subject, in_reply_to, references},
    and where ``to`` came from: ``sender`` (its From address), ``reply_to`` (its Reply-To addresses)
    and ``to_source`` ('reply_to', 'from', or 'to' when the last message is the account's own)."""
    thread = execute(svc.users().threads().get(userId=_ME, id=thread_id, format="metadata",
                                               metadataHeaders=_REPLY_HEADERS), what=f"thread '{thread_id}'")
    messages = [m for m in thread.get("messages") or [] if "DRAFT" not in (m.get("labelIds") or [])]
    if not messages:
        raise GoogleApiError(f"Gmail: thread '{thread_id}' has no message to reply to", 404, "notFound")
    headers = messages[-1].get("payload", {}).get("headers")
    own = str(profile(svc).get("emailAddress", "")).lower()
    reply_to = _addresses(header(headers, "Reply-To"), "")
    senders = _addresses(header(headers, "From"), "")
    source = "reply_to" if header(headers, "Reply-To") else "from"
    to = _addresses(header(headers, "Reply-To") or header(headers, "From"), own)
    if not to:  # the last message is the account's own: reply to the people it was sent to
        to, source = _addresses(header(headers, "To"), own), "to"
    subject = header(headers, "Subject").strip()
    if not re.match(r"^re\s*:", subject, re.I):
        subject = f"Re: {subject}" if subject else "Re:"
    message_id = header(headers, "Message-ID").strip()
    references = " ".join(part for part in (header(headers, "References").strip(), message_id) if part)
    return {"to": to, "subject": subject, "in_reply_to": message_id or None, "references": references or None,
            "sender": senders[0] if senders else None, "reply_to": reply_to, "to_source": source}


def _addresses(value: str, own: str) -> list[str]:
    found = [addr for _, addr in getaddresses([value]) if "@" in addr]
    return list(dict.fromkeys(a for a in found if a.lower() != own))


def create_draft(svc: Any, to: list[str], subject: str, body: str, thread_id: str | None = None) -> dict[str, Any]:
    """A draft in the user's Gmail (nothing is sent). With ``thread_id`` it is a reply in that
    thread: empty ``to``/``subject`` are taken from the thread."""
    in_reply_to = references = None
    if thread_id is not None:
        reply = reply_headers(svc, thread_id)
        to = to if to else reply["to"]
        subject = subject if subject.strip() else reply["subject"]
        in_reply_to, references = reply["in_reply_to"], reply["references"]
    message = build_message(to=to, cc=[], subject=subject, body=body, in_reply_to=in_reply_to, references=references)
    draft_message: dict[str, Any] = {"raw": b64url_encode(message.as_bytes())}
    if thread_id is not None:
        draft_message["threadId"] = thread_id
    draft = execute(svc.users().drafts().create(userId=_ME, body={"message": draft_message}), what="the draft")
    return {"draft_id": draft["id"], "message_id": draft.get("message", {}).get("id"),
            "thread_id": draft.get("message", {}).get("threadId", thread_id)}


def stage(svc: Any, *, to: list[str], cc: list[str], subject: str, body: str, message_id: str,
          thread_id: str | None = None, in_reply_to: str | None = None, references: str | None = None) -> dict[str, Any]:
    """The message as a draft of its own, not sent: {draft_id, message_id, thread_id}. ``message_id``
    ('<action@host>') also names the action in ``X-Maos-Action``."""
    if not _MESSAGE_ID.match(message_id):
        raise GoogleApiError(f"Gmail: Message-ID '{message_id}' is not of the form <id@host>", 400, "invalidArgument")
    if not to and not cc:
        raise GoogleApiError("Gmail: the message has no recipients", 400, "invalidArgument")
    message = build_message(to=to, cc=cc, subject=subject, body=body, message_id=message_id,
                            action=message_id[1:].split("@", 1)[0], in_reply_to=in_reply_to, references=references)
    draft_message: dict[str, Any] = {"raw": b64url_encode(message.as_bytes())}
    if thread_id is not None:
        draft_message["threadId"] = thread_id
    draft = execute(svc.users().drafts().create(userId=_ME, body={"message": draft_message}), what="the message")
    return {"draft_id": draft["id"], "message_id": draft.get("message", {}).get("id"),
            "thread_id": draft.get("message", {}).get("threadId", thread_id)}


def send_staged(svc: Any, draft_id: str) -> dict[str, Any]:
    """Send a staged message: {id, thread_id} of what was sent. A failure with reason
    'unknown_outcome' may have sent it: ask ``staged_outcome`` before trying again."""
    sent = execute(svc.users().drafts().send(userId=_ME, body={"id": draft_id}), what="the message")
    return {"id": sent["id"], "thread_id": sent.get("threadId")}


def staged_outcome(svc: Any, staged: dict[str, Any]) -> dict[str, Any] | None:
    """None while the staged draft is there, unsent; {id, thread_id} of the sent message once it
    went out. Raises when the draft is gone and nothing was sent (a person deleted it?)."""
    try:
        execute(svc.users().drafts().get(userId=_ME, id=staged["draft_id"], format="minimal"), what="the staged draft")
        return None
    except GoogleApiError as exc:
        if exc.status != 404:
            raise
    message_id = staged.get("message_id")
    if message_id:
        try:
            found = execute(svc.users().messages().get(userId=_ME, id=message_id, format="minimal"),
                            what="the sent message")
        except GoogleApiError as exc:
            if exc.status != 404:
                raise
        else:
            if "SENT" in (found.get("labelIds") or []):
                return {"id": found["id"], "thread_id": found.get("threadId")}
    raise GoogleApiError("Gmail: the staged draft is gone and no sent message was found (was the draft deleted?)",
                         404, "notFound")
