"""Work routes: conversations, messages (which start runs), run event streams, tasks.

Each route works on the caller's own records (:mod:`serve_app.callers`): another person's is a 404,
as an unknown id is. Messages and runs count against the caller's limits (:mod:`serve_app.user_limits`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TypeVar

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse

from actors.runtime.typed import fire
from core.errors import ConfigError, Conflict, NotFound
from core.schemas import (
    ConversationSummary,
    ConversationView,
    Draft,
    NewConversation,
    PostMessage,
    RunAccepted,
    RunCancel,
    RunEvent,
    RunStatus,
    RunView,
    TaskRecord,
    TaskStatus,
)
from serve_app.access import RuntimeAccess
from serve_app.callers import Member
from serve_app.user_limits import limited

T = TypeVar("T")

KEEPALIVE_S = 15.0


def sse(event: RunEvent) -> str:
    """One Server-Sent Event: the id is the event's place in the run's log."""
    return f"id: {event.seq}\nevent: {event.kind}\ndata: {event.model_dump_json(exclude_none=True)}\n\n"


def build_work_routes(rt: RuntimeAccess) -> APIRouter:
    r = APIRouter(prefix="/api")

    def existing(found: T | None, what: str, key: str) -> T:
        """The Store's answer for ``key``, or 404 naming it."""
        if found is None:
            raise NotFound(f"no {what} '{key}'")
        return found

    async def start_run(message: str, conversation_id: str | None, budget: PostMessage, user_id: str) -> RunAccepted:
        await rt.check_room()
        app = await rt.app()
        run = await app.master.submit(message=message, user_id=user_id, conversation_id=conversation_id,
                                      max_tokens=budget.max_tokens, deadline_s=budget.deadline_s)
        return RunAccepted(run_id=run.id, conversation_id=run.conversation_id, status=run.status,
                           events_url=f"/api/runs/{run.id}/events")

    # --- conversations ---------------------------------------------------------------------

    @r.post("/conversations", status_code=201, response_model=ConversationSummary, tags=["conversations"])
    async def create_conversation(body: NewConversation, who: Member) -> ConversationSummary:
        return await rt.store.create_conversation(user_id=who.user_id, title=body.title)

    @r.get("/conversations", response_model=list[ConversationSummary], tags=["conversations"])
    async def list_conversations(
        who: Member,
        q: str | None = Query(None, max_length=200, description="Text in the title or any message."),
        since: float | None = Query(None, description="Last activity at or after (Unix seconds)."),
        until: float | None = Query(None, description="Last activity at or before (Unix seconds)."),
        status: RunStatus | None = Query(None, description="State of the latest run."),
        agent: str | None = Query(None, max_length=40, description="An agent type any step used."),
        limit: int = Query(50, ge=1, le=1000),
    ) -> list[ConversationSummary]:
        return await rt.store.list_conversations(q=q, since=since, until=until, status=status, agent=agent, limit=limit,
                                                 user_id=who.user_id)

    @r.get("/conversations/{conversation_id}", response_model=ConversationView, tags=["conversations"])
    async def get_conversation(conversation_id: str, who: Member) -> ConversationView:
        return await rt.store.get_conversation(conversation_id=conversation_id, user_id=who.user_id)

    @r.post("/conversations/{conversation_id}/messages", status_code=202, response_model=RunAccepted,
            tags=["conversations"], dependencies=limited("messages", "runs"))
    async def post_message(conversation_id: str, body: PostMessage, who: Member) -> RunAccepted:
        """Start a run for the message; returns at once with the run's event stream."""
        await rt.store.get_conversation(conversation_id=conversation_id, user_id=who.user_id)  # 404: unknown or not theirs
        return await start_run(body.message, conversation_id, body, who.user_id)

    @r.post("/runs", status_code=202, response_model=RunAccepted, tags=["runs"], dependencies=limited("messages", "runs"))
    async def ask(body: PostMessage, who: Member) -> RunAccepted:
        """Start a run in a new conversation."""
        return await start_run(body.message, None, body, who.user_id)

    # --- runs ------------------------------------------------------------------------------

    @r.get("/runs/{run_id}", response_model=RunView, tags=["runs"])
    async def get_run(run_id: str, who: Member) -> RunView:
        return existing(await rt.store.get_run(run_id=run_id, user_id=who.user_id), "run", run_id)

    @r.post("/runs/{run_id}/cancel", response_model=RunCancel, tags=["runs"])
    async def cancel_run(run_id: str, who: Member) -> RunCancel:
        """Stop a run: its steps not started never start, running ones stop at their next await, its proposals
        no one decided are withdrawn; it ends cancelled with what was done. Asking again changes nothing."""
        app = await rt.app()
        user = who.user_id
        return await app.master.cancel(run_id=run_id, user_id=user, reason=f"cancelled by {user}")

    @r.get("/runs/{run_id}/events", tags=["runs"], response_class=StreamingResponse,
           responses={200: {"content": {"text/event-stream": {}}, "description": "RunEvent per SSE event."}})
    async def run_events(
        run_id: str, request: Request, who: Member,
        last_event_id: str | None = Header(None, description="Resume after this event (set by EventSource)."),
        after: int = Query(0, ge=0, description="Resume after this event id (for clients that cannot set headers)."),
    ) -> StreamingResponse:
        """The run's events as Server-Sent Events, from the first (or after Last-Event-ID) to ``end``."""
        existing(await rt.store.get_run(run_id=run_id, user_id=who.user_id), "run", run_id)
        start = after
        if last_event_id is not None:
            if not last_event_id.strip().isdigit():
                raise ConfigError(f"Last-Event-ID: expected an event id (a number), got '{last_event_id[:40]}'")
            start = int(last_event_id)

        async def stream() -> AsyncIterator[str]:
            cursor = start
            while not await request.is_disconnected():
                events: list[RunEvent] = await rt.store.run_events(run_id=run_id, after=cursor, wait_s=KEEPALIVE_S)
                if not events:
                    yield ": keep-alive\n\n"
                    continue
                for ev in events:
                    cursor = ev.seq
                    yield sse(ev)
                # The stream ends at an end event, unless the run went on after it (a dead step retried).
                if events[-1].kind == "end" and not await rt.store.run_events(run_id=run_id, after=cursor, wait_s=0.0, limit=1):
                    return

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    @r.get("/runs/{run_id}/drafts", response_model=list[Draft], tags=["runs"])
    async def run_drafts(run_id: str, who: Member) -> list[Draft]:
        """Emails, events, texts and calls the run's sub-agents drafted (drafts: nothing was sent)."""
        existing(await rt.store.get_run(run_id=run_id, user_id=who.user_id), "run", run_id)
        return await rt.store.list_drafts(run_id=run_id, user_id=who.user_id)

    @r.get("/drafts", response_model=list[Draft], tags=["runs"])
    async def drafts(who: Member, limit: int = Query(200, ge=1, le=5000)) -> list[Draft]:
        """The outbox: every draft of the caller's, newest first."""
        return await rt.store.list_drafts(run_id=None, limit=limit, user_id=who.user_id)

    # --- tasks -----------------------------------------------------------------------------

    @r.get("/tasks", response_model=list[TaskRecord], tags=["tasks"])
    async def list_tasks(
        who: Member, status: TaskStatus | None = None, run_id: str | None = None,
        agent: str | None = Query(None, max_length=40), q: str | None = Query(None, max_length=200),
        since: float | None = None, until: float | None = None, limit: int = Query(100, ge=1, le=10_000),
    ) -> list[TaskRecord]:
        return await rt.store.list_tasks(status=status, run_id=run_id, limit=limit, agent=agent, q=q, since=since,
                                         until=until, user_id=who.user_id)

    @r.get("/tasks/{task_id}", response_model=TaskRecord, tags=["tasks"])
    async def get_task(task_id: str, who: Member) -> TaskRecord:
        return existing(await rt.store.get_task(task_id=task_id, user_id=who.user_id), "task", task_id)

    @r.post("/tasks/{task_id}/retry", response_model=TaskRecord, tags=["tasks"])
    async def retry(task_id: str, who: Member) -> TaskRecord:
        """Put a dead task back in the queue (its blocked dependents with it)."""
        app = await rt.app()
        existing(await app.store.get_task(task_id=task_id, user_id=who.user_id), "task", task_id)
        if not await app.store.requeue(task_id=task_id):
            task = existing(await app.store.get_task(task_id=task_id, user_id=who.user_id), "task", task_id)
            raise Conflict(f"task '{task_id}' is {task.status}; only dead tasks can be retried")
        fire(app.dispatcher.wake())
        return existing(await app.store.get_task(task_id=task_id, user_id=who.user_id), "task", task_id)

    return r
