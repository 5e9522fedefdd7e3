"""The HTTP API (FastAPI), built inside the Serve replica by :func:`build_api`.

It reaches the runtime through the app's named actors, so the replica can run on any node.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, HTTPException, Query
from fastapi.responses import JSONResponse, RedirectResponse
from pydantic import BaseModel, ConfigDict, Field

from core.errors import ActorGone, PlanError, QueueFull
from core.schemas import RunView, SystemStatus, TaskRecord, TaskStatus
from core.settings import Settings


class AskRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    message: str = Field(min_length=1, max_length=20_000, description="What the user wants done.")
    conversation_id: str | None = Field(None, description="Continue this conversation.")


class AskAccepted(BaseModel):
    model_config = ConfigDict(extra="forbid")
    run_id: str = Field(description="Run started for the message.")
    conversation_id: str = Field(description="Conversation it belongs to.")
    status: str = Field(description="Run state (planning at first).")


def build_api(settings: Settings) -> FastAPI:
    from actors import runtime

    api = FastAPI(title="Master Agent OS", version="0.1.0")
    state: dict[str, Any] = {}

    def app() -> runtime.App:
        if "app" not in state:
            found = runtime.connect(settings, None)  # type: ignore[arg-type]
            if found is None:
                raise HTTPException(503, "the runtime actors are not running")
            state["app"] = found
        return state["app"]  # type: ignore[no-any-return]

    @api.exception_handler(ActorGone)
    async def _gone(_: Any, exc: ActorGone) -> JSONResponse:
        state.pop("app", None)
        return JSONResponse({"detail": f"runtime unavailable: {exc}"}, status_code=503, headers={"Retry-After": "5"})

    @api.get("/", include_in_schema=False)
    async def index() -> RedirectResponse:
        return RedirectResponse("/docs")

    @api.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @api.get("/ready")
    async def ready() -> JSONResponse:
        reasons = []
        try:
            await app().store.call("ping")
        except Exception as exc:
            reasons.append(f"store: {exc}")
        try:
            h = await app().gateways[0].call("health")
            if not h["reachable"]:
                reasons.append(f"llm: {h['provider']} at {h['base_url']} is not answering")
        except Exception as exc:
            reasons.append(f"gateway: {exc}")
        body = {"ready": not reasons, "reasons": reasons}
        return JSONResponse(body, status_code=200 if not reasons else 503)

    @api.post("/api/runs", status_code=202, response_model=AskAccepted)
    async def ask(req: AskRequest) -> AskAccepted:
        a = app()
        open_tasks = await a.store.call("open_task_count")
        if open_tasks >= settings.queue_bound:
            raise QueueFull(f"the queue holds {open_tasks} open tasks (bound {settings.queue_bound})", 10)
        try:
            run = await a.master.call("submit", req.message, settings.user_id, req.conversation_id)
        except PlanError as exc:
            raise HTTPException(422, str(exc)) from None
        return AskAccepted(run_id=run.id, conversation_id=run.conversation_id, status=run.status)

    @api.exception_handler(QueueFull)
    async def _full(_: Any, exc: QueueFull) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=429, headers={"Retry-After": str(int(exc.retry_after_s))})

    @api.get("/api/runs/{run_id}", response_model=RunView)
    async def get_run(run_id: str) -> RunView:
        view = await app().store.call("get_run", run_id)
        if view is None:
            raise HTTPException(404, f"no run '{run_id}'")
        return view  # type: ignore[no-any-return]

    @api.get("/api/tasks", response_model=list[TaskRecord])
    async def list_tasks(status: TaskStatus | None = None, run_id: str | None = None,
                         limit: int = Query(100, ge=1, le=10_000)) -> list[TaskRecord]:
        return await app().store.call("list_tasks", status, run_id, limit)  # type: ignore[no-any-return]

    @api.get("/api/tasks/{task_id}", response_model=TaskRecord)
    async def get_task(task_id: str) -> TaskRecord:
        task = await app().store.call("get_task", task_id)
        if task is None:
            raise HTTPException(404, f"no task '{task_id}'")
        return task  # type: ignore[no-any-return]

    @api.post("/api/tasks/{task_id}/retry", response_model=TaskRecord)
    async def retry(task_id: str) -> TaskRecord:
        a = app()
        if not await a.store.call("requeue", task_id):
            task = await a.store.call("get_task", task_id)
            if task is None:
                raise HTTPException(404, f"no task '{task_id}'")
            raise HTTPException(409, f"task '{task_id}' is {task.status}; only dead tasks can be retried")
        a.dispatcher.fire("wake")
        return await a.store.call("get_task", task_id)  # type: ignore[no-any-return]

    @api.get("/api/status", response_model=SystemStatus)
    async def status() -> SystemStatus:
        a = app()
        h = await a.gateways[0].call("health")
        return SystemStatus(
            ray_address=runtime.current_address(), ray_nodes=runtime.cluster_nodes(), llm_provider=h["provider"],
            llm_base_url=h["base_url"], llm_models=h["models"], llm_reachable=h["reachable"],
            llm_in_flight=h["in_flight"], llm_waiting=h["waiting"],
            pools=await a.dispatcher.call("status"), queue=await a.store.call("queue_counts"),
        )

    return api
