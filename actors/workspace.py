"""The Workspace actor: the one owner of the integrations' credentials and of the actions that
leave the machine. Each integration is a provider registered in ``integrations.registry`` (Google
first); this actor holds them (``integrations.actions.providers``) and goes through them. Its work is
done by the plain modules of ``integrations.actions``.

- ``google`` runs a Google read or draft operation for a sub-agent, refreshing the access token
  as needed; when refresh fails the integration shows "reconnect" and the step waits.
- ``propose`` records a gated action (encrypted), then applies the install's policy for its type
  (one for everyone, set by an admin): ask (a person decides), allow (run now), deny. Nothing a tool
  or a document says can approve anything: only ``approve``/``edit``/``batch`` do, called by the HTTP
  API for a signed-in person.
- Who decides: the action's owner, or a delegate the owner named (``set_delegates``); for anyone
  else the action does not exist (NotFound, as an unknown id). An admin is no delegate unless named.
  A delegate's decision is recorded with the delegate as the deciding actor and the owner as
  ``user_id``; a removed delegate is refused from the next request on.
- Approved actions run once: claimed (approved → executing) under their idempotency key, done
  with the ids of what happened, by the provider registered for its type (``integrations.actions.executor``);
  after a crash, an action left executing is looked up at its provider before it is retried, and
  one that cannot be checked goes to a person (needs_review).
"""

from __future__ import annotations

import asyncio
from typing import Any

import structlog

from actors.runtime.apis import StoreApi
from actors.runtime.boot import actor_class
from actors.runtime.handles import Handle
from actors.runtime.typed import typed
from core.action_schemas import (
    ActionType,
    ActionView,
    AuditEntry,
    BatchItem,
    BatchResult,
    ConnectStart,
    DelegatesView,
    IntegrationView,
    Policy,
)
from core.crypto import Sealer
from core.errors import ApprovalRefused, ConfigError, NotFound
from core.settings import Settings
from integrations.actions import ledger as sql
from integrations.actions.args import args_hash, check_arguments, scrub
from integrations.actions.executor import carry_out
from integrations.actions.proposals import ProposalGate, proposal_key
from integrations.actions.providers import Integrations
from integrations.actions.vault import Vault
from integrations.google.oauth import TokenSet
from integrations.registry import NoProvider, Provider

_log = structlog.get_logger("maos.workspace")
SWEEP_S = 5.0


class Workspace:
    def __init__(self, settings: Settings, store: Handle, sweep: bool = True) -> None:
        self._settings = settings
        self._store = typed(store, StoreApi)
        sealer = Sealer.from_settings(settings)
        self._vault = Vault(self._store, sealer) if sealer else None
        # The providers, built on first use; what waited for a connection runs once it is made.
        self._integrations = Integrations(settings, self._store, self._vault, on_connected=self._kick_due)
        self._gate = ProposalGate(self._store, settings.max_proposals_per_step, settings.max_proposals_per_run)
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
        return self._integrations.vault  # ToolError without ENCRYPTION_KEY

    async def ping(self) -> bool:
        return True

    # --- the providers (``integrations.actions.providers``) ---------------------------------

    def provider(self, name: str) -> Provider:
        return self._integrations.provider(name)

    def provider_for(self, action: str) -> Provider:
        return self._integrations.provider_for(action)

    async def integrations(self, user_id: str) -> list[IntegrationView]:
        return await self._integrations.integrations(user_id)

    async def status(self, user_id: str, provider: str = "google") -> IntegrationView:
        return await self._integrations.status(user_id, provider)

    async def connect_start(self, user_id: str, features: list[str] | None,
                            provider: str = "google") -> ConnectStart:
        return await self._integrations.connect_start(user_id, features, provider)

    async def connect_finish(self, state: str, code: str, provider: str = "google") -> IntegrationView:
        return await self._integrations.connect_finish(state, code, provider)

    async def connect_tokens(self, user_id: str, tokens: TokenSet) -> IntegrationView:
        return await self._integrations.connect_tokens(user_id, tokens)

    async def disconnect(self, user_id: str, provider: str = "google") -> IntegrationView:
        return await self._integrations.disconnect(user_id, provider)

    # --- Google for sub-agents -------------------------------------------------------------

    async def google(self, user_id: str, op: str, args: dict[str, Any]) -> Any:
        return await self._integrations.google().run_op(user_id, op, args)

    async def _ground(self, user_id: str, action: ActionType, args: dict[str, Any], by_person: bool = False
                      ) -> dict[str, Any]:
        """Checked ``args`` with what a person must see read by the action's provider from the real objects."""
        try:
            provider = self.provider_for(action)
        except NoProvider:  # nothing to read: proposed as it is, it fails when carried out
            return args
        return await provider.ground(user_id, action, args, by_person)

    # --- proposing and deciding ------------------------------------------------------------

    async def propose(self, user_id: str, run_id: str | None, task_id: str | None, idempotency_key: str,
                      action: ActionType, arguments: dict[str, Any]) -> ActionView:
        args = await self._ground(user_id, action, check_arguments(action, arguments))
        digest = args_hash(action, args)
        policy = (await self.policies())[action]
        status = {"ask": "pending", "allow": "approved", "deny": "rejected"}[policy]
        key, sealer = proposal_key(idempotency_key, action, args), self.vault.sealer  # caps: see proposals
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

    # ``user_id`` below is the person asking: the owner of the actions, or a delegate the owner named.

    async def _owners(self, user_id: str) -> list[str]:
        """Whose actions ``user_id`` may see and decide: their own, and of those who named them delegate."""
        return [user_id, *(p.id for p in await self._store.delegators(delegate_id=user_id))]

    async def _owner_of(self, user_id: str, action_id: str) -> str | None:
        """The owner of ``action_id`` when ``user_id`` may see and decide it; None otherwise (as for an unknown id)."""
        owner = (await self._store.action_owners(action_ids=[action_id])).get(action_id)
        return owner if owner is not None and owner in await self._owners(user_id) else None

    async def _decider_for(self, user_id: str, action_id: str) -> str:
        """The owner of the action ``user_id`` is deciding; refused as unknown (404) when it is not theirs to decide."""
        owner = await self._owner_of(user_id, action_id)
        if owner is None:
            raise ApprovalRefused(f"no action '{action_id}' awaits your decision", "unknown")
        return owner

    @staticmethod
    def _shown_to(user_id: str, view: ActionView) -> bool:
        """A delegate sees the owner's actions that wait for a decision, and those the delegate decided:
        not the rest of the owner's history."""
        return view.user_id == user_id or view.status in ("pending", "expired") or view.decided_by == user_id

    async def list_actions(self, user_id: str, status: str | None = None, run_id: str | None = None,
                           limit: int = 200) -> list[ActionView]:
        """The caller's actions and those of whoever named them delegate that the caller may see (each view
        says whose: ``user_id``); newest first, ``limit`` of them."""
        if self._vault is None and not await self._store.has_actions():
            return []  # without a key nothing could have been proposed: an empty list, not an error
        views: list[ActionView] = []
        for owner in await self._owners(user_id):
            found = await sql.list_actions(self._store, self.vault.sealer, owner, status, run_id, limit)
            views += await self._integrations.reviewed(owner, [v for v in found if self._shown_to(user_id, v)])
        return sorted(views, key=lambda v: (-v.created_at, v.id))[:limit]

    async def get_action(self, user_id: str, action_id: str) -> ActionView:
        owner = await self._owner_of(user_id, action_id)
        view = None if owner is None else await sql.get_action(self._store, self.vault.sealer, owner, action_id)
        if owner is None or view is None or not self._shown_to(user_id, view):
            raise NotFound(f"no action '{action_id}'")
        return (await self._integrations.reviewed(owner, [view]))[0]

    @staticmethod
    def _as_delegate(owner: str, who: str) -> dict[str, Any]:
        return {} if owner == who else {"delegate_of": owner}

    async def approve(self, user_id: str, action_id: str, digest: str, approver: str) -> ActionView:
        owner = await self._decider_for(user_id, action_id)
        view = await sql.decide(self._store, self.vault.sealer, owner, action_id, digest, "approved", approver)
        await self._audit(owner, approver, "approval.approved", run_id=view.run_id, task_id=view.task_id,
                          subject_id=action_id, approved_by=approver, detail=self._as_delegate(owner, approver))
        self._kick(action_id)
        return view

    async def reject(self, user_id: str, action_id: str, reason: str, who: str) -> ActionView:
        owner = await self._decider_for(user_id, action_id)
        view = await sql.decide(self._store, self.vault.sealer, owner, action_id, None, "rejected", who,
                                error=scrub(reason) if reason else None)
        await self._audit(owner, who, "approval.rejected", run_id=view.run_id, task_id=view.task_id,
                          subject_id=action_id, detail=self._as_delegate(owner, who))
        return view

    async def edit(self, user_id: str, action_id: str, digest: str, arguments: dict[str, Any],
                   approver: str) -> ActionView:
        """Edit then approve: the edited arguments become a new action of the same owner, approved; the
        old one is superseded."""
        owner = await self._decider_for(user_id, action_id)
        old = await sql.get_action(self._store, self.vault.sealer, owner, action_id)
        args = check_arguments(old.action, {**arguments, **({"thread_id": old.arguments["thread_id"]}
                                                            if old.action == "reply_email" else {})})
        args = await self._ground(owner, old.action, args, by_person=True)
        await sql.decide(self._store, self.vault.sealer, owner, action_id, digest, "superseded", approver)
        new_digest = args_hash(old.action, args)
        row = await sql.insert_action(self._store, self.vault.sealer, user_id=owner, run_id=old.run_id,
                                      task_id=old.task_id, key=f"{action_id}:edit:{new_digest[:16]}",
                                      action=old.action, args=args, digest=new_digest, status="approved",
                                      ttl_s=self._settings.approval_ttl_s, decided_by=approver, replaces=action_id)
        await self._audit(owner, approver, "approval.edited_and_approved", run_id=old.run_id, task_id=old.task_id,
                          subject_id=row.view.id, approved_by=approver,
                          detail={"replaces": action_id, **self._as_delegate(owner, approver)})
        self._kick(row.view.id)
        return row.view

    async def batch(self, user_id: str, decision: str, items: list[BatchItem], who: str) -> BatchResult:
        if decision == "approve":  # never an outlier (new outside recipient, Reply-To): one by one
            owners = await self._store.action_owners(action_ids=[i.id for i in items])
            mine = await self._owners(user_id)
            for owner in dict.fromkeys(o for o in owners.values() if o in mine):
                await self._integrations.refuse_outliers(owner, [i for i in items if owners.get(i.id) == owner])
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

    async def policies(self) -> dict[str, Policy]:
        """The install's policy per action type: one for everyone's agents."""
        return await sql.policies(self._store)

    async def set_policies(self, changes: dict[str, Policy], who: str) -> dict[str, Policy]:
        """An admin's change (the HTTP API checks the role and, to widen to allow, the re-authentication)."""
        await sql.set_policies(self._store, changes, who)
        await self._audit(None, who, "policy.changed", detail={k: v for k, v in changes.items()})
        return await self.policies()

    # --- approval delegates (``actors.storage.delegates``) ----------------------------------

    async def delegates(self, user_id: str) -> DelegatesView:
        return DelegatesView(delegates=await self._store.delegates(owner_id=user_id),
                             delegate_for=await self._store.delegators(delegate_id=user_id))

    async def set_delegates(self, user_id: str, delegates: list[str]) -> DelegatesView:
        """``user_id``'s delegates become ``delegates`` (ids or login names of enabled users, never
        themselves); audited as ``approval.delegated`` when anything changed."""
        added, removed = await self._store.set_delegates(owner_id=user_id, names=delegates)
        if added or removed:
            await self._audit(user_id, user_id, "approval.delegated",
                              detail={"added": [p.id for p in added], "removed": [p.id for p in removed]})
        return await self.delegates(user_id)

    async def audit(self, user_id: str | None, run_id: str | None = None, action: str | None = None,
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
        await sql.audit(self._store, user_id, actor, what, run_id=run_id, task_id=task_id, subject_id=subject_id,
                        approved_by=approved_by, detail=detail)

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

        async def record(what: dict[str, Any]) -> None:  # what was staged: committed when it returns
            await sql.record_staged(self._store, action_id, what)

        outcome = await carry_out(self.provider_for, claimed.view, claimed.attempts, claimed.staged, record)
        if outcome.status == "released":  # back to approved: runs after reconnecting, or later
            await sql.release(self._store, action_id, outcome.error or "")
            return
        await self._finish(claimed.view, outcome.status, result=outcome.result, error=outcome.error)

    async def _finish(self, view: ActionView, status: str, result: dict[str, Any] | None = None,
                      error: str | None = None) -> None:
        await sql.finish(self._store, view.id, status, result, error)
        await self._audit(view.user_id, "system", f"{view.action}.{status}", run_id=view.run_id, task_id=view.task_id,
                          subject_id=view.id, approved_by=view.decided_by, detail=result or {})
        _log.info("action.finished", action_id=view.id, action=view.action, status=status)


ActorWorkspace = actor_class(Workspace)  # what Ray runs (see actors.runtime.boot)
