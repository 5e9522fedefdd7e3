"""What crosses the Store's boundary besides the API's models: the operations tools send (a
discriminated union, batched by the pools) with their answers, and the stored records the Workspace
reads back (sealed actions, credentials, OAuth states).

No SQL crosses: each operation is a domain verb with its arguments. Every tool operation carries the
user it acts for, set by the pool's ``StoreForUser`` (``actors.agents.context``) and never by a tool,
and the storage functions it runs keep to that user's rows.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from core.schemas import Draft, _Model

LeadStatus = Literal["new", "contacted", "qualified", "won", "lost"]
DraftChannel = Literal["email", "calendar", "text", "call"]
StoredDocumentKind = Literal["doc", "sop", "draft"]


# --- what tools read back ------------------------------------------------------------------------


class Lead(_Model):
    id: str = Field(description="Lead id.")
    name: str = Field(description="Full name.")
    email: str | None = Field(None, description="Email address.")
    company: str | None = Field(None, description="Company.")
    phone: str | None = Field(None, description="Phone number.")
    tags: list[str] = Field(default_factory=list, description="Trimmed lower-case tags.")
    status: str = Field(description="new, contacted, qualified, won or lost.")
    score: int | None = Field(None, description="0-100, when scored.")
    notes: str | None = Field(None, description="Dated lines, oldest first.")
    next_follow_up: float | None = Field(None, description="When to follow up next.")
    created_at: float = Field(description="When added.")


class NewLead(_Model):
    id: str = Field(description="Id chosen by the tool.")
    name: str = Field(description="Full name.")
    email: str | None = Field(None, description="Email address.")
    company: str | None = Field(None, description="Company.")
    phone: str | None = Field(None, description="Phone number.")
    tags: list[str] = Field(default_factory=list, description="Normalized tags.")


class StoredDocument(_Model):
    id: str = Field(description="Document id.")
    kind: StoredDocumentKind = Field(description="doc, sop or draft (a sub-agent's writing).")
    title: str = Field(description="Title.")
    content: str = Field(description="The whole text.")
    created_at: float = Field(description="When stored.")


class Saved(_Model):
    """A write made once per idempotency key: the row's id, and whether this call made it."""

    id: str | None = Field(description="The row's id (None: the key is another user's).")
    created: bool = Field(description="False when the key was used before (a retried step).")


# --- what tools ask (every one for ``user_id``) ----------------------------------------------------


class _Op(_Model):
    user_id: str = Field(description="The user the step runs for (set by the pool): only their rows.")


class FindLeads(_Op):
    kind: Literal["find_leads"] = "find_leads"
    tag: str | None = Field(None, description="Exact, normalized tag.")
    text: str | None = Field(None, description="Lower-case text found in name, email, company or notes.")
    status: LeadStatus | None = Field(None, description="Only this status.")
    limit: int = Field(description="Most leads, newest first.")


class SearchLeads(_Op):
    kind: Literal["search_leads"] = "search_leads"
    terms: list[str] = Field(description="Lower-case words; a lead matching more of them ranks first.")
    limit: int = Field(description="Most leads.")


class AddLeads(_Op):
    kind: Literal["add_leads"] = "add_leads"
    leads: list[NewLead] = Field(description="Leads to add; duplicates of stored ones are left out.")
    source: str = Field(description="Where they came from: agent or csv.")


class ExistingLead(_Op):
    kind: Literal["existing_lead"] = "existing_lead"
    name: str = Field(description="Name (compared case-insensitively when there is no email).")
    email: str | None = Field(None, description="Email (any case).")
    company: str | None = Field(None, description="Company.")


class UpdateLead(_Op):
    kind: Literal["update_lead"] = "update_lead"
    lead_id: str = Field(description="The lead.")
    status: LeadStatus | None = Field(None, description="New status.")
    score: int | None = Field(None, description="New score.")
    tags: list[str] | None = Field(None, description="New full list of tags.")
    next_follow_up: float | None = Field(None, description="New follow-up time.")
    note: str | None = Field(None, description="A line appended to the notes.")


class SaveDraft(_Op):
    kind: Literal["save_draft"] = "save_draft"
    task_id: str = Field(description="Step that drafts it.")
    channel: DraftChannel = Field(description="Kind of action.")
    target: str = Field(description="Recipients, attendees or number.")
    subject: str = Field(description="Subject or title.")
    body: str = Field(description="Body, agenda or script.")
    key: str = Field(description="Idempotency key: the same key again returns the first draft.")


class ListDrafts(_Op):
    kind: Literal["list_drafts"] = "list_drafts"
    channel: DraftChannel | None = Field(None, description="Only this kind.")
    limit: int = Field(description="Most drafts, newest first.")


class SearchDocuments(_Op):
    kind: Literal["search_documents"] = "search_documents"
    terms: list[str] = Field(description="Lower-case words to rank by.")
    doc_kind: StoredDocumentKind | None = Field(None, description="Only this kind.")
    limit: int = Field(description="Most documents, best first.")


class ReadDocument(_Op):
    kind: Literal["read_document"] = "read_document"
    document_id: str = Field(description="The document.")


class SaveDocumentDraft(_Op):
    kind: Literal["save_document_draft"] = "save_document_draft"
    task_id: str = Field(description="Step that writes it.")
    title: str = Field(description="Title.")
    content: str = Field(description="Text.")
    key: str = Field(description="Idempotency key: the same key again keeps the first.")


class RecordToolEffect(_Op):
    kind: Literal["record_tool_effect"] = "record_tool_effect"
    task_id: str = Field(description="Step that did it.")
    tool: str = Field(description="Tool name.")
    key: str = Field(description="Idempotency key (once per key).")
    result: dict[str, Any] = Field(description="Ids and counts, never addresses or text.")


class ToolEffects(_Op):
    kind: Literal["tool_effects"] = "tool_effects"
    task_id: str = Field(description="Step.")
    tool: str = Field(description="Tool name.")
    besides: str = Field("", description="A key to leave out.")


class ToolEffect(_Op):
    kind: Literal["tool_effect"] = "tool_effect"
    key: str = Field(description="Idempotency key.")


ToolOp = Annotated[
    FindLeads | SearchLeads | AddLeads | ExistingLead | UpdateLead | SaveDraft | ListDrafts | SearchDocuments
    | ReadDocument | SaveDocumentDraft | RecordToolEffect | ToolEffects | ToolEffect,
    Field(discriminator="kind"),
]
# What each answers: the operations that change rows run in the Store's group commit, the others on its reader.
ToolAnswer = list[Lead] | list[str] | str | Lead | Saved | list[Draft] | list[StoredDocument] | StoredDocument \
    | bool | list[dict[str, Any]] | dict[str, Any] | None
WRITE_OPS: frozenset[str] = frozenset({"add_leads", "update_lead", "save_draft", "save_document_draft",
                                       "record_tool_effect"})


# --- what the Workspace reads back (sealed: it alone holds the key) --------------------------------


class StoredAction(_Model):
    """An ``actions`` row as stored: its arguments sealed (``integrations.actions.seal``)."""

    id: str = Field(description="Action id.")
    user_id: str = Field(description="Whose.")
    run_id: str | None = Field(None, description="Run that proposed it.")
    task_id: str | None = Field(None, description="Step that proposed it.")
    action: str = Field(description="Action type.")
    status: str = Field(description="Stored status (an expired pending one is still 'pending').")
    args_hash: str = Field(description="Hash of the arguments.")
    ciphertext: bytes = Field(description="Sealed arguments.")
    nonce: bytes = Field(description="Their nonce.")
    key_id: str = Field(description="Key they are sealed under.")
    idempotency_key: str = Field(description="Unique: the step, the action and its target.")
    group: str = Field(description="Run and action type.")
    replaces: str | None = Field(None, description="The action this edit superseded.")
    created_at: float = Field(description="Proposed at.")
    expires_at: float = Field(description="Approval deadline.")
    decided_by: str | None = Field(None, description="Who decided ('policy' for a policy).")
    decided_at: float | None = Field(None, description="When.")
    result: str | None = Field(None, description="JSON: the ids of what was done.")
    error: str | None = Field(None, description="Why it failed or was released.")
    attempts: int = Field(0, description="Times it was claimed for execution.")
    staged: str | None = Field(None, description="JSON: what an attempt staged (a mail's draft id).")


class StoredCredential(_Model):
    id: str = Field(description="Row id (bound into the seal).")
    user_id: str = Field(description="Whose.")
    ciphertext: bytes = Field(description="Sealed tokens and account.")
    nonce: bytes = Field(description="Nonce.")
    key_id: str = Field(description="Key.")
    status: str = Field(description="connected or reconnect.")
    reason: str | None = Field(None, description="Why it needs reconnecting.")
    created_at: float = Field(description="Connected at.")


class OAuthState(_Model):
    user_id: str = Field(description="Who started connecting.")
    features: list[str] = Field(description="Features asked for.")
    redirect_uri: str = Field(description="Where Google sends the user back.")
    ciphertext: bytes = Field(description="Sealed PKCE verifier.")
    nonce: bytes = Field(description="Nonce.")
    key_id: str = Field(description="Key.")


SealedTable = Literal["oauth_credentials", "oauth_states"]


class SealedRow(_Model):
    """A sealed row of ``SealedTable`` for key rotation."""

    row_id: str = Field(description="Its key (id or state).")
    user_id: str = Field(description="Whose (bound into the seal).")
    ciphertext: bytes = Field(description="Sealed value.")
    nonce: bytes = Field(description="Nonce.")
    key_id: str = Field(description="Key.")


# --- a run's figures -------------------------------------------------------------------------------


class RunProgress(_Model):
    status: str = Field(description="The run's status.")
    tasks: dict[str, int] = Field(default_factory=dict, description="Its steps by status.")


class RunUsage(_Model):
    llm_calls: int = Field(description="LLM calls made for the run.")
    tokens_in: int = Field(description="Prompt tokens.")
    tokens_out: int = Field(description="Completion tokens.")
    step_runs: dict[str, int] = Field(default_factory=dict,
                                      description="Per step: how many times a sub-agent finished it successfully.")
