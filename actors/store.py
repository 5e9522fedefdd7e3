"""The Store actor: sole owner of the DuckDB file, offering domain operations (no SQL crosses it).

A thin role: each operation is a plain function of ``actors.storage``, run by the open database
(``actors.storage.engine``): writes in the group commit (an acknowledged write is a committed one),
reads on the connection, tools' operations (``tool_ops``, sent in batches by the pools) on a reader
thread of their own; the dispatcher's queue steps by ``actors.storage.claims``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, Literal

from actors.runtime.boot import actor_class
from actors.storage import (
    accounts,
    actions,
    conversations,
    credentials,
    delegates,
    documents,
    drafts,
    events,
    memory_entries,
    queue,
    queue_recovery,
    runs,
    settings,
    stopping,
    tasks,
    tool_ops,
)
from actors.storage.claims import Claimed, TaskClaims
from actors.storage.database import database_keys
from actors.storage.engine import Engine
from core.account_schemas import ApiTokenView, CredentialKind, Role, UserLogin, UserView
from core.action_schemas import AuditEntry, Person
from core.budget import Budget
from core.crypto import Sealed
from core.memory_schemas import DocumentInfo, DocumentKind, DocumentView, Feedback, LearningView
from core.schemas import (
    AgentPoolView,
    ConversationSummary,
    ConversationView,
    Draft,
    MemorySource,
    Message,
    Plan,
    Run,
    RunCancel,
    RunEvent,
    RunView,
    StepOutcome,
    TaskRecord,
)
from core.settings import Settings
from core.storage_schemas import (
    OAuthState,
    RunProgress,
    RunUsage,
    SealedRow,
    SealedTable,
    StoredAction,
    StoredCredential,
    ToolAnswer,
    ToolOp,
)

__all__ = ["ActorStore", "Claimed", "Store"]


class Store:
    """DuckDB owner. Plain class; the runtime makes it an actor. Each method is one domain operation,
    documented on :class:`actors.runtime.apis.StoreApi`, and hands its work to ``actors.storage``;
    a group of related operations is listed without blank lines between them."""

    def __init__(self, db_path: str, commit_interval_s: float = 0.002, retry: queue.RetryPolicy | None = None,
                 keys: Sequence[str] = (), threads: int = 1, keys_of: Settings | None = None,
                 busy_wait_s: float = 30.0) -> None:
        """``keys``: the database file's encryption keys (``database_keys``), current first; or
        ``keys_of``: the settings to derive them from in this process (an actor is given no secret).
        ``busy_wait_s``: how long a file another process holds is waited for (``open_database``)."""
        keys = database_keys(keys_of) if keys_of is not None else keys
        self._db = Engine(db_path, keys, commit_interval_s, threads, busy_wait_s)
        self._conn = self._db.conn
        self._queue = TaskClaims(self._db, retry)
        self.claims_asked = 0  # by the dispatcher, answered or not

    @property
    def commits(self) -> int:
        return self._db.commit.commits

    async def flush(self) -> None:
        await self._db.submit(lambda conn: None)

    async def ping(self) -> bool:
        return True

    def close(self) -> None:
        """Close the database (writes not yet committed are dropped: await ``flush`` first to keep them)."""
        self._db.close()

    # --- tools' operations, many at once (actors.storage.tool_ops) -----------------------------

    async def tool_ops(self, ops: list[ToolOp]) -> list[ToolAnswer | Exception]:
        return await tool_ops.run(self._db, ops)

    # --- runs (actors.storage.runs, stopping): their life, event log, reads, costs --------------

    async def create_run(self, message: str, user_id: str, conversation_id: str | None = None,
                         budget: Budget | None = None) -> Run:
        return await self._db.logged(runs.new, message, user_id, conversation_id, budget)
    async def enqueue_plan(self, run_id: str, plan: Plan, max_attempts: int) -> None:
        await self._db.logged(runs.start, run_id, plan, max_attempts)
    async def set_run_status(self, run_id: str, status: str) -> None:
        await self._db.logged(runs.set_status, run_id, status)
    async def note_run_error(self, run_id: str, error: str) -> None:
        await self._db.logged(runs.note_error, run_id, error)
    async def finish_run(self, run_id: str, status: str, summary: str | None, error: str | None) -> None:
        await self._db.logged(runs.finish, run_id, status, summary, error)

    async def cancel_run(self, run_id: str, user_id: str | None, reason: str) -> RunCancel:
        return stopping.answer(run_id, await self._db.logged(stopping.cancel, run_id, user_id, reason))
    async def budget_usage(self) -> list[tuple[str, Budget | None, int, float]]:
        return stopping.budget_usage(self._conn)

    async def append_tokens(self, chunks: list[tuple[str, str, str]]) -> None:
        await self._db.logged(events.append_tokens, chunks)
    async def run_events(self, run_id: str, after: int = 0, wait_s: float = 0.0, limit: int = 1000) -> list[RunEvent]:
        return await self._db.events.read_or_wait(self._conn, run_id, after, wait_s, limit)

    async def get_run(self, run_id: str, user_id: str | None = None) -> RunView | None:
        return runs.get(self._conn, run_id, user_id)
    async def run_progress(self, run_id: str) -> RunProgress | None:
        return runs.progress(self._conn, run_id)
    async def runs_by_status(self, statuses: list[str]) -> list[Run]:
        return runs.by_status(self._conn, statuses)
    async def unfinished_runs_with_no_open_tasks(self) -> list[str]:
        return runs.unfinished_with_no_open_tasks(self._conn)
    async def run_goals(self, run_ids: list[str]) -> dict[str, tuple[str, str]]:
        return runs.goals(self._conn, run_ids)

    async def record_llm_calls(self, calls: list[dict[str, Any]]) -> None:
        if calls:
            await self._db.apply(runs.record_llm_calls, calls)
    async def run_usage(self, run_id: str) -> RunUsage:
        return runs.usage(self._conn, run_id)

    # --- conversations and settings (actors.storage.conversations, settings) -------------------

    async def create_conversation(self, user_id: str, title: str | None) -> ConversationSummary:
        return await self._db.write(conversations.new, user_id, title)
    async def list_conversations(self, q: str | None = None, since: float | None = None, until: float | None = None,
                                 status: str | None = None, agent: str | None = None,
                                 limit: int = 50, user_id: str | None = None) -> list[ConversationSummary]:
        return conversations.search(self._conn, q, since, until, status, agent, limit, user_id)
    async def get_conversation(self, conversation_id: str, user_id: str | None = None) -> ConversationView:
        return runs.conversation(self._conn, conversation_id, user_id)
    async def recent_turns(self, conversation_id: str, exclude_run_id: str | None = None,
                           limit: int = 64) -> list[Message]:
        return conversations.recent_messages(self._conn, conversation_id, exclude_run_id, limit)

    async def agent_stats(self, descriptions: dict[str, str], actors: dict[str, list[str]],
                          in_flight: dict[str, int]) -> list[AgentPoolView]:
        return conversations.agent_stats(self._conn, descriptions, actors, in_flight, time.time())

    async def running_by_node(self) -> dict[str, int]:
        return tasks.running_by_node(self._conn)

    async def settings_overrides(self) -> dict[str, Any]:
        return settings.overrides(self._conn)
    async def save_settings_overrides(self, values: dict[str, Any]) -> None:
        await self._db.write(settings.save, values)

    # --- the queue: the dispatcher's steps (actors.storage.claims), recovery, reads (tasks) ------

    async def claim(self, limits: dict[str, int], owners: dict[str, list[str]], lease_s: float) -> list[Claimed]:
        self.claims_asked += 1
        return await self._queue.claim(limits, owners, lease_s)

    async def claim_or_due(self, limits: dict[str, int], owners: dict[str, list[str]],
                           lease_s: float) -> tuple[list[Claimed], float]:
        claimed = await self.claim(limits, owners, lease_s)
        return claimed, (0.0 if claimed else self._queue.next_due)

    async def complete(self, outcomes: list[StepOutcome]) -> tuple[list[str], list[str]]:
        return await self._queue.complete(outcomes)
    async def renew_leases(self, task_ids: list[str], lease_s: float) -> None:
        await self._db.apply(queue.renew_leases, task_ids, time.time() + lease_s)
    async def reclaim(self, owners: list[str] | None) -> tuple[list[str], list[str]]:
        return await self._queue.reclaim(owners)
    async def reclaim_foreign(self, keep: list[str]) -> tuple[list[str], list[str]]:
        return await self._queue.reclaim(None, keep=keep)
    async def requeue(self, task_id: str) -> bool:
        return await self._queue.requeue(task_id)

    async def release_waiting(self, user_id: str, provider: str) -> int:
        return len((await self._db.write(queue_recovery.release_waiting, user_id, provider)).events)
    async def waiting_tasks(self, user_id: str, provider: str) -> int:
        return tasks.waiting_count(self._conn, user_id, provider)

    async def list_tasks(self, status: str | None = None, run_id: str | None = None, limit: int = 100,
                         agent: str | None = None, q: str | None = None, since: float | None = None,
                         until: float | None = None, user_id: str | None = None) -> list[TaskRecord]:
        return tasks.listed(self._conn, status, run_id, limit, agent, q, since, until, user_id)
    async def get_task(self, task_id: str, user_id: str | None = None) -> TaskRecord | None:
        return tasks.get(self._conn, task_id, user_id)
    async def queue_counts(self) -> dict[str, int]:
        return tasks.counts(self._conn)
    async def ready_by_agent(self) -> dict[str, int]:
        return tasks.ready_by_agent(self._conn)
    async def open_task_count(self) -> int:
        return tasks.open_count(self._conn)
    async def list_drafts(self, run_id: str | None = None, limit: int = 200, user_id: str | None = None) -> list[Draft]:
        return drafts.of_run(self._conn, run_id, limit, user_id)

    # --- documents and memory entries (actors.storage.documents, memory_entries) ---------------

    async def add_document(self, doc_id: str, user_id: str, kind: DocumentKind, title: str, filename: str,
                           content: str, content_hash: str, tags: list[str], size: int,
                           chunks: int) -> tuple[DocumentInfo, bool]:
        return await self._db.write(documents.add_upload, doc_id, user_id, kind, title, filename, content, content_hash,
                                    tags, size, chunks)
    async def document_progress(self, doc_id: str, chunks_done: int) -> None:
        await self._db.apply(documents.progress, doc_id, chunks_done)
    async def finish_document(self, doc_id: str, error: str | None) -> None:
        await self._db.apply(documents.finish, doc_id, error)
    async def list_documents(self, user_id: str, kind: DocumentKind | None = None, q: str | None = None,
                             limit: int = 200) -> list[DocumentInfo]:
        return documents.uploads(self._conn, user_id, kind, q, limit)
    async def get_document(self, user_id: str, doc_id: str) -> DocumentView | None:
        return documents.upload(self._conn, user_id, doc_id)
    async def delete_document(self, user_id: str, doc_id: str) -> list[tuple[str, str]] | None:
        return await self._db.apply(documents.delete_upload, user_id, doc_id)
    async def indexing_documents(self, before: float) -> list[tuple[str, str]]:
        return documents.indexing(self._conn, before)

    async def add_memory_entries(self, rows: list[tuple[Any, ...]]) -> None:
        if rows:
            await self._db.apply(memory_entries.add, rows)
    async def memory_hashes(self, user_id: str, collection: str, source_id: str) -> list[str]:
        return memory_entries.hashes(self._conn, user_id, collection, source_id)
    async def delete_memory_entries(self, source_id: str, keep: list[str] | None = None) -> list[tuple[str, str]]:
        return await self._db.apply(memory_entries.delete, source_id, keep or [])
    async def mark_embedded(self, model_id: str) -> None:
        await self._db.apply(memory_entries.mark_embedded, model_id)
    async def memory_entries_page(self, after: str, limit: int) -> list[tuple[Any, ...]]:
        return memory_entries.page(self._conn, after, limit)
    async def memory_entry_count(self) -> int:
        return memory_entries.count(self._conn)
    async def has_memory_entries(self, user_id: str) -> bool:
        return memory_entries.any_of(self._conn, user_id)
    async def stale_memory_entries(self, model_id: str) -> int:
        return memory_entries.stale(self._conn, model_id)
    async def memory_entry_ids(self, source_id: str, collection: str) -> list[str]:
        return memory_entries.ids_of(self._conn, source_id, collection)

    async def add_run_sources(self, entries: list[tuple[str, str | None, list[MemorySource]]]) -> None:
        if entries := [e for e in entries if e[2]]:
            await self._db.logged(memory_entries.add_run_sources, entries)
    async def record_learning(self, view: RunView) -> LearningView:
        return await self._db.write(memory_entries.record_learning, view)
    async def set_feedback(self, run_id: str, feedback: Feedback) -> LearningView | None:
        return await self._db.write(memory_entries.set_feedback, run_id, feedback)
    async def get_learning(self, run_id: str) -> LearningView | None:
        return memory_entries.learning(self._conn, run_id)
    async def learnings(self, user_id: str | None = None, run_ids: list[str] | None = None,
                        limit: int = 10_000) -> list[LearningView]:
        return memory_entries.learnings(self._conn, user_id, run_ids, limit)

    # --- actions, policies, delegates, audit (sealed: the Workspace opens them) -----------------

    async def insert_action(self, action: StoredAction) -> tuple[StoredAction, bool]:
        return await self._db.apply(actions.insert, action)
    async def action_by_key(self, key: str) -> StoredAction | None:
        return actions.by_key(self._conn, key)
    async def get_actions(self, user_id: str, action_ids: list[str]) -> list[StoredAction]:
        return actions.get(self._conn, user_id, action_ids)
    async def actions_let_through(self, user_id: str, since: float | None, limit: int) -> list[StoredAction]:
        return actions.let_through(self._conn, user_id, since, limit)
    async def list_actions(self, user_id: str, status: str | None, run_id: str | None, limit: int) -> list[StoredAction]:
        return actions.listed(self._conn, user_id, status, run_id, limit, time.time())
    async def has_actions(self) -> bool:
        return actions.any_stored(self._conn)

    async def decide_action(self, user_id: str, action_id: str, digest: str | None, to: str, who: str,
                            error: str | None, resealed: tuple[Sealed, bytes] | None) -> StoredAction | None:
        return await self._db.write(actions.decide, user_id, action_id, digest, to, who, error, resealed)
    async def claim_action(self, action_id: str) -> StoredAction | None:
        return await self._db.write(actions.claim, action_id)
    async def record_staged(self, action_id: str, staged: dict[str, Any]) -> bool:
        return await self._db.write(actions.record_staged, action_id, staged)
    async def release_action(self, action_id: str, error: str) -> None:
        await self._db.write(actions.release, action_id, error)
    async def finish_action(self, action_id: str, status: str, result: dict[str, Any] | None,
                            error: str | None) -> None:
        await self._db.write(actions.finish, action_id, status, result, error)
    async def due_actions(self, include_executing: bool) -> list[str]:
        return actions.due(self._conn, include_executing)
    async def proposed_counts(self, task_id: str | None, run_id: str | None) -> tuple[int, int]:
        return actions.proposed_counts(self._conn, task_id, run_id)
    async def runs_with_actions(self, run_ids: list[str], statuses: list[str]) -> set[str]:
        return actions.runs_with(self._conn, run_ids, statuses)

    async def every_action(self) -> list[StoredAction]:
        return actions.every_sealed(self._conn)
    async def reseal_action(self, action_id: str, sealed: Sealed, nonce: bytes) -> bool:
        return await self._db.apply(actions.reseal, action_id, sealed, nonce)
    async def action_owners(self, action_ids: list[str]) -> dict[str, str]:
        return actions.owners(self._conn, action_ids)

    async def policies(self) -> dict[str, str]:
        return actions.policies(self._conn)
    async def set_policies(self, changes: dict[str, str], who: str) -> None:
        await self._db.write(actions.set_policies, changes, who)
    async def delegates(self, owner_id: str) -> list[Person]:
        return delegates.named_by(self._conn, owner_id)
    async def delegators(self, delegate_id: str) -> list[Person]:
        return delegates.naming(self._conn, delegate_id)
    async def set_delegates(self, owner_id: str, names: list[str]) -> tuple[list[Person], list[Person]]:
        return await self._db.write(delegates.set_delegates, owner_id, names)

    async def record_audit(self, entry: AuditEntry) -> None:
        await self._db.apply(actions.audit, entry)
    async def audit_entries(self, user_id: str | None, run_id: str | None, action: str | None,
                            limit: int) -> list[AuditEntry]:
        return actions.audit_entries(self._conn, user_id, run_id, action, limit)

    # --- accounts (actors.storage.accounts): users, sessions, API tokens, invites ---------------

    async def create_user(self, user_id: str, name: str, role: Role, password_hash: str | None) -> UserView:
        return await self._db.write(accounts.create_user, user_id, name, role, password_hash)
    async def users(self) -> list[UserView]:
        return accounts.list_users(self._conn)
    async def change_user(self, user_id: str, role: Role | None, disabled: bool | None,
                          password_hash: str | None) -> UserView:
        return await self._db.write(accounts.change_user, user_id, role, disabled, password_hash)
    async def login_record(self, name: str) -> UserLogin | None:
        return accounts.login_record(self._conn, name)

    async def add_credential(self, kind: CredentialKind, user_id: str, secret_hash: str, name: str,
                             expires_at: float | None) -> str:
        return await self._db.write(accounts.add_credential, kind, user_id, secret_hash, name, expires_at)
    async def authenticate(self, kind: Literal["session", "api_token"], secret_hash: str,
                           idle_s: float) -> UserView | None:
        return await accounts.authenticate(self._db, kind, secret_hash, idle_s)
    async def redeem_invite(self, secret_hash: str, password_hash: str) -> UserView:
        return await self._db.write(accounts.redeem_invite, secret_hash, password_hash)
    async def end_credentials(self, kind: CredentialKind, user_id: str, secret_hash: str | None,
                              credential_id: str | None) -> int:
        return await self._db.write(accounts.end_credentials, kind, user_id, secret_hash, credential_id)
    async def api_tokens(self, user_id: str) -> list[ApiTokenView]:
        return accounts.api_tokens(self._conn, user_id)

    # --- integrations' credentials and OAuth states, sealed (actors.storage.credentials) ---------

    async def load_credential(self, user_id: str, provider: str) -> StoredCredential | None:
        return credentials.load(self._conn, user_id, provider)
    async def credential_id(self, user_id: str, provider: str) -> str | None:
        return credentials.id_of(self._conn, user_id, provider)
    async def save_credential(self, row_id: str, user_id: str, provider: str, scopes: list[str],
                              sealed: Sealed) -> None:
        await self._db.write(credentials.save, row_id, user_id, provider, scopes, sealed)
    async def update_credential_tokens(self, row_id: str, sealed: Sealed) -> None:
        await self._db.write(credentials.update_tokens, row_id, sealed)
    async def set_credential_status(self, row_id: str, status: str, reason: str | None) -> None:
        await self._db.write(credentials.set_status, row_id, status, reason)
    async def forget_credential(self, user_id: str, provider: str) -> None:
        await self._db.apply(credentials.forget, user_id, provider)

    async def put_oauth_state(self, state: str, user_id: str, provider: str, features: list[str], redirect_uri: str,
                              sealed: Sealed, ttl_s: float) -> None:
        await self._db.write(credentials.put_state_for, state, user_id, provider, features, redirect_uri, sealed, ttl_s)
    async def take_oauth_state(self, state: str) -> OAuthState | None:
        return await self._db.write(credentials.take_state, state)

    async def sealed_rows(self, table: SealedTable, key_id: str) -> list[SealedRow]:
        return credentials.not_under(self._conn, table, key_id)
    async def reseal_row(self, table: SealedTable, row_id: str, sealed: Sealed, old_key_id: str) -> None:
        await self._db.apply(credentials.reseal, table, row_id, sealed, old_key_id)


ActorStore = actor_class(Store)  # what Ray runs (see actors.runtime.boot)
