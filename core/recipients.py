"""Who a gated action reaches, and what a person must see before approving it: every recipient,
flagged external or new, the warnings of a reply or an event change, and the *outliers* — actions
that may not be approved with their group ("Approve all"), only one by one.

The rules, from data the app holds (never from text the model wrote):

- **internal**: the address is the user's own Google account, or shares its domain — unless that
  domain is a public mail service (gmail.com, outlook.com, ...), where only the account itself is
  internal. With no account known (Google connected without mail), nothing is internal. A phone
  number is never internal.
- **new** (never seen before): no earlier action of this user that a *person* approved (not an
  "allow" policy) reached the address — ``known`` holds those addresses (see
  ``integrations.actions.ledger.known_recipients``). Mail the user merely received does not count: anyone
  can send mail.
- **outlier**: an action that reaches an address both external and new, or a reply addressed to
  its message's ``Reply-To`` when that differs from ``From`` and is not itself known. A batch
  approval that holds an outlier is refused as a whole.

Pure functions: the Workspace reviews what it lists, the API and the UI sum groups up with them.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from core.action_schemas import (
    ActionReview,
    ActionView,
    ApprovalGroup,
    BatchItem,
    GroupRecipient,
    Recipient,
)

PUBLIC_MAIL_DOMAINS = frozenset({
    "gmail.com", "googlemail.com", "outlook.com", "hotmail.com", "live.com", "msn.com", "yahoo.com", "ymail.com",
    "icloud.com", "me.com", "mac.com", "aol.com", "proton.me", "protonmail.com", "pm.me", "gmx.com", "gmx.net",
    "gmx.de", "web.de", "mail.com", "yandex.com", "yandex.ru", "zoho.com", "fastmail.com", "hey.com", "tutanota.com",
    "qq.com", "163.com",
})
ROLE_OF_KEY = {"to": "to", "cc": "cc", "attendees": "attendee"}
SOURCES = {"reply_to": "the Reply-To of the message replied to", "from": "the From of the message replied to",
           "to": "the To of your own last message in the thread", "person": "typed by a person (edited)"}
_PHONE_CHARS = re.compile(r"[^\d+]")


def key(address: str) -> str:
    """How addresses compare: mail addresses case-insensitively, phone numbers by their digits."""
    text = address.strip()
    return text.lower() if "@" in text else _PHONE_CHARS.sub("", text)


def domain_of(address: str) -> str | None:
    return address.rsplit("@", 1)[1].strip().lower() if "@" in address else None


def own_domain(account: str | None) -> str | None:
    """The domain that counts as internal: the account's, unless it is a public mail service."""
    domain = domain_of(account) if account else None
    return None if domain is None or domain in PUBLIC_MAIL_DOMAINS else domain


def _list(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value] if value.strip() else []
    return [str(v) for v in value or [] if str(v).strip()]


def added_attendees(args: Mapping[str, Any]) -> list[str]:
    """An event change's attendees that the event does not have yet (all of them when it was not read)."""
    if "attendees" not in args:
        return []
    before = {key(a) for a in _list((args.get("before") or {}).get("attendees"))}
    return [a for a in _list(args["attendees"]) if key(a) not in before]


def removed_attendees(args: Mapping[str, Any]) -> list[str]:
    if "attendees" not in args:
        return []
    after = {key(a) for a in _list(args["attendees"])}
    return [a for a in _list((args.get("before") or {}).get("attendees")) if key(a) not in after]


def recipients_of(action: str, args: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(address, role) for everyone the action sends something to. Deleting an event notifies its
    attendees, who already have it: they are shown with the event, not counted here."""
    if action in ("send_email", "reply_email", "create_event"):
        return [(a, ROLE_OF_KEY[k]) for k in ("to", "cc", "attendees") for a in _list(args.get(k))]
    if action == "update_event":
        return [(a, "new attendee") for a in added_attendees(args)]
    if action in ("send_text", "place_call"):
        return [(a, "text" if action == "send_text" else "call") for a in _list(args.get("to"))]
    return []


def review_action(action: str, args: Mapping[str, Any], account: str | None, known: Iterable[str]) -> ActionReview:
    """Recipients (flagged external and new), warnings and outlier reasons of one action (see the
    module's docstring for the rules). ``known``: keys of addresses a person approved before."""
    seen = {key(k) for k in known}
    mine, internal = key(account) if account else None, own_domain(account)
    where = internal or "your own account"
    by_key: dict[str, Recipient] = {}
    source = SOURCES.get(str(args.get("to_source"))) if action == "reply_email" else None
    for address, role in recipients_of(action, args):
        k = key(address)
        if k in by_key:
            if role not in by_key[k].roles:
                by_key[k].roles.append(role)
            continue
        domain = domain_of(address)
        external = k != mine and (domain is None or domain != internal)
        by_key[k] = Recipient(address=address, domain=domain, roles=[role], source=source if role == "to" else None,
                              external=external, new=k != mine and k not in seen)
    recipients = list(by_key.values())
    reasons: dict[str, list[str]] = {key(r.address): [f"outside {where} and never approved before"]
                                     for r in recipients if r.external and r.new}
    warnings: list[str] = []
    if action == "reply_email":
        sender, reply_to = str(args.get("sender") or ""), _list(args.get("reply_to"))
        if reply_to and sender and {key(a) for a in reply_to} != {key(sender)}:
            going = args.get("to_source") == "reply_to"
            warnings.append(f"Reply-To ({', '.join(reply_to)}) differs from From ({sender})"
                            + (": the reply goes to the Reply-To address" if going else ""))
            to = {key(a) for a in _list(args.get("to"))}
            for k in (key(a) for a in reply_to):
                if going and k in to and k not in seen:
                    reasons.setdefault(k, []).append(f"the message's Reply-To, not its sender {sender}")
    outliers = [f"{by_key[k].address if k in by_key else k}: {'; '.join(why)}" for k, why in reasons.items()]
    if action == "update_event":
        added, removed = added_attendees(args), removed_attendees(args)
        if added:
            warnings.append(f"Adds attendees: {', '.join(added)} (they are sent the event)")
        if removed:
            warnings.append(f"Removes attendees: {', '.join(removed)}")
    if action == "delete_event" and _list(args.get("attendees")):
        warnings.append(f"Its attendees are told it is cancelled: {', '.join(_list(args['attendees']))}")
    return ActionReview(recipients=recipients, warnings=warnings, outliers=outliers)


def plain_review(view: ActionView) -> ActionReview:
    """A view's review, or (not reviewed) its recipients with nothing flagged."""
    if view.review is not None:
        return view.review
    recipients = [Recipient(address=a, domain=domain_of(a), roles=[r], external=False, new=False)
                  for a, r in recipients_of(view.action, view.arguments)]
    return ActionReview(recipients=recipients)


def summarize_group(group: str, views: Sequence[ActionView]) -> ApprovalGroup:
    """Every distinct recipient and domain of a group's actions, and its outliers."""
    counts: Counter[str] = Counter()
    first: dict[str, Recipient] = {}
    domains: Counter[str] = Counter()
    warnings: dict[str, list[str]] = {}
    outliers: dict[str, list[str]] = {}
    for view in views:
        review = plain_review(view)
        for r in review.recipients:
            k = key(r.address)
            counts[k] += 1
            first.setdefault(k, r)
        for domain in {r.domain for r in review.recipients if r.domain}:
            domains[domain] += 1
        if review.warnings:
            warnings[view.id] = review.warnings
        if review.outliers:
            outliers[view.id] = review.outliers
    recipients = [GroupRecipient(address=first[k].address, domain=first[k].domain, actions=n,
                                 external=first[k].external, new=first[k].new)
                  for k, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]
    return ApprovalGroup(group=group, action=views[0].action, run_id=views[0].run_id,
                         items=[BatchItem(id=v.id, args_hash=v.args_hash) for v in views], recipients=recipients,
                         domains=dict(sorted(domains.items(), key=lambda kv: (-kv[1], kv[0]))), warnings=warnings,
                         outliers=outliers, approve_all=not outliers)


def pending_groups(views: Sequence[ActionView]) -> list[ApprovalGroup]:
    """Pending actions by group, in the listing's order (a group comes where its newest action does)."""
    found: dict[str, list[ActionView]] = {}
    for view in views:
        if view.status == "pending":
            found.setdefault(view.group, []).append(view)
    return [summarize_group(group, items) for group, items in found.items()]
