"""The UI's only way to the runtime: the HTTP API, through an async httpx client.

Responses are parsed into the API's own pydantic models; an error answer becomes
:class:`ApiError` carrying the API's ``detail`` (which names the field or the thing).
"""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any, Literal, TypeVar

import httpx
from pydantic import BaseModel, TypeAdapter

from core.account_schemas import (
    ApiTokenCreate,
    ApiTokenCreated,
    ApiTokenView,
    InviteRequest,
    InviteView,
    LoginResult,
    Role,
    UserChange,
    UserView,
)
from core.action_schemas import (
    ActionStatus,
    ActionType,
    ActionView,
    AuditEntry,
    BatchDecision,
    BatchItem,
    BatchResult,
    ConnectRequest,
    ConnectStart,
    Decision,
    DelegatesChange,
    DelegatesView,
    EditDecision,
    IntegrationView,
    Policy,
    PolicyView,
    Rejection,
)
from core.memory_schemas import (
    DocumentInfo,
    DocumentKind,
    DocumentView,
    Feedback,
    LearningView,
    MemoryStats,
    UploadResult,
)
from core.schemas import (
    REAUTH_HEADER,
    AgentsView,
    ConnectionResult,
    ConversationSummary,
    ConversationView,
    Draft,
    MemorySource,
    RunAccepted,
    RunCancel,
    RunEvent,
    RunView,
    SettingsView,
    SystemStatus,
    TaskRecord,
)

M = TypeVar("M", bound=BaseModel)
_CONVERSATIONS = TypeAdapter(list[ConversationSummary])
_TASKS = TypeAdapter(list[TaskRecord])
_DRAFTS = TypeAdapter(list[Draft])
_DOCUMENTS = TypeAdapter(list[DocumentInfo])
_SOURCES = TypeAdapter(list[MemorySource])
_INTEGRATIONS = TypeAdapter(list[IntegrationView])
_ACTIONS = TypeAdapter(list[ActionView])
_AUDIT = TypeAdapter(list[AuditEntry])
_USERS = TypeAdapter(list[UserView])
_TOKENS = TypeAdapter(list[ApiTokenView])


class ApiError(Exception):
    """The API answered with an error (or could not be reached: ``status`` 0)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(status, detail)
        self.status = status
        self.detail = detail

    def __str__(self) -> str:
        return self.detail if self.status == 0 else f"{self.detail} (HTTP {self.status})"


def parse_sse(lines: Iterable[str]) -> Iterable[RunEvent]:
    """Server-Sent Event lines to run events (comments such as keep-alives are skipped)."""
    data: list[str] = []
    for line in lines:
        if line == "":
            if data:
                yield RunEvent.model_validate_json("\n".join(data))
            data = []
        elif line.startswith("data:"):
            data.append(line[5:].lstrip(" "))


def _detail(resp: httpx.Response) -> str:
    try:
        detail = resp.json().get("detail")
    except (ValueError, AttributeError):
        detail = None
    if detail is None:
        return resp.text[:300] or resp.reason_phrase
    return detail if isinstance(detail, str) else json.dumps(detail)


class ApiClient:
    """Typed calls to the Master Agent OS HTTP API at ``base_url``.

    ``person``: the headers that say whom the current call is for, read at each call (the web UI
    passes the session of the person whose page made it); without it every call is ``token``'s."""

    def __init__(self, base_url: str, token: str | None = None, transport: httpx.AsyncBaseTransport | None = None,
                 retry_delay_s: float = 0.5, max_reconnects: int = 20,
                 person: Callable[[], dict[str, str]] | None = None, verify: ssl.SSLContext | bool = True) -> None:
        self.base_url = base_url.rstrip("/")
        self._verify = verify  # over HTTPS: trust in the app's own certificate (core.tls.pinned_context)
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._person = person or dict
        self._transport = transport
        self._http: httpx.AsyncClient | None = None
        self.retry_delay_s = retry_delay_s
        self.max_reconnects = max_reconnects

    @property
    def http(self) -> httpx.AsyncClient:
        if self._http is None:  # made on first use, in the event loop that serves the UI
            self._http = httpx.AsyncClient(base_url=self.base_url, transport=self._transport, headers=self._headers,
                                           timeout=httpx.Timeout(30.0, connect=5.0), verify=self._verify)
        return self._http

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    async def _call(self, method: str, path: str, body: Any = None, params: dict[str, Any] | None = None,
                    reauth: str | None = None, **form: Any) -> Any:
        """One request; ``form`` (``files=``, ``data=``) sends a multipart form instead of JSON.
        ``reauth``: the login token a person typed to confirm a change that widens what the app may do.
        A body-less answer (204) is ``None``."""
        query = {k: v for k, v in (params or {}).items() if v is not None}
        headers = {**self._person(), **({REAUTH_HEADER: reauth} if reauth else {})}
        try:
            if form:
                resp = await self.http.request(method, path, params=query, headers=headers, **form)
            else:
                resp = await self.http.request(method, path, json=body, params=query, headers=headers)
        except httpx.HTTPError as exc:
            raise ApiError(0, f"the API at {self.base_url} did not answer ({type(exc).__name__})") from exc
        if resp.status_code >= 400:
            raise ApiError(resp.status_code, _detail(resp))
        return resp.json() if resp.content else None

    # --- conversations and runs ---------------------------------------------------------------

    async def create_conversation(self, title: str | None = None) -> ConversationSummary:
        return ConversationSummary.model_validate(await self._call("POST", "/api/conversations", {"title": title}))

    async def list_conversations(self, q: str | None = None, since: float | None = None, until: float | None = None,
                                 status: str | None = None, agent: str | None = None,
                                 limit: int = 50) -> list[ConversationSummary]:
        params = {"q": q, "since": since, "until": until, "status": status, "agent": agent, "limit": limit}
        return _CONVERSATIONS.validate_python(await self._call("GET", "/api/conversations", params=params))

    async def get_conversation(self, conversation_id: str) -> ConversationView:
        return ConversationView.model_validate(await self._call("GET", f"/api/conversations/{conversation_id}"))

    async def post_message(self, conversation_id: str, message: str) -> RunAccepted:
        body = await self._call("POST", f"/api/conversations/{conversation_id}/messages", {"message": message})
        return RunAccepted.model_validate(body)

    async def cancel_run(self, run_id: str) -> RunCancel:
        """Stop a run (``POST /api/runs/ID/cancel``); asking again changes nothing."""
        return RunCancel.model_validate(await self._call("POST", f"/api/runs/{run_id}/cancel"))

    async def get_run(self, run_id: str) -> RunView:
        return RunView.model_validate(await self._call("GET", f"/api/runs/{run_id}"))

    async def run_drafts(self, run_id: str) -> list[Draft]:
        return _DRAFTS.validate_python(await self._call("GET", f"/api/runs/{run_id}/drafts"))

    async def run_events(self, run_id: str, after: int = 0) -> AsyncIterator[RunEvent]:
        """Follow the run's events to ``end``. A dropped stream is reopened with ``Last-Event-ID``
        set to the last event seen, so nothing is missed or repeated."""
        last, failures = after, 0
        while True:
            try:
                headers = {**self._person(), "Accept": "text/event-stream", "Last-Event-ID": str(last)}
                async with self.http.stream("GET", f"/api/runs/{run_id}/events", headers=headers,
                                            timeout=httpx.Timeout(60.0, connect=5.0)) as resp:
                    if resp.status_code >= 400:
                        await resp.aread()
                        raise ApiError(resp.status_code, _detail(resp))
                    buffered: list[str] = []
                    async for line in resp.aiter_lines():
                        buffered.append(line)
                        if line != "":
                            continue
                        for event in parse_sse(buffered):
                            last, failures = event.seq, 0
                            yield event
                            if event.kind == "end":
                                return
                        buffered = []
            except httpx.HTTPError:
                pass
            failures += 1  # dropped, or closed before ``end``: reopen after the last event seen
            if failures > self.max_reconnects:
                raise ApiError(0, f"lost the event stream of run {run_id} after event {last}")
            await asyncio.sleep(min(5.0, self.retry_delay_s * failures))

    async def list_tasks(self, q: str | None = None, status: str | None = None, agent: str | None = None,
                         run_id: str | None = None, since: float | None = None, until: float | None = None,
                         limit: int = 100) -> list[TaskRecord]:
        params = {"q": q, "status": status, "agent": agent, "run_id": run_id, "since": since, "until": until,
                  "limit": limit}
        return _TASKS.validate_python(await self._call("GET", "/api/tasks", params=params))

    async def retry_task(self, task_id: str) -> TaskRecord:
        return TaskRecord.model_validate(await self._call("POST", f"/api/tasks/{task_id}/retry"))

    # --- operations ---------------------------------------------------------------------------

    async def agents(self) -> AgentsView:
        return AgentsView.model_validate(await self._call("GET", "/api/agents"))

    async def status(self) -> SystemStatus:
        return SystemStatus.model_validate(await self._call("GET", "/api/status"))

    async def get_settings(self) -> SettingsView:
        return SettingsView.model_validate(await self._call("GET", "/api/settings"))

    async def update_settings(self, changes: dict[str, Any], reauth: str | None = None) -> SettingsView:
        """PATCH only ``changes``; the API validates them (a bad value is an ApiError naming the field).
        Another LLM server needs ``reauth``, the login token again."""
        return SettingsView.model_validate(await self._call("PATCH", "/api/settings", changes, reauth=reauth))

    async def test_connection(self, provider: str, base_url: str, model: str | None) -> ConnectionResult:
        body = {"provider": provider, "base_url": base_url, "model": model}
        return ConnectionResult.model_validate(await self._call("POST", "/api/settings/test-connection", body))

    # --- memory -------------------------------------------------------------------------------

    async def upload_document(self, filename: str, data: bytes, kind: DocumentKind = "doc",
                              tags: str = "") -> UploadResult:
        """Store a file in memory; it is indexed in the background (poll :meth:`get_document`)."""
        body = await self._call("POST", "/api/documents", files={"file": (filename, data)},
                                data={"kind": kind, "tags": tags})
        return UploadResult.model_validate(body)

    async def list_documents(self, kind: DocumentKind | None = None, q: str | None = None,
                             limit: int = 200) -> list[DocumentInfo]:
        params = {"kind": kind, "q": q, "limit": limit}
        return _DOCUMENTS.validate_python(await self._call("GET", "/api/documents", params=params))

    async def get_document(self, document_id: str) -> DocumentView:
        return DocumentView.model_validate(await self._call("GET", f"/api/documents/{document_id}"))

    async def delete_document(self, document_id: str) -> None:
        await self._call("DELETE", f"/api/documents/{document_id}")

    async def search_memory(self, q: str, collection: str | None = None, limit: int = 10) -> list[MemorySource]:
        params = {"q": q, "collection": collection, "limit": limit}
        return _SOURCES.validate_python(await self._call("GET", "/api/memory/search", params=params))

    async def memory_stats(self) -> MemoryStats:
        return MemoryStats.model_validate(await self._call("GET", "/api/memory/stats"))

    async def send_feedback(self, run_id: str, feedback: Feedback) -> LearningView:
        body = feedback.model_dump(mode="json")
        return LearningView.model_validate(await self._call("POST", f"/api/runs/{run_id}/feedback", body))

    async def learning(self, run_id: str) -> LearningView:
        return LearningView.model_validate(await self._call("GET", f"/api/runs/{run_id}/learning"))

    # --- integrations, approvals and the audit log ----------------------------------------------

    async def integrations(self) -> list[IntegrationView]:
        return _INTEGRATIONS.validate_python(await self._call("GET", "/api/integrations"))

    async def connect_integration(self, provider: str, features: list[str]) -> ConnectStart:
        """Start the grant of ``features``: the browser must be sent to ``authorization_url``."""
        body = ConnectRequest(features=features).model_dump(mode="json")
        return ConnectStart.model_validate(await self._call("POST", f"/api/integrations/{provider}/connect", body))

    async def disconnect_integration(self, provider: str) -> IntegrationView:
        return IntegrationView.model_validate(await self._call("POST", f"/api/integrations/{provider}/disconnect"))

    async def list_approvals(self, status: ActionStatus | None = None, run_id: str | None = None,
                             limit: int = 200) -> list[ActionView]:
        """Proposed actions, newest first (``status`` None: every status)."""
        params = {"status": status, "run_id": run_id, "limit": limit}
        return _ACTIONS.validate_python(await self._call("GET", "/api/approvals", params=params))

    async def approve(self, action_id: str, args_hash: str) -> ActionView:
        body = Decision(args_hash=args_hash).model_dump(mode="json")
        return ActionView.model_validate(await self._call("POST", f"/api/approvals/{action_id}/approve", body))

    async def edit_action(self, action_id: str, args_hash: str, arguments: dict[str, Any]) -> ActionView:
        """Approve ``arguments`` instead: the answer is the new, approved action (the old one is superseded)."""
        body = EditDecision(args_hash=args_hash, arguments=arguments).model_dump(mode="json")
        return ActionView.model_validate(await self._call("POST", f"/api/approvals/{action_id}/edit", body))

    async def reject(self, action_id: str, reason: str = "") -> ActionView:
        body = Rejection(reason=reason).model_dump(mode="json")
        return ActionView.model_validate(await self._call("POST", f"/api/approvals/{action_id}/reject", body))

    async def decide_batch(self, decision: Literal["approve", "reject"], items: list[BatchItem]) -> BatchResult:
        """Decide every item alike; each is refused on its own (``refused``) when it cannot be."""
        body = BatchDecision(decision=decision, items=items).model_dump(mode="json")
        return BatchResult.model_validate(await self._call("POST", "/api/approvals/batch", body))

    async def get_policy(self) -> PolicyView:
        return PolicyView.model_validate(await self._call("GET", "/api/approvals/policy"))

    async def update_policy(self, policies: dict[ActionType, Policy], reauth: str | None = None) -> PolicyView:
        """PUT only the types in ``policies``; the answer holds them all. A type becoming ``allow``
        needs ``reauth``, the login token again."""
        body = PolicyView(policies=policies).model_dump(mode="json")
        return PolicyView.model_validate(await self._call("PUT", "/api/approvals/policy", body, reauth=reauth))

    async def delegates(self) -> DelegatesView:
        """Whom you let decide your pending actions, and who let you decide theirs."""
        return DelegatesView.model_validate(await self._call("GET", "/api/approvals/delegates"))

    async def set_delegates(self, delegates: list[str]) -> DelegatesView:
        """Your delegates become these people (user ids or login names); an empty list names nobody."""
        body = DelegatesChange(delegates=delegates).model_dump(mode="json")
        return DelegatesView.model_validate(await self._call("PUT", "/api/approvals/delegates", body))

    async def audit(self, run_id: str | None = None, action: str | None = None, limit: int = 200) -> list[AuditEntry]:
        params = {"run_id": run_id, "action": action, "limit": limit}
        return _AUDIT.validate_python(await self._call("GET", "/api/audit", params=params))

    # --- the person and their accounts ------------------------------------------------------------

    async def me(self) -> UserView:
        """Who the calls are for."""
        return LoginResult.model_validate(await self._call("GET", "/api/auth/me")).user

    async def users(self) -> list[UserView]:
        """Every account (admin)."""
        return _USERS.validate_python(await self._call("GET", "/api/users"))

    async def invite_user(self, name: str, role: Role) -> InviteView:
        """A new account and its one-time link (admin)."""
        body = InviteRequest(name=name, role=role).model_dump(mode="json")
        return InviteView.model_validate(await self._call("POST", "/api/users", body))

    async def reinvite_user(self, user_id: str) -> InviteView:
        return InviteView.model_validate(await self._call("POST", f"/api/users/{user_id}/invite"))

    async def change_user(self, user_id: str, disabled: bool | None = None, role: Role | None = None) -> UserView:
        body = UserChange(disabled=disabled, role=role).model_dump(mode="json", exclude_none=True)
        return UserView.model_validate(await self._call("PATCH", f"/api/users/{user_id}", body))

    async def tokens(self) -> list[ApiTokenView]:
        return _TOKENS.validate_python(await self._call("GET", "/api/tokens"))

    async def create_token(self, name: str) -> ApiTokenCreated:
        body = ApiTokenCreate(name=name).model_dump(mode="json")
        return ApiTokenCreated.model_validate(await self._call("POST", "/api/tokens", body))

    async def revoke_token(self, token_id: str) -> None:
        await self._call("DELETE", f"/api/tokens/{token_id}")

    async def log_out_everywhere(self) -> None:
        await self._call("POST", "/api/auth/logout", params={"everywhere": True})
