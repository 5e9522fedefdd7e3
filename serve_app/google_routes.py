"""Integrations (each registered provider: ``/api/integrations/{provider}/…``; Google's paths are
these with ``google``), approvals of gated actions, approval policies and the audit log.

Decisions are made here, for the signed-in person, and nowhere else: an approval quotes the
``args_hash`` of what the person saw, is used once, and only for that person's own actions or those
of someone who named them their delegate (anyone else's action is a 404, as an unknown id is; an
admin is no delegate unless named). Approval policies are the install's, one per action type for
everyone's agents: everyone reads them, an admin sets them (:mod:`serve_app.callers`).
"""

from __future__ import annotations

from html import escape
from typing import Literal
from urllib.parse import urlencode

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from core.action_schemas import (
    ActionStatus,
    ActionView,
    ApprovalGroup,
    AuditEntry,
    BatchDecision,
    BatchResult,
    ConnectRequest,
    ConnectStart,
    Decision,
    DelegatesChange,
    DelegatesView,
    EditDecision,
    IntegrationView,
    PolicyView,
    Rejection,
)
from core.errors import ApprovalRefused, Conflict, NotFound
from core.recipients import pending_groups
from integrations import registry
from serve_app.access import RuntimeAccess
from serve_app.auth import require_reauth
from serve_app.callers import PUBLIC, Admin, Member
from serve_app.user_limits import limited


def build_google_routes(rt: RuntimeAccess, with_ui: bool) -> APIRouter:
    r = APIRouter(prefix="/api")

    # --- integrations ------------------------------------------------------------------------

    def known(provider: str) -> str:
        """``provider`` if registered; 404 naming the known ones otherwise."""
        names = [p.name for p in registry.registered()]
        if provider not in names:
            raise HTTPException(404, f"unknown integration '{provider}'; known: {', '.join(names) or 'none'}")
        return provider

    @r.get("/integrations", response_model=list[IntegrationView], tags=["integrations"])
    async def integrations(who: Member) -> list[IntegrationView]:
        """Every registered integration and its state (connected, reconnect, not configured …)."""
        return await rt.workspace.integrations(who.user_id)

    @r.get("/integrations/{provider}", response_model=IntegrationView, tags=["integrations"])
    async def integration(provider: str, who: Member) -> IntegrationView:
        """Where one integration stands: status, account, features granted, tasks waiting for it."""
        return await rt.workspace.status(user_id=who.user_id, provider=known(provider))

    @r.post("/integrations/{provider}/connect", response_model=ConnectStart, tags=["integrations"])
    async def connect(provider: str, body: ConnectRequest, who: Member) -> ConnectStart:
        """Start connecting for these features (Google: read-only ones by default); send the
        browser to ``authorization_url``."""
        return await rt.workspace.connect_start(user_id=who.user_id, features=body.features, provider=known(provider))

    @r.get("/integrations/{provider}/callback", include_in_schema=False, dependencies=[PUBLIC])
    async def callback(provider: str, state: str = "", code: str = "", error: str = "") -> Response:
        label = registry.get(known(provider)).label
        if error or not code or not state:
            reason = error or f"{label} sent no code"
            return _finish_page(with_ui, provider, False, f"{label} was not connected: {reason}")
        try:
            await rt.workspace.connect_finish(state=state, code=code, provider=provider)
        except ApprovalRefused as exc:
            return _finish_page(with_ui, provider, False, str(exc))
        return _finish_page(with_ui, provider, True, f"{label} is connected.")

    @r.post("/integrations/{provider}/disconnect", response_model=IntegrationView, tags=["integrations"])
    async def disconnect(provider: str, who: Member) -> IntegrationView:
        """Revoke the grant at the provider and forget the tokens."""
        return await rt.workspace.disconnect(user_id=who.user_id, provider=known(provider))

    # --- approvals ---------------------------------------------------------------------------

    @r.get("/approvals", response_model=list[ActionView], tags=["approvals"])
    async def approvals(who: Member, status: ActionStatus | None = None, run_id: str | None = None,
                        limit: int = Query(200, ge=1, le=1000)) -> list[ActionView]:
        """Proposed actions exactly as they would be carried out, newest first: yours, and those of
        whoever named you their delegate (``user_id`` says whose)."""
        return await rt.workspace.list_actions(user_id=who.user_id, status=status, run_id=run_id, limit=limit)

    @r.get("/approvals/policy", response_model=PolicyView, tags=["approvals"])
    async def get_policy(who: Member) -> PolicyView:
        """The install's policy per action type, for everyone's agents: ask (a person approves; the
        default), allow, or deny."""
        return PolicyView(policies=await rt.workspace.policies())

    @r.put("/approvals/policy", response_model=PolicyView, tags=["approvals"],
           responses={403: {"description": "A type becoming allow needs the login token again (X-Maos-Reauth)."}})
    async def put_policy(body: PolicyView, request: Request, who: Admin) -> PolicyView:
        """Set the install's policies (they apply to every member's agents). A type that becomes
        ``allow`` (its actions run with nobody approving) needs the login token again."""
        current = await rt.workspace.policies()
        widened = sorted(t for t, p in body.policies.items() if p == "allow" and current.get(t) != "allow")
        if widened:
            require_reauth(request, request.app.state.login, f"letting {', '.join(widened)} run without approval")
        return PolicyView(policies=await rt.workspace.set_policies(changes={k: v for k, v in body.policies.items()},
                                                                   who=who.user_id))

    @r.get("/approvals/delegates", response_model=DelegatesView, tags=["approvals"])
    async def get_delegates(who: Member) -> DelegatesView:
        """Whom you let decide your pending actions, and whose you may decide."""
        return await rt.workspace.delegates(user_id=who.user_id)

    @r.put("/approvals/delegates", response_model=DelegatesView, tags=["approvals"])
    async def put_delegates(body: DelegatesChange, who: Member) -> DelegatesView:
        """Name the people (user ids or login names) who may see, approve, edit and reject your pending
        actions besides you: the whole list; an empty one names nobody. A removal holds at once. A name
        that is no enabled user, or yourself, is refused (422) and nothing changes."""
        try:
            return await rt.workspace.set_delegates(user_id=who.user_id, delegates=body.delegates)
        except (NotFound, Conflict) as exc:
            raise HTTPException(422, str(exc)) from exc

    @r.get("/approvals/groups", response_model=list[ApprovalGroup], tags=["approvals"])
    async def approval_groups(who: Member, limit: int = Query(1000, ge=1, le=1000)) -> list[ApprovalGroup]:
        """Pending actions by group (run and type), each with every distinct recipient and domain,
        flagged external or new, and its outliers: a group with any cannot be approved all at once."""
        return pending_groups(await rt.workspace.list_actions(user_id=who.user_id, status="pending", run_id=None, limit=limit))

    @r.get("/approvals/{action_id}", response_model=ActionView, tags=["approvals"])
    async def approval(action_id: str, who: Member) -> ActionView:
        return await rt.workspace.get_action(user_id=who.user_id, action_id=action_id)

    @r.post("/approvals/batch", response_model=BatchResult, tags=["approvals"],
            responses={409: {"description": "An approval that holds outliers (a new outside recipient, a reply "
                                            "to a Reply-To): nothing is approved; approve those one by one."}},
            dependencies=limited("approvals"))
    async def batch(body: BatchDecision, who: Member) -> BatchResult:
        """Approve or reject many at once (each must quote the args_hash shown). An approval is
        refused as a whole when it holds an outlier (see ``GET /api/approvals/groups``)."""
        return await rt.workspace.batch(user_id=who.user_id, decision=body.decision, items=body.items, who=who.user_id)

    @r.post("/approvals/{action_id}/approve", response_model=ActionView, tags=["approvals"],
            responses={409: {"description": "Already decided, or the arguments differ from args_hash."},
                       410: {"description": "Expired."}}, dependencies=limited("approvals"))
    async def approve(action_id: str, body: Decision, who: Member) -> ActionView:
        """Approve this action as shown: it is carried out once."""
        return await rt.workspace.approve(user_id=who.user_id, action_id=action_id, digest=body.args_hash, approver=who.user_id)

    @r.post("/approvals/{action_id}/edit", response_model=ActionView, tags=["approvals"], dependencies=limited("approvals"))
    async def edit(action_id: str, body: EditDecision, who: Member) -> ActionView:
        """Edit then approve: the edited action (a new id) is carried out; this one is superseded."""
        return await rt.workspace.edit(user_id=who.user_id, action_id=action_id, digest=body.args_hash, arguments=body.arguments, approver=who.user_id)

    @r.post("/approvals/{action_id}/reject", response_model=ActionView, tags=["approvals"],
            dependencies=limited("approvals"))
    async def reject(action_id: str, body: Rejection, who: Member) -> ActionView:
        return await rt.workspace.reject(user_id=who.user_id, action_id=action_id, reason=body.reason, who=who.user_id)

    # --- audit -------------------------------------------------------------------------------

    @r.get("/audit", response_model=list[AuditEntry], tags=["audit"])
    async def audit(who: Member, run_id: str | None = None, action: str | None = None,
                    limit: int = Query(200, ge=1, le=2000)) -> list[AuditEntry]:
        """Sensitive actions: who asked, plan and step, who approved, what was done (ids), when. A member sees
        theirs (and the system's); an admin everyone's."""
        return await rt.workspace.audit(user_id=None if who.is_admin else who.user_id, run_id=run_id, action=action,
                                        limit=limit)

    return r


def _finish_page(with_ui: bool, provider: str, ok: bool, message: str) -> Response:
    if with_ui:
        outcome: Literal["connected", "failed"] = "connected" if ok else "failed"
        query = urlencode({"open": "integrations", provider: outcome, **({} if ok else {"reason": message})})
        return RedirectResponse(f"/?{query}", status_code=303)
    return HTMLResponse(f"<p>{'✔' if ok else '✖'} {escape(message)}</p>", status_code=200 if ok else 400)


def approval_status(exc: ApprovalRefused) -> int:
    """HTTP status of a refused decision."""
    return {"expired": 410, "used": 409, "mismatch": 409, "state": 400, "exchange": 400, "tampered": 409,
            "outliers": 409}.get(
        exc.reason, 404)
