"""What a tool receives: explicit dependencies, never globals."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol, cast

from core.action_schemas import ActionType, ActionView
from core.memory_schemas import DocumentKind, UploadResult
from core.schemas import Draft, MemoryCollection, MemorySource
from core.storage_schemas import (
    AddLeads,
    DraftChannel,
    ExistingLead,
    FindLeads,
    Lead,
    LeadStatus,
    ListDrafts,
    NewLead,
    ReadDocument,
    RecordToolEffect,
    Saved,
    SaveDocumentDraft,
    SaveDraft,
    SearchDocuments,
    SearchLeads,
    StoredDocument,
    StoredDocumentKind,
    ToolEffect,
    ToolEffects,
    ToolOp,
    UpdateLead,
)


class ToolStore(Protocol):
    """The Store as a step's tools see it: the step's user's rows only (there is no user to pass).
    Writes are group-committed: an awaited write is committed."""

    async def find_leads(self, *, tag: str | None, text: str | None, status: LeadStatus | None,
                         limit: int) -> list[Lead]: ...

    async def search_leads(self, terms: list[str], limit: int) -> list[Lead]: ...

    async def add_leads(self, leads: list[NewLead], source: str) -> list[str]: ...

    async def existing_lead(self, name: str, email: str | None, company: str | None) -> str | None: ...

    async def update_lead(self, lead_id: str, *, status: LeadStatus | None = None, score: int | None = None,
                          tags: list[str] | None = None, next_follow_up: float | None = None,
                          note: str | None = None) -> Lead | None: ...

    async def save_draft(self, task_id: str, channel: DraftChannel, target: str, subject: str, body: str,
                         key: str) -> Saved: ...

    async def list_drafts(self, channel: DraftChannel | None, limit: int) -> list[Draft]: ...

    async def search_documents(self, terms: list[str], kind: StoredDocumentKind | None,
                               limit: int) -> list[StoredDocument]: ...

    async def read_document(self, document_id: str) -> StoredDocument | None: ...

    async def save_document_draft(self, task_id: str, title: str, content: str, key: str) -> Saved: ...

    async def record_tool_effect(self, task_id: str, tool: str, key: str, result: dict[str, Any]) -> bool: ...

    async def tool_effects(self, task_id: str, tool: str, besides: str = "") -> list[dict[str, Any]]: ...

    async def tool_effect(self, key: str) -> dict[str, Any] | None: ...


class StoreForUser:
    """The ToolStore of one step: each operation goes to ``send`` (the Store, a moment's operations in
    one call) with the step's user in it. The one place a tool's user is set: the storage functions
    that answer keep to that user's rows."""

    def __init__(self, user_id: str, send: Callable[[ToolOp], Awaitable[Any]]) -> None:
        self.user_id = user_id
        self._send = send

    async def find_leads(self, *, tag: str | None, text: str | None, status: LeadStatus | None,
                         limit: int) -> list[Lead]:
        op = FindLeads(user_id=self.user_id, tag=tag, text=text, status=status, limit=limit)
        return cast(list[Lead], await self._send(op))

    async def search_leads(self, terms: list[str], limit: int) -> list[Lead]:
        return cast(list[Lead], await self._send(SearchLeads(user_id=self.user_id, terms=terms, limit=limit)))

    async def add_leads(self, leads: list[NewLead], source: str) -> list[str]:
        return cast(list[str], await self._send(AddLeads(user_id=self.user_id, leads=leads, source=source)))

    async def existing_lead(self, name: str, email: str | None, company: str | None) -> str | None:
        op = ExistingLead(user_id=self.user_id, name=name, email=email, company=company)
        return cast(str | None, await self._send(op))

    async def update_lead(self, lead_id: str, *, status: LeadStatus | None = None, score: int | None = None,
                          tags: list[str] | None = None, next_follow_up: float | None = None,
                          note: str | None = None) -> Lead | None:
        op = UpdateLead(user_id=self.user_id, lead_id=lead_id, status=status, score=score, tags=tags,
                        next_follow_up=next_follow_up, note=note)
        return cast(Lead | None, await self._send(op))

    async def save_draft(self, task_id: str, channel: DraftChannel, target: str, subject: str, body: str,
                         key: str) -> Saved:
        op = SaveDraft(user_id=self.user_id, task_id=task_id, channel=channel, target=target, subject=subject,
                       body=body, key=key)
        return cast(Saved, await self._send(op))

    async def list_drafts(self, channel: DraftChannel | None, limit: int) -> list[Draft]:
        return cast(list[Draft], await self._send(ListDrafts(user_id=self.user_id, channel=channel, limit=limit)))

    async def search_documents(self, terms: list[str], kind: StoredDocumentKind | None,
                               limit: int) -> list[StoredDocument]:
        op = SearchDocuments(user_id=self.user_id, terms=terms, doc_kind=kind, limit=limit)
        return cast(list[StoredDocument], await self._send(op))

    async def read_document(self, document_id: str) -> StoredDocument | None:
        return cast(StoredDocument | None, await self._send(ReadDocument(user_id=self.user_id,
                                                                         document_id=document_id)))

    async def save_document_draft(self, task_id: str, title: str, content: str, key: str) -> Saved:
        op = SaveDocumentDraft(user_id=self.user_id, task_id=task_id, title=title, content=content, key=key)
        return cast(Saved, await self._send(op))

    async def record_tool_effect(self, task_id: str, tool: str, key: str, result: dict[str, Any]) -> bool:
        op = RecordToolEffect(user_id=self.user_id, task_id=task_id, tool=tool, key=key, result=result)
        return cast(bool, await self._send(op))

    async def tool_effects(self, task_id: str, tool: str, besides: str = "") -> list[dict[str, Any]]:
        op = ToolEffects(user_id=self.user_id, task_id=task_id, tool=tool, besides=besides)
        return cast(list[dict[str, Any]], await self._send(op))

    async def tool_effect(self, key: str) -> dict[str, Any] | None:
        return cast(dict[str, Any] | None, await self._send(ToolEffect(user_id=self.user_id, key=key)))


class ToolMemory(Protocol):
    """Semantic search over the user's memory (the Memory actor), as tools see it."""

    async def search(self, user_id: str, query: str, collections: list[MemoryCollection],
                     limit: int) -> list[MemorySource]: ...

    async def ingest(self, user_id: str, filename: str, data: bytes, kind: DocumentKind,
                     tags: list[str]) -> UploadResult: ...


class ToolWorkspace(Protocol):
    """Google and the gated actions (the Workspace actor), as tools see it.

    ``google`` runs one read or draft operation of ``integrations.google.ops.OPS`` ("gmail.search",
    ...) for the user and returns plain JSON data. It raises ToolError for what the model can fix
    (Google's 404s, permissions, bad arguments), and IntegrationUnavailable when the user must
    reconnect (the step then waits). ``propose`` records an action that leaves the machine; it runs
    only under the user's policy or a person's approval, never because a tool said so.
    """

    async def google(self, user_id: str, op: str, args: dict[str, Any]) -> Any: ...

    async def propose(self, user_id: str, run_id: str | None, task_id: str | None, idempotency_key: str,
                      action: ActionType, arguments: dict[str, Any]) -> ActionView: ...


@dataclass(frozen=True)
class ToolContext:
    """Per-call context handed to every tool as its first argument."""

    store: ToolStore
    user_id: str
    run_id: str
    task_id: str
    idempotency_key: str
    memory: ToolMemory | None = None
    workspace: ToolWorkspace | None = None
