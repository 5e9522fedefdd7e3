"""Memory routes: upload, list, read and delete documents; search memory; feedback on runs — each on the
caller's own documents, memory and runs (another person's is a 404, as an unknown id is)."""

from __future__ import annotations

from fastapi import APIRouter, Query, Request, Response

from actors.agents import names as agent_names
from core.errors import Conflict, NotFound
from core.memory_schemas import (
    DocumentInfo,
    DocumentKind,
    DocumentView,
    Feedback,
    LearningView,
    MemoryStats,
    UploadResult,
)
from core.plan import validate_plan
from core.schemas import MemoryCollection, MemorySource, RunView
from serve_app import audit
from serve_app.access import RuntimeAccess
from serve_app.callers import Member
from serve_app.uploads import MB, openapi_body, read_upload
from serve_app.user_limits import limited


def build_memory_routes(rt: RuntimeAccess) -> APIRouter:
    r = APIRouter(prefix="/api")

    # --- documents -------------------------------------------------------------------------

    @r.post("/documents", status_code=202, response_model=UploadResult, tags=["memory"],
            openapi_extra=openapi_body("txt, md, pdf, docx, csv or html."),
            responses={200: {"model": UploadResult, "description": "The same content was already stored."},
                       413: {"description": "The file is larger than max_upload_mb (refused as it streams in)."},
                       422: {"description": "The file cannot be read, is empty, is not supported, or unpacks "
                                            "to more than the limits allow."},
                       429: {"description": "Too many uploads from this person; Retry-After says when."}},
            dependencies=limited("uploads"))
    async def upload(request: Request, response: Response, who: Member) -> UploadResult:
        """Store a file in memory: it is checked and cut up now, embedded in the background (poll the document)."""
        got = await read_upload(request, int(rt.live.settings.max_upload_mb * MB))
        tags = [t for t in got.form.tags.split(",") if t.strip()]
        result = await rt.memory.ingest(user_id=who.user_id, filename=got.filename, data=got.data,
                                        kind=got.form.kind, tags=tags)
        if result.duplicate:
            response.status_code = 200
        return result

    @r.get("/documents", response_model=list[DocumentInfo], tags=["memory"])
    async def list_documents(who: Member, kind: DocumentKind | None = None, q: str | None = Query(None, max_length=200),
                             limit: int = Query(200, ge=1, le=5000)) -> list[DocumentInfo]:
        return await rt.store.list_documents(user_id=who.user_id, kind=kind, q=q, limit=limit)

    @r.get("/documents/{document_id}", response_model=DocumentView, tags=["memory"])
    async def get_document(document_id: str, who: Member) -> DocumentView:
        found = await rt.store.get_document(user_id=who.user_id, doc_id=document_id)
        if found is None:
            raise NotFound(f"no document '{document_id}'")
        return found

    @r.delete("/documents/{document_id}", status_code=204, tags=["memory"])
    async def delete_document(document_id: str, who: Member) -> Response:
        """Delete a document; its vectors and memory entries go with it (audited: ``document.deleted``)."""
        found = await rt.store.get_document(user_id=who.user_id, doc_id=document_id)
        if found is None:
            raise NotFound(f"no document '{document_id}'")
        await rt.memory.delete_document(user_id=who.user_id, doc_id=document_id)
        await audit.record(rt.store, "document.deleted", who.user_id, who.user_id, subject_id=document_id,
                           kind=found.document.kind, chunks=found.document.chunks)
        return Response(status_code=204)

    # --- search ----------------------------------------------------------------------------

    @r.get("/memory/search", response_model=list[MemorySource], tags=["memory"])
    async def search(who: Member, q: str = Query(min_length=1, max_length=2000), collection: MemoryCollection | None = None,
                     limit: int = Query(5, ge=1, le=50)) -> list[MemorySource]:
        """What memory returns for a query (the same retrieval the agents get)."""
        return await rt.memory.search(user_id=who.user_id, query=q,
                                      collections=[collection] if collection else None, limit=limit)

    @r.get("/memory/stats", response_model=MemoryStats, tags=["memory"])
    async def stats(who: Member) -> MemoryStats:
        return await rt.memory.stats(who.user_id)

    # --- learning --------------------------------------------------------------------------

    async def ended_run(run_id: str, user_id: str) -> RunView:
        view: RunView | None = await rt.store.get_run(run_id=run_id, user_id=user_id)
        if view is None:
            raise NotFound(f"no run '{run_id}'")
        if view.run.status not in ("done", "failed"):
            raise Conflict(f"run '{run_id}' is {view.run.status}; feedback is for runs that have ended")
        return view

    @r.post("/runs/{run_id}/feedback", response_model=LearningView, tags=["runs"])
    async def feedback(run_id: str, body: Feedback, who: Member) -> LearningView:
        """Rate a run and, optionally, correct its plan: the correction becomes the example for similar requests."""
        await ended_run(run_id, who.user_id)
        if body.correction is not None:
            validate_plan(body.correction, agent_names(), rt.live.settings.budget)  # 422 naming what is wrong
        return await rt.memory.feedback(run_id=run_id, feedback=body)

    @r.get("/runs/{run_id}/learning", response_model=LearningView, tags=["runs"])
    async def learning(run_id: str, who: Member) -> LearningView:
        await ended_run(run_id, who.user_id)
        found = await rt.store.get_learning(run_id)
        if found is None:
            raise NotFound(f"run '{run_id}' has no learning yet (it is written just after the run ends)")
        return found

    return r
