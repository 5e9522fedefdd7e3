"""The fake Gmail: one mailbox ("me"), messages stored as RFC 822 bytes, labels, threads, drafts."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from email.message import EmailMessage

from maos_testing.google import _fake_mime as mime
from maos_testing.google._fake_gmail_query import Searchable, compile_query
from maos_testing.google._fake_wire import ApiError, ApiRequest, Json, Reply, b64url, unb64url

Handler = Callable[[ApiRequest], Reply]
SYSTEM_LABELS = ("INBOX", "SENT", "UNREAD", "STARRED", "IMPORTANT", "DRAFT", "SPAM", "TRASH")
_FORMATS = ("full", "metadata", "minimal", "raw")


@dataclass
class StoredMessage:
    id: str
    thread_id: str
    raw: bytes
    labels: list[str]
    internal_ms: int
    history_id: int
    msg: EmailMessage = field(init=False)

    def __post_init__(self) -> None:
        self.msg = mime.parse(self.raw)

    def searchable(self) -> Searchable:
        return Searchable(mime.header(self.msg, "Subject"), mime.text_body(self.msg), mime.header(self.msg, "From"),
                          mime.header(self.msg, "To") + "\n" + mime.header(self.msg, "Cc"),
                          mime.header(self.msg, "Cc"), mime.strip_angle(mime.header(self.msg, "Message-ID")),
                          frozenset(self.labels), self.internal_ms / 1000)


class GmailState:
    def __init__(self, account_email: str) -> None:
        self.account_email = account_email
        self.messages: dict[str, StoredMessage] = {}
        self.user_labels: dict[str, Json] = {}
        self.drafts: dict[str, str] = {}  # draft id -> message id
        self.sent_ids: list[str] = []
        self._counter = 0
        self._history = 1000

    def _new_id(self) -> str:
        self._counter += 1
        return f"{self._counter:08x}{secrets.token_hex(4)}"

    def _bump(self) -> int:
        self._history += 1
        return self._history

    # seeding and observation

    def add(self, raw: bytes, labels: Iterable[str], date: float, thread_id: str | None = None) -> StoredMessage:
        label_ids = [self._label_for_seed(name) for name in labels]
        return self._store(raw, label_ids, date, thread_id)

    def _store(self, raw: bytes, label_ids: list[str], date: float, thread_id: str | None) -> StoredMessage:
        message_id = self._new_id()
        stored = StoredMessage(message_id, thread_id or message_id, raw, label_ids, int(date * 1000), self._bump())
        self.messages[message_id] = stored
        return stored

    def _label_for_seed(self, name: str) -> str:
        found = self.label_id(name)
        return found if found is not None else self._create_label(name)["id"]

    def sent(self) -> list[Json]:
        out = []
        for message_id in self.sent_ids:
            stored = self.messages[message_id]
            msg = stored.msg
            out.append({"id": stored.id, "threadId": stored.thread_id, "to": mime.addresses(msg, "To"),
                        "cc": mime.addresses(msg, "Cc"), "subject": mime.header(msg, "Subject"),
                        "body": mime.text_body(msg), "headers": {k: str(v) for k, v in msg.items()}})
        return out

    # labels

    def label_id(self, name_or_id: str) -> str | None:
        wanted = name_or_id.lower()
        if name_or_id.upper() in SYSTEM_LABELS:
            return name_or_id.upper()
        for label in self.user_labels.values():
            name = label["name"].lower()
            if wanted in (label["id"].lower(), name, name.replace(" ", "-"), name.replace("/", "-")):
                return str(label["id"])
        return None

    def _create_label(self, name: str) -> Json:
        if self.label_id(name) is not None or name.upper() in SYSTEM_LABELS:
            raise ApiError(409, "Label name exists or conflicts", "duplicate")
        label = {"id": f"Label_{len(self.user_labels) + 1}", "name": name, "type": "user",
                 "messageListVisibility": "show", "labelListVisibility": "labelShow"}
        self.user_labels[label["id"]] = label
        return label

    def _checked_labels(self, ids: list[str]) -> list[str]:
        for label in ids:
            if label not in SYSTEM_LABELS and label not in self.user_labels:
                raise ApiError(400, f"Invalid label: {label}", "invalidArgument")
        return ids

    # handlers

    def handlers(self) -> dict[str, Handler]:
        prefix = "gmail.users."
        table: dict[str, Handler] = {
            "getProfile": self.get_profile, "messages.list": self.list_messages, "messages.get": self.get_message,
            "messages.send": self.send, "messages.modify": self.modify, "messages.batchModify": self.batch_modify,
            "threads.get": self.get_thread, "threads.list": self.list_threads, "labels.list": self.list_labels,
            "labels.create": self.create_label, "drafts.create": self.create_draft, "drafts.list": self.list_drafts,
            "drafts.get": self.get_draft, "drafts.send": self.send_draft, "drafts.delete": self.delete_draft,
        }
        return {prefix + name: self._as_user(handler) for name, handler in table.items()}

    def _as_user(self, handler: Handler) -> Handler:
        def checked(req: ApiRequest) -> Reply:
            user = req.path_params.get("userId", "me")
            if user not in ("me", self.account_email):
                raise ApiError(403, f"Delegation denied for {user}", "forbidden")
            return handler(req)
        return checked

    def _message(self, message_id: str) -> StoredMessage:
        stored = self.messages.get(message_id)
        if stored is None:
            raise ApiError(404, "Requested entity was not found.", "notFound")
        return stored

    def _render(self, stored: StoredMessage, fmt: str, metadata_headers: list[str] | None = None) -> Json:
        if fmt not in _FORMATS:
            raise ApiError(400, f"Invalid format: {fmt}", "invalidArgument", "format")
        out: Json = {"id": stored.id, "threadId": stored.thread_id, "labelIds": list(stored.labels),
                     "snippet": mime.snippet(stored.msg), "sizeEstimate": len(stored.raw),
                     "historyId": str(stored.history_id), "internalDate": str(stored.internal_ms)}
        if fmt == "raw":
            out["raw"] = b64url(stored.raw)
        elif fmt == "metadata":
            wanted = {name.lower() for name in metadata_headers} if metadata_headers else None
            out["payload"] = mime.payload(stored.msg, header_filter=wanted, with_body=False)
        elif fmt == "full":
            out["payload"] = mime.payload(stored.msg)
        return out

    def _matching(self, req: ApiRequest) -> list[StoredMessage]:
        predicate = compile_query(req.arg("q", "") or "", self.label_id, req.flag("includeSpamTrash"))
        wanted = set(req.args("labelIds"))
        found = [m for m in self.messages.values() if wanted <= set(m.labels) and predicate(m.searchable())]
        return sorted(found, key=lambda m: (m.internal_ms, m.history_id), reverse=True)

    @staticmethod
    def _page(req: ApiRequest, items: list[Json], key: str) -> Json:
        start = int(req.arg("pageToken") or 0)
        size = req.int_arg("maxResults", 100, 500)
        out: Json = {key: items[start:start + size]} if items[start:start + size] else {}
        if start + size < len(items):
            out["nextPageToken"] = str(start + size)
        out["resultSizeEstimate"] = len(items)
        return out

    def get_profile(self, req: ApiRequest) -> Reply:
        threads = {m.thread_id for m in self.messages.values()}
        return Reply(json={"emailAddress": self.account_email, "messagesTotal": len(self.messages),
                           "threadsTotal": len(threads), "historyId": str(self._history)})

    def list_messages(self, req: ApiRequest) -> Reply:
        items = [{"id": m.id, "threadId": m.thread_id} for m in self._matching(req)]
        return Reply(json=self._page(req, items, "messages"))

    def get_message(self, req: ApiRequest) -> Reply:
        stored = self._message(req.path_params["id"])
        return Reply(json=self._render(stored, req.arg("format", "full") or "full", req.args("metadataHeaders")))

    def _raw_from(self, req: ApiRequest, nested: bool) -> tuple[bytes, str | None]:
        meta, media, _ = req.upload_parts()
        source = meta.get("message", {}) if nested else meta
        if media is not None:
            return media, source.get("threadId")
        if not isinstance(source.get("raw"), str):
            raise ApiError(400, "'raw' RFC822 payload message string or uploading message via /upload/* "
                                "URL required", "invalidArgument")
        return unb64url(source["raw"]), source.get("threadId")

    def _thread_for(self, msg: EmailMessage, thread_id: str | None) -> str | None:
        if thread_id:
            if not any(m.thread_id == thread_id for m in self.messages.values()):
                raise ApiError(404, "Requested entity was not found.", "notFound")
            return thread_id
        for ref in (mime.header(msg, "In-Reply-To") + " " + mime.header(msg, "References")).split():
            for m in self.messages.values():
                if mime.strip_angle(mime.header(m.msg, "Message-ID")) == mime.strip_angle(ref):
                    return m.thread_id
        return None

    def _deliver(self, stored: StoredMessage) -> Json:
        if not mime.addresses(stored.msg, "To", "Cc", "Bcc"):
            raise ApiError(400, "Invalid To header", "invalidArgument")
        stored.raw = mime.restamp(stored.raw)  # as Gmail does: a client's Message-ID cannot find it again
        stored.msg = mime.parse(stored.raw)
        stored.labels = [label for label in stored.labels if label != "DRAFT"] + ["SENT"]
        stored.history_id = self._bump()
        self.sent_ids.append(stored.id)
        return {"id": stored.id, "threadId": stored.thread_id, "labelIds": list(stored.labels)}

    def send(self, req: ApiRequest) -> Reply:
        raw, thread_id = self._raw_from(req, nested=False)
        now = time.time()
        raw = mime.complete(raw, self.account_email, now)
        thread = self._thread_for(mime.parse(raw), thread_id)
        if not mime.addresses(mime.parse(raw), "To", "Cc", "Bcc"):
            raise ApiError(400, "Invalid To header", "invalidArgument")
        return Reply(json=self._deliver(self._store(raw, [], now, thread)))

    def modify(self, req: ApiRequest) -> Reply:
        stored = self._message(req.path_params["id"])
        self._relabel([stored], req.json())
        return Reply(json={"id": stored.id, "threadId": stored.thread_id, "labelIds": list(stored.labels)})

    def batch_modify(self, req: ApiRequest) -> Reply:
        body = req.json()
        self._relabel([self.messages[i] for i in body.get("ids", []) if i in self.messages], body)
        return Reply(204)

    def _relabel(self, targets: list[StoredMessage], body: Json) -> None:
        add = self._checked_labels(list(body.get("addLabelIds", [])))
        remove = set(self._checked_labels(list(body.get("removeLabelIds", []))))
        for stored in targets:
            stored.labels = [label for label in stored.labels if label not in remove]
            stored.labels += [label for label in add if label not in stored.labels]
            stored.history_id = self._bump()

    def get_thread(self, req: ApiRequest) -> Reply:
        members = sorted((m for m in self.messages.values() if m.thread_id == req.path_params["id"]),
                         key=lambda m: (m.internal_ms, m.history_id))
        if not members:
            raise ApiError(404, "Requested entity was not found.", "notFound")
        fmt = req.arg("format", "full") or "full"
        return Reply(json={"id": req.path_params["id"], "historyId": str(max(m.history_id for m in members)),
                           "messages": [self._render(m, fmt, req.args("metadataHeaders")) for m in members]})

    def list_threads(self, req: ApiRequest) -> Reply:
        seen: dict[str, Json] = {}
        for m in self._matching(req):
            seen.setdefault(m.thread_id, {"id": m.thread_id, "snippet": mime.snippet(m.msg),
                                          "historyId": str(m.history_id)})
        return Reply(json=self._page(req, list(seen.values()), "threads"))

    def list_labels(self, req: ApiRequest) -> Reply:
        system = [{"id": name, "name": name, "type": "system"} for name in SYSTEM_LABELS]
        return Reply(json={"labels": system + [dict(label) for label in self.user_labels.values()]})

    def create_label(self, req: ApiRequest) -> Reply:
        name = str(req.json().get("name") or "").strip()
        if not name:
            raise ApiError(400, "Invalid label name", "invalidArgument")
        return Reply(json=dict(self._create_label(name)))

    def create_draft(self, req: ApiRequest) -> Reply:
        raw, thread_id = self._raw_from(req, nested=True)
        now = time.time()
        raw = mime.complete(raw, self.account_email, now)
        stored = self._store(raw, ["DRAFT"], now, self._thread_for(mime.parse(raw), thread_id))
        draft_id = "r" + str(self._counter).rjust(8, "0") + secrets.token_hex(3)
        self.drafts[draft_id] = stored.id
        return Reply(json={"id": draft_id, "message": {"id": stored.id, "threadId": stored.thread_id,
                                                       "labelIds": ["DRAFT"]}})

    def list_drafts(self, req: ApiRequest) -> Reply:
        items = [{"id": d, "message": {"id": m, "threadId": self.messages[m].thread_id}}
                 for d, m in reversed(list(self.drafts.items()))]
        return Reply(json=self._page(req, items, "drafts"))

    def _draft(self, draft_id: str) -> StoredMessage:
        if draft_id not in self.drafts:
            raise ApiError(404, "Requested entity was not found.", "notFound")
        return self.messages[self.drafts[draft_id]]

    def get_draft(self, req: ApiRequest) -> Reply:
        stored = self._draft(req.path_params["id"])
        return Reply(json={"id": req.path_params["id"], "message": self._render(stored, req.arg("format", "full") or "full")})

    def delete_draft(self, req: ApiRequest) -> Reply:
        stored = self._draft(req.path_params["id"])
        del self.drafts[req.path_params["id"]], self.messages[stored.id]
        return Reply(status=204)

    def send_draft(self, req: ApiRequest) -> Reply:
        body = req.json()
        stored = self._draft(str(body.get("id", "")))
        if isinstance(body.get("message", {}).get("raw"), str):
            raw = mime.complete(unb64url(body["message"]["raw"]), self.account_email, time.time())
            stored.raw, stored.msg = raw, mime.parse(raw)
        answer = self._deliver(stored)
        del self.drafts[str(body["id"])]
        return Reply(json=answer)
