"""The memory API's models: uploads and documents, what memory adds to a request, learnings and
feedback. (The sources a run was given, MemorySource, are part of a run: core.schemas.)"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from core.schemas import MemorySource, Plan, _Model

DocumentKind = Literal["doc", "sop"]
DocumentStatus = Literal["indexing", "ready", "failed"]


class MemoryContext(_Model):
    """What memory adds to one request: the text block and the sources it was built from."""

    text: str = Field(description="Rendered memories, within the token budget ('' when none).")
    sources: list[MemorySource] = Field(default_factory=list, description="The memories used, best first.")
    examples: list[PlanExample] = Field(default_factory=list, description="Past plans shown as examples.")


class PlanExample(_Model):
    run_id: str = Field(description="Run the example comes from.")
    request: str = Field(description="What was asked.")
    plan: Plan = Field(description="The plan that worked (the person's correction, if they made one).")
    corrected: bool = Field(description="Whether a person corrected the plan.")


class DocumentInfo(_Model):
    id: str = Field(description="Document id.")
    title: str = Field(description="Title (first heading, or the file name).")
    filename: str = Field(description="Uploaded file name.")
    kind: DocumentKind = Field(description="doc, or sop (a standard operating procedure).")
    tags: list[str] = Field(default_factory=list, description="Tags given at upload.")
    status: DocumentStatus = Field(description="indexing, ready, or failed (with error).")
    chunks: int = Field(description="Pieces it was cut into.")
    chunks_done: int = Field(description="Pieces embedded and stored so far.")
    bytes: int = Field(description="Size of the uploaded file.")
    error: str | None = Field(None, description="Why indexing failed.")
    created_at: float = Field(description="When uploaded.")


class UploadResult(_Model):
    kind: Literal["upload"] = "upload"
    document: DocumentInfo = Field(description="The document (the existing one for a duplicate).")
    duplicate: bool = Field(description="The same content was already stored; nothing was added.")


class DocumentView(_Model):
    kind: Literal["document_view"] = "document_view"
    document: DocumentInfo = Field(description="The document.")
    content: str = Field(description="Its extracted text.")


class MemoryStats(_Model):
    kind: Literal["memory_stats"] = "memory_stats"
    embedder: str = Field(description="Embedding model.")
    vector_store: str = Field(description="Where vectors live (embedded path or server URL).")
    collections: dict[str, int] = Field(description="Points per collection (this user).")


class Feedback(_Model):
    rating: Literal["up", "down"] | None = Field(None, description="Was the result good?")
    correction: Plan | None = Field(None, description="The plan it should have made (replaces it as the example).")
    comment: str | None = Field(None, max_length=5000, description="Anything else to remember.")


class LearningView(_Model):
    kind: Literal["learning"] = "learning"
    run_id: str = Field(description="Run it was learned from.")
    request: str = Field(description="What was asked.")
    plan: Plan | None = Field(None, description="The plan the run made.")
    outcome: Literal["done", "failed"] = Field(description="How the run ended.")
    errors: list[str] = Field(default_factory=list, description="What went wrong, per failed step.")
    rating: Literal["up", "down"] | None = Field(None, description="The person's rating.")
    correction: Plan | None = Field(None, description="The person's corrected plan.")
    comment: str | None = Field(None, description="The person's comment.")
    usable: bool = Field(description="Used as a few-shot example (done and not rated down, or corrected).")
    created_at: float = Field(description="When the run ended.")
    updated_at: float = Field(description="Last feedback.")
