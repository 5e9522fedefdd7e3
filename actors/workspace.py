"""The Workspace actor: the one owner of Google credentials and of the actions that leave the machine.

- ``google`` runs a read or draft operation for a sub-agent, refreshing the access token as
  needed; when refresh fails the integration shows "reconnect" and the step waits.
- ``propose`` records a gated action (encrypted), then applies the user's policy: ask (a person
  decides), allow (run now), deny. Nothing a tool or a document says can approve anything: only
  ``approve``/``edit``/``batch`` do, called by the HTTP API for a signed-in person.
- Approved actions run once: claimed (approved → executing) under their idempotency key, done
  with the ids of what happened; after a crash, an action left executing is looked up in Google
  before it is retried, and one that cannot be checked goes to a person (needs_review).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from typing import Any

import structlog
from google.auth.exceptions import RefreshError

from actors import _actions_sql as sql
from actors._action_args import PROVIDER, args_hash, check_arguments, scrub
from actors._boot import actor_class
from actors._executor import NoProvider, already_done, perform
from actors._google_accounts import GoogleAccounts, NoServices, Session
from actors._grounding import ground
from actors._proposals import ProposalGate, proposal_key
from actors._vault import Vault
from actors.handles import Handle
from core.action_schemas import (
    ActionType,
    ActionView,
    AuditEntry,
    BatchItem,
    BatchResult,
    Policy,
)
from core.crypto import Sealer
from core.errors import (
    ApprovalRefused,
    ConfigError,
    GoogleApiError,
    IntegrationUnavailable,
    ToolError,
)
from core.settings import Settings
from integrations.google import oauth
from integrations.google.api import RetryPolicy, retry_policy
from integrations.google.ops import FEATURE_LABELS, OPS, features_granted

_log = structlog.get_logger("maos.workspace")
SWEEP_S = 5.0


def _serially(fn: Any, session: Any, policy: RetryPolicy) -> Any:
    """``fn(session)`` in this worker thread: one call of the user's at a time, retrying rate limits
    and server errors under ``policy``."""
    lock = getattr(session, "serial", None) or threading.Lock()
    with lock, retry_policy(policy):
        return fn(session)


class Workspace(GoogleAccounts):
    def __init__(self, settings: Settings, store: Handle, sweep: bool = True) -> None:
        self._settings = settings
        self._store = store
        sealer = Sealer.from_settings(settings)
        self._vault = Vault(store, sealer) if sealer else None
        self._retry = RetryPolicy(settings.google_retries, settings.google_backoff_s)
        self._sessions: dict[str, Session] = {}
        self._known: dict[str, tuple[float | None, set[str]]] = {}  # see GoogleAccounts._reviewed
        self._locks: dict[str, asyncio.Lock] = {}
        self._gate = ProposalGate(store, settings.max_proposals_per_step, settings.max_proposals_per_run)
        self._running: set[str] = set()
        self._sweeper: asyncio.Task[None] | None = None
        self._sweep = sweep
        if sweep:  # as an actor: runs what a previous incarnation left approved or executing
            try:
                self._sweeper = asyncio.get_running_loop().create_task(self._sweep_forever())
            except RuntimeError:  # built outside a loop: nothing is carried out here
                pass

    @property
    def vault(self) -> Vault:
        if self._vault is None:
            raise ToolError("outbound actions need ENCRYPTION_KEY (their content is encrypted at rest)")
        return self._vault

    async def ping(self) -> bool:
        return True

    # --- Google for sub-agents -------------------------------------------------------------

    async def google(self, user_id: str, op: str, args: dict[str, Any]) -> Any:
        spec = OPS.get(op)
        if spec is None:
            raise ToolError(f"unknown Google operation '{op}'; known: {', '.join(sorted(OPS))}")
        session = await self._session(user_id)
        if spec.feature not in features_granted(session.creds.scopes or []):
            raise ToolError(f"the Google grant does not include '{FEATURE_LABELS[spec.feature]}': ask the user to "
                            "turn it on in Integrations and reconnect")
        return await self._call(user_id, session, lambda s: spec.fn(s.get(spec.service), **args))

    async def _call(self, user_id: str, session: Session, fn: Any) -> Any:
        """``fn(session)`` in a thread; one refresh and retry on 401; Google's errors for the model."""
        for attempt in (1, 2):
            try:
                return await asyncio.to_thread(_serially, fn, session, self._retry)
            except GoogleApiError as exc:
                if exc.status == 401 and attempt == 1:
                    await self._refresh(user_id, session, force=True)
                    continue
                raise ToolError(str(exc)) from None
            except RefreshError:
                await self._refresh(user_id, session, force=True)
            except TypeError as exc:
                raise ToolError(f"bad arguments: {exc}") from None
        raise IntegrationUnavailable("Google keeps refusing the credentials: reconnect it")

    async def _session(self, user_id: str) -> Session:
        lock = self._locks.setdefault(user_id, asyncio.Lock())
        async with lock:
            session = self._sessions.get(user_id)
            if session is None:
                if self._vault is None or oauth.configured(self._settings) is not None:
                    raise IntegrationUnavailable("Google is not set up on this installation: "
                                                 + (oauth.configured(self._settings) or "no encryption key"))
                loaded = await self._vault.load(user_id)
                if loaded is None:
                    raise IntegrationUnavailable("Google is not connected: connect it on the Integrations page")
                row_id, tokens, info = loaded
                if info["status"] == "reconnect":
                    raise IntegrationUnavailable(info["reason"] or "Google needs reconnecting")
                session = Session(row_id, oauth.credentials(self._settings, tokens), info["account"],
                                   self._settings.google_api_endpoint)
                self._sessions[user_id] = session
            if not session.creds.valid:
                await self._refresh(user_id, session)
            return session

    async def _refresh(self, user_id: str, session: Session, force: bool = False) -> None:
        if not force and session.creds.valid:
            return
        try:
            await asyncio.to_thread(oauth.refresh, session.creds)
        except IntegrationUnavailable as exc:
            self._sessions.pop(user_id, None)
            await self.vault.set_status(session.row_id, "reconnect", str(exc))
            await self._audit(user_id, "system", "google.reconnect_needed", subject_id=session.row_id)
            _log.warning("google.refresh_failed", user_id=user_id)
            raise
        await self.vault.update_tokens(session.row_id, user_id, oauth.token_set(session.creds), session.account)

    # --- proposing and deciding ------------------------------------------------------------

    async def propose(self, user_id: str, run_id: str | None, task_id: str | None, idempotency_key: str,
                      action: ActionType, arguments: dict[str, Any]) -> ActionView:
        args = await ground(action, check_arguments(action, arguments), lambda fn: self._read_google(user_id, fn))
        digest = args_hash(action, args)
        policy = (await self.policies(user_id))[action]
        status = {"ask": "pending", "allow": "approved", "deny": "rejected"}[policy]
        key, sealer = proposal_key(idempotency_key, action, args), self.vault.sealer  # caps: actors._proposals
        async with self._gate.lock(run_id):
            await self._gate.admit(key=key, digest=digest, action=action, task_id=task_id, run_id=run_id)
            row = await sql.insert_action(self._store, sealer, user_id=user_id, run_id=run_id, task_id=task_id,
                                          key=key, action=action, args=args, digest=digest, status=status,
                                          ttl_s=self._settings.approval_ttl_s,
                                          decided_by=None if policy == "ask" else "policy")
        if row.created:
            await self._audit(user_id, "agent", f"{action}.proposed", run_id=run_id, task_id=task_id,
                              subject_id=row.view.id, detail={"policy": policy})
            if policy == "allow":
                await self._audit(user_id, "policy", "approval.approved", run_id=run_id, task_id=task_id,
                                  subject_id=row.view.id, approved_by="policy")
                self._kick(row.view.id)
        return row.view

    async def list_actions(self, user_id: str, status: str | None = None, run_id: str | None = None,
                           limit: int = 200) -> list[ActionView]:
        if self._vault is None and not await self._store.call("read", "SELECT 1 FROM actions LIMIT 1"):
            return []  # without a key nothing could have been proposed: an empty list, not an error
        return await self._reviewed(user_id, await sql.list_actions(self._store, self.vault.sealer, user_id, status,
                                                                    run_id, limit))

    async def get_action(self, user_id: str, action_id: str) -> ActionView:
        return (await self._reviewed(user_id, [await sql.get_action(self._store, self.vault.sealer, user_id,
                                                                    action_id)]))[0]

    async def approve(self, user_id: str, action_id: str, digest: str, approver: str) -> ActionView:
        view = await sql.decide(self._store, self.vault.sealer, user_id, action_id, digest, "approved", approver)
        await self._audit(user_id, approver, "approval.approved", run_id=view.run_id, task_id=view.task_id,
                          subject_id=action_id, approved_by=approver)
        self._kick(action_id)
        return view

    async def reject(self, user_id: str, action_id: str, reason: str, who: str) -> ActionView:
        view = await sql.decide(self._store, self.vault.sealer, user_id, action_id, None, "rejected", who,
                                error=scrub(reason) if reason else None)
        await self._audit(user_id, who, "approval.rejected", run_id=view.run_id, task_id=view.task_id,
                          subject_id=action_id)
        return view

    async def edit(self, user_id: str, action_id: str, digest: str, arguments: dict[str, Any],
                   approver: str) -> ActionView:
        """Edit then approve: the edited arguments become a new action, approved; the old one is superseded."""
        old = await sql.get_action(self._store, self.vault.sealer, user_id, action_id)
        args = check_arguments(old.action, {**arguments, **({"thread_id": old.arguments["thread_id"]}
                                                            if old.action == "reply_email" else {})})
        args = await ground(old.action, args, lambda fn: self._read_google(user_id, fn), by_person=True)
        await sql.decide(self._store, self.vault.sealer, user_id, action_id, digest, "superseded", approver)
        new_digest = args_hash(old.action, args)
        row = await sql.insert_action(self._store, self.vault.sealer, user_id=user_id, run_id=old.run_id,
                                      task_id=old.task_id, key=f"{action_id}:edit:{new_digest[:16]}",
                                      action=old.action, args=args, digest=new_digest, status="approved",
                                      ttl_s=self._settings.approval_ttl_s, decided_by=approver, replaces=action_id)
        await self._audit(user_id, approver, "approval.edited_and_approved", run_id=old.run_id, task_id=old.task_id,
                          subject_id=row.view.id, approved_by=approver, detail={"replaces": action_id})
        self._kick(row.view.id)
        return row.view

    async def batch(self, user_id: str, decision: str, items: list[BatchItem], who: str) -> BatchResult:
        if decision == "approve":  # never an outlier (new outside recipient, Reply-To): one by one
            await self._refuse_outliers(user_id, items)
        done: list[str] = []
        refused: dict[str, str] = {}
        for item in items:
            try:
                if decision == "approve":
                    await self.approve(user_id, item.id, item.args_hash, who)
                else:
                    await self.reject(user_id, item.id, "", who)
                done.append(item.id)
            except ApprovalRefused as exc:
                refused[item.id] = str(exc)
        return BatchResult(done=done, refused=refused)

    async def policies(self, user_id: str) -> dict[str, Policy]:
        return await sql.policies(self._store, user_id)

    async def set_policies(self, user_id: str, changes: dict[str, Policy], who: str) -> dict[str, Policy]:
        await sql.set_policies(self._store, user_id, changes)
        await self._audit(user_id, who, "policy.changed", detail={k: v for k, v in changes.items()})
        return await self.policies(user_id)

    async def audit(self, user_id: str, run_id: str | None = None, action: str | None = None,
                    limit: int = 200) -> list[AuditEntry]:
        return await sql.audit_entries(self._store, user_id, run_id, action, limit)

    async def rotate_keys(self, key_id: str) -> dict[str, int]:
        """Re-encrypt under the current key, which must be ``key_id`` (the caller's ENCRYPTION_KEY)."""
        if self.vault.sealer.key_id != key_id:
            raise ConfigError("the running app has another ENCRYPTION_KEY: restart it with ENCRYPTION_KEY=NEW "
                              "ENCRYPTION_OLD_KEYS=OLD, then rotate")
        return await self.vault.rotate()

    async def _audit(self, user_id: str | None, actor: str, what: str, *, run_id: str | None = None,
                     task_id: str | None = None, subject_id: str | None = None, approved_by: str | None = None,
                     detail: dict[str, Any] | None = None) -> None:
        await self._store.call(
            "write", "INSERT INTO audit_log (id, occurred_at, actor, action, run_id, task_id, detail, user_id, "
                     "subject_id, approved_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [uuid.uuid4().hex, time.time(), actor, what, run_id, task_id, json.dumps(detail or {}), user_id,
             subject_id, approved_by])

    # --- carrying out, exactly once ---------------------------------------------------------

    def _kick(self, action_id: str) -> None:
        if self._sweep and action_id not in self._running:
            self._running.add(action_id)
            task = asyncio.get_running_loop().create_task(self._execute(action_id))
            task.add_done_callback(lambda _: self._running.discard(action_id))

    async def _kick_due(self, include_executing: bool = False) -> None:
        """Carry out what is approved (and, right after a start, what a crash left executing)."""
        if self._vault is not None:
            for action_id in await sql.due(self._store, include_executing=include_executing):
                self._kick(action_id)

    async def _sweep_forever(self) -> None:
        """On start: actions left executing are reconciled; approved ones run. Then every few seconds."""
        first = True
        while True:
            try:
                await self._kick_due(include_executing=first)
                first = False
            except Exception as exc:  # the Store restarting: try again next round
                _log.warning("workspace.sweep_failed", error=str(exc))
            await asyncio.sleep(SWEEP_S)

    async def _execute(self, action_id: str) -> None:
        claimed = await sql.claim(self._store, self.vault.sealer, action_id)
        if claimed is None:
            return
        view, staged = claimed.view, claimed.staged
        provider = PROVIDER[view.action]
        loop = asyncio.get_running_loop()

        def record(what: dict[str, Any]) -> None:  # from the worker thread; committed when it returns
            asyncio.run_coroutine_threadsafe(sql.record_staged(self._store, action_id, what), loop).result(60)

        try:
            session: Session | NoServices = (await self._session(view.user_id) if provider == "google"
                                               else NoServices())
            result = None
            if claimed.attempts > 1:  # an earlier attempt may have happened: look before redoing
                try:
                    result = await asyncio.to_thread(_serially, lambda s: already_done(
                        view.action, view.arguments, action_id, s, staged), session, self._retry)
                except Exception as exc:
                    await self._finish(view, "needs_review", error=scrub(
                        f"could not check whether it already happened ({exc}); look in Google, then retry or reject"))
                    return
            if result is None:
                result = await asyncio.to_thread(_serially, lambda s: perform(
                    view.action, view.arguments, action_id, s, staged, record), session, self._retry)
        except IntegrationUnavailable as exc:
            await sql.release(self._store, action_id, scrub(str(exc)))  # back to approved: runs after reconnecting
            return
        except (GoogleApiError, NoProvider, ToolError) as exc:
            retry = isinstance(exc, GoogleApiError) and exc.retryable
            if retry:
                await sql.release(self._store, action_id, scrub(str(exc)))
                return
            await self._finish(view, "failed", error=scrub(str(exc)))
            return
        await self._finish(view, "done", result=result)

    async def _finish(self, view: ActionView, status: str, result: dict[str, Any] | None = None,
                      error: str | None = None) -> None:
        await sql.finish(self._store, view.id, status, result, error)
        await self._audit(view.user_id, "system", f"{view.action}.{status}", run_id=view.run_id, task_id=view.task_id,
                          subject_id=view.id, approved_by=view.decided_by, detail=result or {})
        _log.info("action.finished", action_id=view.id, action=view.action, status=status)


ActorWorkspace = actor_class(Workspace)  # what Ray runs (see actors._boot)
