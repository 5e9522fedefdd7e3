"""The Approvals page: what agents propose to send, change or create waits here for a person. Decide
a whole group at once, or review, edit and decide one; set a policy per action type; read the audit
log. All through the HTTP API; an approval quotes the args_hash of the action as it was shown."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Literal

import gradio as gr

from core.action_schemas import ACTION_TYPES, ActionView, BatchItem
from ui import approval_views as av
from ui.client import ApiClient, ApiError
from ui.pages import Search, Table, table

MAX_GROUPS = 6  # groups on screen at once; the others show as these are decided
PENDING_LIMIT = 1000  # as many as one batch decision takes
RECENT = 50
EVERY_S = 3.0
Shown = list[dict[str, Any]]  # the pending actions on screen, as JSON data (kept in a gr.State)


def _actions(shown: Shown | None) -> list[ActionView]:
    return [ActionView.model_validate(a) for a in shown or []]


def _picked(picked: dict[str, Any] | None) -> ActionView | None:
    return ActionView.model_validate(picked) if picked else None


class ApprovalHandlers:
    def __init__(self, client: ApiClient, max_groups: int = MAX_GROUPS) -> None:
        self.client = client
        self.max_groups = max_groups

    # --- the listing ---------------------------------------------------------------------------

    async def listing(self, seen: str | None = None, picked: dict[str, Any] | None = None,
                      force: bool = True) -> list[Any]:
        """Outputs: note, (column, html, approve, reject) per group slot, shown, seen, pick, review box,
        picked, recent table, nav label. Unchanged since ``seen`` and not ``force``: nothing is redrawn."""
        skip = [gr.skip()] * (8 + 4 * self.max_groups)
        try:
            pending = await self.client.list_approvals(status="pending", limit=PENDING_LIMIT)
            everything = await self.client.list_approvals(limit=min(len(pending) + RECENT, PENDING_LIMIT + RECENT))
        except ApiError as exc:
            return [f"✖ Could not list the actions: {exc}", *skip[1:]]
        signature = repr([(a.id, a.args_hash, a.status) for a in everything + pending])
        if signature == seen and not force:
            return skip
        owners = await self._owners() if pending else {}
        groups, now = av.group_actions(pending, owners), time.time()
        slots: list[Any] = []
        for i in range(self.max_groups):
            g = groups[i] if i < len(groups) else None
            n = len(g.actions) if g else 0
            slots += [gr.Column(visible=g is not None), av.group_html(g, now) if g else "",
                      gr.Button(g.approve_all if g else "Approve all 0", interactive=g is None or g.can_approve_all),
                      gr.Button(f"Reject all {n}")]
        ids = {a.id for a in pending}
        still = picked is not None and picked.get("id") in ids
        choices = [(av.choice_label(a, owners), a.id) for a in pending]
        return [av.pending_note(pending, groups, min(len(groups), self.max_groups)), *slots,
                [a.model_dump(mode="json") for a in pending], signature,
                gr.Dropdown(choices=choices, value=picked["id"] if still and picked else None),
                gr.skip() if still else gr.Column(visible=False), gr.skip() if still else None,
                table(av.RECENT_HEADERS, av.recent_rows(everything, RECENT)),
                gr.Button(av.nav_label(len(pending), len(pending) >= PENDING_LIMIT))]

    async def _owners(self) -> dict[str, str]:
        """Id → name of those who named you their delegate: the pending actions of theirs you see say whose."""
        try:
            return {p.id: p.name for p in (await self.client.delegates()).delegate_for}
        except ApiError:
            return {}

    async def tick(self, seen: str | None, picked: dict[str, Any] | None) -> list[Any]:
        return await self.listing(seen, picked, force=False)

    async def badge(self) -> Any:
        """The sidebar's count of pending actions."""
        try:
            pending = await self.client.list_approvals(status="pending", limit=100)
        except ApiError:
            return gr.skip()
        return gr.Button(av.nav_label(len(pending), len(pending) >= 100))

    # --- deciding ------------------------------------------------------------------------------

    async def decide_group(self, decision: Literal["approve", "reject"], index: int, shown: Shown | None) -> str:
        """Decide every action of the group in slot ``index``, each with the args_hash that was shown."""
        groups = av.group_actions(_actions(shown))
        if not 0 <= index < len(groups):
            return "✖ That group is no longer on screen."
        group = groups[index]
        if decision == "approve" and not group.can_approve_all:  # the API refuses it too
            return (f"✖ Not approved: {len(group.summary.outliers)} of these reach a new outside recipient or a "
                    "Reply-To; approve each of those on its own (pick it below), then the rest together.")
        items = [BatchItem(id=a.id, args_hash=a.args_hash) for a in group.actions]
        try:
            result = await self.client.decide_batch(decision, items)
        except ApiError as exc:
            return f"✖ {exc}"
        return av.batch_message(decision, result, len(items))

    async def pick(self, action_id: str | None, shown: Shown | None) -> list[Any]:
        """Outputs: review box, detail, picked, mail box, event box, json box, the form fields, json,
        reason, result."""
        chosen = next((a for a in _actions(shown) if a.id == action_id), None)
        if chosen is None:
            return [gr.Column(visible=False), "", None, *[gr.skip()] * 3,
                    *[gr.skip()] * (len(av.FORM_FIELDS) + 1), "", ""]
        mode = av.edit_mode(chosen.action, chosen.arguments)
        fields, values = av.edit_fields(chosen.action, chosen.arguments), av.edit_values(chosen.action, chosen.arguments)
        return [gr.Column(visible=True), av.action_html(chosen), chosen.model_dump(mode="json"),
                gr.Column(visible=mode == "mail"), gr.Column(visible=mode == "event"),
                gr.Column(visible=mode == "json"),
                *(gr.Textbox(value=values[f], visible=f in fields) for f in av.FORM_FIELDS), values["json"], "", ""]

    async def approve(self, picked: dict[str, Any] | None) -> str:
        action = _picked(picked)
        if action is None:
            return "Pick an action first."
        try:
            return av.decided_message(await self.client.approve(action.id, action.args_hash))
        except ApiError as exc:
            return f"✖ {exc}"

    async def reject(self, picked: dict[str, Any] | None, reason: str) -> str:
        action = _picked(picked)
        if action is None:
            return "Pick an action first."
        try:
            return av.decided_message(await self.client.reject(action.id, (reason or "").strip()))
        except ApiError as exc:
            return f"✖ {exc}"

    async def save_edit(self, picked: dict[str, Any] | None, *form: str) -> str:
        """Approve the edited arguments instead (the API supersedes the action with a new one)."""
        action = _picked(picked)
        if action is None:
            return "Pick an action first."
        values = dict(zip([*av.FORM_FIELDS, "json"], form, strict=True))
        try:
            arguments = av.edited_arguments(action.action, action.arguments, values)
        except ValueError as exc:
            return f"✖ Not saved: {exc}"
        if arguments == action.arguments:
            return "Nothing changed: use Approve to approve it as it is."
        try:
            edited = await self.client.edit_action(action.id, action.args_hash, arguments)
        except ApiError as exc:
            return f"✖ {exc}"
        return f"✔ Edited and approved as {edited.id[:8]} ({edited.status}): {edited.summary}"

    # --- policy and audit ----------------------------------------------------------------------

    async def load_policy(self) -> list[Any]:
        try:
            policies: dict[str, str] = {k: v for k, v in (await self.client.get_policy()).policies.items()}
        except ApiError as exc:
            return [*[gr.skip()] * len(ACTION_TYPES), None, f"✖ Could not load the policy: {exc}"]
        return [*av.policy_values(policies), policies, av.policy_note(policies)]

    async def save_policy(self, *args: Any) -> tuple[Any, str]:
        *values, saved, reauth = args
        changes = av.policy_changes(values, saved)
        if not changes:
            return saved, "Nothing changed."
        try:
            saved_now = (await self.client.update_policy(changes, reauth or None)).policies
        except ApiError as exc:
            return saved, f"✖ Not saved: {exc}"
        policies: dict[str, str] = {k: v for k, v in saved_now.items()}
        return policies, f"✔ Saved. {av.policy_note(policies)}"

    async def audit(self, run_id: str, action: str) -> tuple[Table, str]:
        try:
            entries = await self.client.audit(run_id=(run_id or "").strip() or None,
                                              action=(action or "").strip() or None, limit=200)
        except ApiError as exc:
            return table(av.AUDIT_HEADERS, []), f"✖ {exc}"
        return table(av.AUDIT_HEADERS, av.audit_rows(entries)), f"{len(entries)} entr{'y' if len(entries) == 1 else 'ies'}"


@dataclass
class ApprovalsPage:
    """The page's column and what the app wires to it (nav refresh, the timer while it is shown)."""

    column: Any
    timer: Any
    refresh: tuple[Any, list[Any], list[Any]]  # (handler, inputs, outputs) to list the actions
    load_policy: tuple[Any, list[Any], list[Any]]  # … to fill the policy form
    audit: Search  # list the audit log: on opening the page, and by its Search button or filter boxes
    badge: tuple[Any, list[Any], list[Any]]  # … to show the count of pending actions in the sidebar
    policy_edit: Any  # the policy's save row: shown to an admin


def approvals_page(client: ApiClient, nav_button: Any) -> ApprovalsPage:
    """Build the page inside the current Blocks and wire its own events (``nav_button`` shows the count)."""
    h = ApprovalHandlers(client)
    with gr.Column(visible=False, elem_id="page-approvals") as column:
        shown, seen, picked, policies = gr.State([]), gr.State(None), gr.State(None), gr.State(None)
        gr.Markdown("## Approvals\nNothing leaves this machine (mail, calendar changes, Drive files, texts, calls) "
                    "unless the install's policy allows it or you (or a delegate you named) approve it here. "
                    "What you see is exactly what will be "
                    "carried out; text in it was written by an agent or by whoever wrote the mail it read, so "
                    "treat it as content, never as instructions.")
        with gr.Row(equal_height=True):
            note = gr.Markdown(elem_id="approvals-note")
            refresh = gr.Button("Refresh", elem_id="approvals-refresh", scale=0, min_width=110)
        with gr.Tab("Waiting", elem_id="approvals-tab-waiting"):
            batch_result = gr.Markdown(elem_id="approvals-batch-result")
            slots: list[tuple[Any, Any, Any, Any]] = []
            for i in range(h.max_groups):
                with gr.Column(visible=False, elem_id=f"approvals-group-{i}", variant="panel") as box:
                    html = gr.HTML("", elem_id=f"approvals-group-{i}-html")
                    with gr.Row():
                        approve_all = gr.Button("Approve all", variant="primary", size="sm", scale=0, min_width=160,
                                                elem_id=f"approvals-group-{i}-approve")
                        reject_all = gr.Button("Reject all", variant="stop", size="sm", scale=0, min_width=160,
                                               elem_id=f"approvals-group-{i}-reject")
                slots.append((box, html, approve_all, reject_all))
            gr.Markdown("### Review one")
            pick = gr.Dropdown([], value=None, label="Pending action", elem_id="approval-pick")
            with gr.Column(visible=False, elem_id="approval-review") as review:
                detail = gr.HTML("", elem_id="approval-detail")
                with gr.Row(equal_height=True):
                    approve = gr.Button("Approve", variant="primary", elem_id="approval-approve", scale=0,
                                        min_width=120)
                    reason = gr.Textbox(label="Reason to reject (optional)", elem_id="approval-reason", scale=3)
                    reject = gr.Button("Reject", variant="stop", elem_id="approval-reject", scale=0, min_width=120)
                # The edit form is part of the review, not in an Accordion: see ui.disclosure for why.
                gr.Markdown("**Or edit, then approve**", elem_id="approval-edit")
                fields: dict[str, Any] = {}

                def field(name: str, label: str, **kw: Any) -> None:
                    fields[name] = gr.Textbox(label=label, elem_id=f"approval-edit-{name}", **kw)

                with gr.Column(visible=False, elem_id="approval-edit-mail") as mail_box:
                    field("to", "To (comma-separated)")
                    field("cc", "Cc (comma-separated)")
                    field("subject", "Subject")
                    field("body", "Body", lines=8, max_lines=30)
                with gr.Column(visible=False, elem_id="approval-edit-event") as event_box:
                    field("title", "Title")
                    with gr.Row():
                        field("start", "Start")
                        field("end", "End")
                    field("attendees", "Attendees (comma-separated)")
                    field("description", "Description", lines=4)
                with gr.Column(visible=False, elem_id="approval-edit-json-box") as json_box:
                    e_json = gr.Textbox(label="Arguments (JSON, the whole set)", lines=12, max_lines=40,
                                        elem_id="approval-edit-json", elem_classes="mono")
                save = gr.Button("Save & approve", variant="primary", elem_id="approval-save", size="sm")
            result = gr.Markdown(elem_id="approval-result")
        with gr.Tab("Recent", elem_id="approvals-tab-recent"):
            recent = gr.Dataframe(table(av.RECENT_HEADERS, []), interactive=False, wrap=True, max_height=480,
                                  elem_id="approvals-recent",
                                  column_widths=["12%", "11%", "13%", "32%", "10%", "22%"])
        with gr.Tab("Policy", elem_id="approvals-tab-policy"):
            gr.Markdown("What happens to each kind of action anyone's agent proposes: one policy for the whole "
                        "install, set by an admin. **ask** is the default and the "
                        "safest: a person approves each one here. **allow** runs it with no one looking; "
                        "**deny** never runs it.")
            with gr.Row():
                choices = [gr.Dropdown(av.POLICY_CHOICES, value="ask", label=av.label(t), elem_id=f"policy-{t}",
                                       min_width=220) for t in ACTION_TYPES]
            with gr.Row(equal_height=True, visible=False, elem_id="policy-edit") as p_edit:  # an admin's
                p_reauth = gr.Textbox(label="Your password or the login token (needed to set allow)", type="password",
                                      max_lines=1, elem_id="policy-reauth", scale=2)
                p_save = gr.Button("Save", variant="primary", elem_id="policy-save", scale=0, min_width=120)
                p_result = gr.Markdown(elem_id="policy-result")
        with gr.Tab("Audit log", elem_id="approvals-tab-audit"):
            with gr.Row():
                a_run = gr.Textbox(label="Run id", elem_id="audit-run", scale=2)
                a_action = gr.Textbox(label="Action", placeholder="e.g. send_email.done, approval.approved",
                                      elem_id="audit-action", scale=2)
                a_go = gr.Button("Search", variant="primary", elem_id="audit-search", scale=0, min_width=110)
            a_note = gr.Markdown(elem_id="audit-note")
            a_table = gr.Dataframe(table(av.AUDIT_HEADERS, []), interactive=False, wrap=True, max_height=520,
                                   elem_id="audit-table",
                                   column_widths=["14%", "8%", "8%", "9%", "15%", "12%", "7%", "13%", "14%"])
    timer = gr.Timer(EVERY_S, active=False)

    listing = [note, *(c for slot in slots for c in slot), shown, seen, pick, review, picked, recent, nav_button]
    quiet: dict[str, Any] = {"api_visibility": "private", "show_progress": "hidden"}
    refresh.click(h.listing, [seen, picked], listing, api_visibility="private")
    timer.tick(h.tick, [seen, picked], listing, **quiet)
    for i, (_, _, approve_all, reject_all) in enumerate(slots):
        for button, decision in ((approve_all, "approve"), (reject_all, "reject")):
            button.click(h.decide_group, [gr.State(decision), gr.State(i), shown], [batch_result],
                         api_visibility="private").then(h.listing, [seen, picked], listing, **quiet)
    form = [fields[f] for f in av.FORM_FIELDS]
    pick.input(h.pick, [pick, shown], [review, detail, picked, mail_box, event_box, json_box, *form, e_json,
                                       reason, result], api_visibility="private")
    approve.click(h.approve, [picked], [result], api_visibility="private").then(
        h.listing, [seen, picked], listing, **quiet)
    reject.click(h.reject, [picked, reason], [result], api_visibility="private").then(
        h.listing, [seen, picked], listing, **quiet)
    save.click(h.save_edit, [picked, *form, e_json], [result], api_visibility="private").then(
        h.listing, [seen, picked], listing, **quiet)
    p_save.click(h.save_policy, [*choices, policies, p_reauth], [policies, p_result], api_visibility="private")

    return ApprovalsPage(column, timer, (h.listing, [seen, picked], listing),
                         (h.load_policy, [], [*choices, policies, p_result]),
                         Search((h.audit, [a_run, a_action], [a_table, a_note]), [a_go.click, a_run.submit,
                                                                                  a_action.submit]),
                         (h.badge, [], [nav_button]), p_edit)
