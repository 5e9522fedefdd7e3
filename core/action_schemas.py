"""The models of integrations, gated actions (approvals) and the audit log, as the HTTP API and the
actors exchange them.

An *action* is anything that leaves the machine: sending mail, replying, creating, changing or
deleting events, creating Drive files, texting and calling. A sub-agent only ever *proposes* one;
what happens to it is decided by the install's policy for its type ("ask" by default: a person
approves it), and it is executed exactly once, under its idempotency key.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from core.schemas import _Model

ActionType = Literal[
    "send_email", "reply_email", "create_event", "update_event", "delete_event",
    "create_drive_file", "send_text", "place_call",
]
ACTION_TYPES: tuple[ActionType, ...] = (
    "send_email", "reply_email", "create_event", "update_event", "delete_event",
    "create_drive_file", "send_text", "place_call",
)
ACTION_LABELS: dict[str, str] = {
    "send_email": "Send email", "reply_email": "Reply to email", "create_event": "Create calendar event",
    "update_event": "Change calendar event", "delete_event": "Delete calendar event",
    "create_drive_file": "Create Drive file", "send_text": "Send text message", "place_call": "Place phone call",
}
Policy = Literal["ask", "allow", "deny"]
ActionStatus = Literal[
    "pending",       # waits for a person
    "approved",      # approved (by a person, or by an "allow" policy), not yet started
    "executing",     # started: it may or may not have happened; reconciled after a crash
    "done",          # happened once; ``result`` holds the ids
    "failed",        # did not happen; ``error`` says why
    "needs_review",  # unclear whether it happened: a person must look
    "rejected", "expired", "superseded",  # never happens (superseded: edited into a new action)
    "withdrawn",     # never happens: its run was cancelled (or stopped at a budget) before anyone decided
]
IntegrationStatus = Literal["not_configured", "disconnected", "connected", "reconnect"]
GoogleFeature = Literal["gmail_read", "gmail_write", "calendar_read", "calendar_write", "drive_read", "drive_write"]
READ_FEATURES: tuple[GoogleFeature, ...] = ("gmail_read", "calendar_read", "drive_read")


class FeatureInfo(_Model):
    name: str = Field(description="Feature key (Google: gmail_read, calendar_write, ...).")
    label: str = Field(description="What it lets agents do.")
    scopes: list[str] = Field(description="OAuth scopes it asks for.")
    enabled: bool = Field(description="Whether the current grant covers it.")


class IntegrationView(_Model):
    provider: str = Field("google", description="Integration (a registered provider's name).")
    label: str = Field("", description="What people call it: 'Google'.")
    status: IntegrationStatus = Field(description="not_configured: no client id/secret or encryption key; "
                                                  "reconnect: refresh failed, a person must connect again.")
    reason: str | None = Field(None, description="Why it is not connected (for reconnect and not_configured).")
    account: str | None = Field(None, description="The account connected (Google: its address).")
    features: list[FeatureInfo] = Field(default_factory=list, description="Features and whether each is granted.")
    connected_at: float | None = Field(None, description="When it was connected.")
    waiting_tasks: int = Field(0, description="Tasks waiting for this integration to be reconnected.")


class ConnectRequest(_Model):
    features: list[str] | None = Field(None, description="Features to grant (the provider's; none given: its "
                                                         "default, for Google the read-only ones).")


class ConnectStart(_Model):
    authorization_url: str = Field(description="Open this in the browser to grant access.")


class Recipient(_Model):
    """Someone an action reaches (an address, or a phone number), as a person should see it before approving."""

    address: str = Field(description="The address or phone number.")
    domain: str | None = Field(None, description="Its domain (None for a phone number).")
    roles: list[str] = Field(description="How it is reached: to, cc, attendee, new attendee, text, call.")
    source: str | None = Field(None, description="Where the address came from (a reply: the message's Reply-To, "
                                                 "From or To; or a person's edit).")
    external: bool = Field(description="Outside the user's own domain (for a public mail domain such as "
                                       "gmail.com: anyone but the user; always for a phone number).")
    new: bool = Field(description="Never approved before: no earlier action a person approved reached it.")


class ActionReview(_Model):
    """What a person must know before approving an action, computed from the real objects and the
    user's own history, never from text the model wrote."""

    recipients: list[Recipient] = Field(default_factory=list, description="Everyone it reaches, once each.")
    warnings: list[str] = Field(default_factory=list, description="Flags to read first (Reply-To differs from From, "
                                                                  "attendees being added, ...).")
    outliers: list[str] = Field(default_factory=list, description="Why it must be approved on its own, not with its "
                                                                  "group; empty: it may be approved with the group.")


class ActionView(_Model):
    """One proposed action exactly as it will be carried out."""

    id: str = Field(description="Action id.")
    action: ActionType = Field(description="What kind of action.")
    status: ActionStatus = Field(description="Where it stands.")
    summary: str = Field(description="One line: what will happen.")
    arguments: dict[str, Any] = Field(description="The exact arguments it runs with (recipients, subject, body; "
                                                  "event time and attendees; ...).")
    args_hash: str = Field(description="Hash of action and arguments: an approval must quote it.")
    run_id: str | None = Field(None, description="Run (plan) that proposed it.")
    task_id: str | None = Field(None, description="Step that proposed it.")
    user_id: str = Field(description="Whose action it is.")
    group: str = Field(description="Actions of one run and type share a group (approve them together).")
    created_at: float = Field(description="When it was proposed.")
    expires_at: float = Field(description="Past this, it can no longer be approved.")
    decided_by: str | None = Field(None, description="Who approved or rejected it ('policy' for an allow rule).")
    decided_at: float | None = Field(None, description="When.")
    result: dict[str, Any] | None = Field(None, description="Ids of what was done (message id, event id, ...).")
    error: str | None = Field(None, description="Why it failed, or why it needs review.")
    replaces: str | None = Field(None, description="The action this one is an edit of.")
    review: ActionReview | None = Field(None, description="Recipients and flags (pending actions, as listed).")


class Decision(_Model):
    args_hash: str = Field(description="The args_hash of the action as shown: approval binds to it.")


class EditDecision(_Model):
    args_hash: str = Field(description="The args_hash of the action being edited, as shown.")
    arguments: dict[str, Any] = Field(description="The edited arguments (the whole set).")


class Rejection(_Model):
    reason: str = Field("", max_length=500, description="Why (optional).")


class BatchItem(_Model):
    id: str = Field(description="Action id.")
    args_hash: str = Field(description="Its args_hash as shown.")


class BatchDecision(_Model):
    decision: Literal["approve", "reject"] = Field(description="What to do with all of them.")
    items: list[BatchItem] = Field(min_length=1, max_length=1000, description="The actions.")


class BatchResult(_Model):
    done: list[str] = Field(description="Ids decided.")
    refused: dict[str, str] = Field(default_factory=dict, description="Id → why it was refused.")


class GroupRecipient(_Model):
    address: str = Field(description="The address or phone number.")
    domain: str | None = Field(None, description="Its domain (None for a phone number).")
    actions: int = Field(description="How many actions of the group reach it.")
    external: bool = Field(description="Outside the user's own domain.")
    new: bool = Field(description="Never approved before.")


class ApprovalGroup(_Model):
    """Pending actions of one run and type, with every distinct recipient and domain among them."""

    group: str = Field(description="Group key (run and action type).")
    action: ActionType = Field(description="Their type.")
    run_id: str | None = Field(None, description="The run that proposed them.")
    items: list[BatchItem] = Field(description="Each action's id and args_hash, for a batch decision.")
    recipients: list[GroupRecipient] = Field(description="Every distinct recipient, most reached first.")
    domains: dict[str, int] = Field(description="Every distinct recipient domain → how many actions reach it.")
    warnings: dict[str, list[str]] = Field(default_factory=dict, description="Action id → its flags.")
    outliers: dict[str, list[str]] = Field(default_factory=dict, description="Action id → why it must be approved "
                                                                             "on its own.")
    approve_all: bool = Field(description="Whether the whole group may be approved at once (no outliers).")


class PolicyView(_Model):
    """The install's approval policies: one per action type, for everyone's agents (an admin sets them)."""

    policies: dict[ActionType, Policy] = Field(description="Policy per action type.")


class Person(_Model):
    id: str = Field(description="User id.")
    name: str = Field(description="Login name.")


class DelegatesChange(_Model):
    """Who may decide the caller's pending actions besides them: the whole list (an empty one names nobody)."""

    delegates: list[str] = Field(max_length=50, description="User ids or login names of enabled users, "
                                                            "not the caller.")


class DelegatesView(_Model):
    """Approval delegates, from the caller's side."""

    delegates: list[Person] = Field(description="Who may see, approve, edit and reject the caller's pending "
                                                "actions (an admin is not one unless named here).")
    delegate_for: list[Person] = Field(description="Whose pending actions the caller may decide: they named "
                                                   "the caller.")


class AuditEntry(_Model):
    id: str = Field(description="Entry id.")
    occurred_at: float = Field(description="When.")
    user_id: str | None = Field(None, description="Who asked.")
    actor: str = Field(description="Who did it: a person, 'policy', or 'system'.")
    action: str = Field(description="What: e.g. send_email.done, approval.approved, google.connected.")
    run_id: str | None = Field(None, description="Plan (run).")
    task_id: str | None = Field(None, description="Step.")
    subject_id: str | None = Field(None, description="The action or integration concerned.")
    approved_by: str | None = Field(None, description="Who approved it.")
    detail: dict[str, Any] = Field(default_factory=dict, description="Ids and counts; never bodies or addresses.")
