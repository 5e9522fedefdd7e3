"""The Approvals and Integrations pages' pure parts and handlers against a mocked HTTP API: grouping,
samples, hostile content shown as inert text, the edit and policy forms, the requests sent for each
decision, and where Google stands (no Ray, no browser)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import gradio as gr
import httpx
import pytest

from core.action_schemas import ACTION_TYPES, ActionView, BatchItem, IntegrationView, PolicyView
from ui import approval_views as av
from ui import integration_views as iv
from ui.approvals import ApprovalHandlers
from ui.client import ApiClient, ApiError
from ui.integrations import IntegrationHandlers

Handler = Callable[[httpx.Request], httpx.Response]
HOSTILE_BODY = 'Hi <script>alert("x")</script>\n"this is pre-approved, click approve"'
SKIP = gr.skip()


def action(n: int, kind: str = "send_email", run: str | None = "run-aaaaaaaa-1", status: str = "pending",
           **arguments: Any) -> ActionView:
    args = arguments or {"to": [f"lead{n}@example.com"], "subject": f"Hello {n}", "body": f"Dear lead {n}"}
    return ActionView(id=f"act-{n:04d}", action=kind, status=status, summary=f"{kind} #{n}",  # type: ignore[arg-type]
                      arguments=args, args_hash=f"hash-{n}", run_id=run, task_id="s1", user_id="u1",
                      group=f"{run}:{kind}", created_at=1000.0 - n, expires_at=10**10)


def run_with(handler: Handler, work: Callable[[ApiClient], Any]) -> Any:
    async def go() -> Any:
        client = ApiClient("http://api.test", transport=httpx.MockTransport(handler))
        try:
            return await work(client)
        finally:
            await client.aclose()

    return asyncio.run(go())


def dumped(items: list[ActionView]) -> list[dict[str, Any]]:
    return [a.model_dump(mode="json") for a in items]


# --- views ------------------------------------------------------------------------------------------


def test_pending_actions_group_by_run_and_type_and_a_group_shows_three_in_full() -> None:
    mails = [action(i) for i in range(40)]
    events = [action(100 + i, "create_event", title=f"Demo {i}", start="2025-05-01T10:00", end="2025-05-01T10:30",
                      attendees=["a@example.com"]) for i in range(2)]
    other_run = action(200, run="run-bbbbbbbb")
    decided = action(300, status="done")
    groups = av.group_actions([mails[0], events[0], *mails[1:], other_run, events[1], decided])
    assert [(g.action, len(g.actions)) for g in groups] == [("send_email", 40), ("create_event", 2),
                                                           ("send_email", 1)]
    assert groups[0].header == "40 × Send email · run run-aaaa" and groups[2].header == "1 × Send email · run run-bbbb"
    assert groups[0].seen()["items"][:2] == [{"id": "act-0000", "args_hash": "hash-0"},
                                             {"id": "act-0001", "args_hash": "hash-1"}]
    html = av.group_html(groups[0], now=0.0)
    assert html.count('class="act"') == 3 and 'data-count="40"' in html and "… and 37 more" in html
    assert "Hello 0" in html and "Hello 2" in html and "Hello 3" not in html
    assert "lead1@example.com" in html and "Dear lead 1" in html
    event_html = av.group_html(groups[1], now=0.0)
    assert "more like these" not in event_html and "2025-05-01T10:00 – 2025-05-01T10:30" in event_html
    assert av.pending_note([*mails, *events], groups, 2).startswith("**42** action(s) wait for you in 3 group(s).")
    assert av.nav_label(0) == "Approvals" and av.nav_label(42) == "Approvals (42)"
    assert av.nav_label(100, capped=True) == "Approvals (100+)"


def test_hostile_content_is_rendered_as_inert_text() -> None:
    a = action(1, to=["x@example.com"], subject='<img src=x onerror="alert(1)">', body=HOSTILE_BODY,
               **{"<b>key</b>": "<a href='javascript:alert(1)'>link</a>"})
    a = a.model_copy(update={"summary": "<script>steal()</script>", "id": 'x" onmouseover="alert(1)'})
    html = av.action_html(a, now=0.0)
    for tag in ("<script", "<img", "<a ", "<b>key"):
        assert tag not in html
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in html
    assert "&quot;this is pre-approved, click approve&quot;" in html  # shown as the body's text, nothing more
    assert 'data-action="x&quot; onmouseover=&quot;alert(1)"' in html
    assert '<pre class="act-text">' in html  # the body is a block of text
    group = av.group_html(av.group_actions([a])[0], now=0.0)
    assert "<script" not in group and "&lt;script&gt;steal()" in group


def test_the_arguments_in_one_line_and_in_full_with_the_known_keys_first() -> None:
    mail = {"body": "long text\nmore", "subject": "Quote", "to": ["a@x.com", "b@y.com"], "zz": 1}
    assert av.arguments_summary("send_email", mail) == "to a@x.com, b@y.com · subject Quote"
    assert av.ordered_keys("send_email", mail) == ["to", "subject", "body", "zz"]
    event = {"title": "Demo", "start": {"dateTime": "2025-05-01T10:00:00", "timeZone": "UTC"}, "attendees": []}
    assert av.arguments_summary("create_event", event) == "title Demo · start 2025-05-01T10:00:00 (UTC)"
    assert av.arguments_summary("send_text", {"to": "+15551234567", "body": "hi"}) == "to +15551234567"
    assert av.arguments_summary("place_call", {}) == "Place phone call"
    assert "x" * 50 not in av.arguments_summary("send_email", {"to": "x" * 200}, limit=40)
    html = av.arguments_html("create_drive_file", {"content": "a", "title": "Q3", "extra": {"k": [1]}})
    assert html.index('data-key="title"') < html.index('data-key="content"') < html.index('data-key="extra"')
    assert "{&quot;k&quot;: [1]}" in html


def test_the_policy_form_round_trips_and_sends_only_what_changed() -> None:
    loaded = PolicyView(policies={"send_email": "allow", "delete_event": "deny"})
    saved: dict[str, str] = {k: v for k, v in loaded.policies.items()}
    values = av.policy_values(saved)
    assert len(values) == len(ACTION_TYPES) and values[ACTION_TYPES.index("send_email")] == "allow"
    assert values.count("ask") == len(ACTION_TYPES) - 2  # unset means ask
    full = dict.fromkeys(ACTION_TYPES, "ask") | saved  # what the API answers: every type
    assert av.policy_changes(values, full) == {}
    values[ACTION_TYPES.index("send_email")] = "ask"
    changes = av.policy_changes(values, full)
    assert changes == {"send_email": "ask"}
    assert av.policy_changes(values, saved) == {"send_email": "ask"}  # a type with no policy is "ask"
    sent = PolicyView(policies=changes)
    assert PolicyView.model_validate_json(sent.model_dump_json()) == sent
    assert av.policy_changes(av.policy_values(None), None) == dict.fromkeys(ACTION_TYPES, "ask")
    assert av.policy_note({"send_email": "allow"}) == "⚠ Runs with no one looking: Send email."
    assert av.policy_note({}) == "Every action waits for a person (ask)."


def test_the_edit_form_keeps_what_it_has_no_field_for() -> None:
    args = {"to": ["a@x.com"], "subject": "Hi", "body": "Text\n", "thread_id": "t9"}
    assert av.edit_mode("reply_email", args) == "mail" and av.edit_fields("reply_email", args) == ("to", "subject",
                                                                                                  "body")
    values = av.edit_values("reply_email", args)
    assert values["to"] == "a@x.com" and values["cc"] == "" and json.loads(values["json"]) == args
    assert av.edited_arguments("reply_email", args, values) == args  # unchanged in, unchanged out
    edited = av.edited_arguments("reply_email", args, values | {"to": "a@x.com; b@y.com", "subject": " Hello "})
    assert edited == {"to": ["a@x.com", "b@y.com"], "subject": "Hello", "body": "Text\n", "thread_id": "t9"}
    assert av.edited_arguments("send_email", {"to": "a@x.com"}, {"to": "b@y.com", "cc": "c@z.com"}) == {
        "to": "b@y.com", "cc": ["c@z.com"]}
    event = {"title": "Demo", "start": "2025-05-01T10:00", "end": "2025-05-01T11:00", "attendees": ["a@x.com"],
             "calendar_id": "primary"}
    assert av.edit_mode("create_event", event) == "event" and av.edit_values("create_event", event)["title"] == "Demo"
    moved = av.edited_arguments("create_event", event, av.edit_values("create_event", event) | {"start": "09:00"})
    assert moved == event | {"start": "09:00"}
    change = {"event_id": "e1", "start": "2025-05-01T10:00"}  # an update names only what it changes
    assert av.edited_arguments("update_event", change, av.edit_values("update_event", change)) == change
    timed = {"title": "Demo", "start": {"dateTime": "2025-05-01T10:00:00"}}
    assert av.edit_mode("create_event", timed) == "json" and av.edit_mode("send_text", {"to": "1"}) == "json"
    assert av.edited_arguments("send_text", {}, {"json": '{"to": "+1555", "text": "hi"}'}) == {"to": "+1555",
                                                                                            "text": "hi"}
    with pytest.raises(ValueError, match=r"not valid JSON \(line 1"):
        av.edited_arguments("send_text", {}, {"json": '{"to": '})
    with pytest.raises(ValueError, match="must be a JSON object"):
        av.edited_arguments("send_text", {}, {"json": "[1]"})


def test_recent_and_audit_rows() -> None:
    done = action(1, status="done").model_copy(update={"decided_by": "ana", "decided_at": 5.0,
                                                        "result": {"message_id": "m1"}})
    failed = action(2, status="failed").model_copy(update={"error": "quota"})
    rows = av.recent_rows([action(0), done, failed])
    assert [r[1] for r in rows] == ["✔ done", "✖ failed"] and rows[0][4] == "ana" and rows[0][5] == "message_id: m1"
    assert rows[1][5] == "quota"
    from core.action_schemas import AuditEntry

    older = AuditEntry(id="e1", occurred_at=1.0, actor="system", action="google.connected")
    newer = AuditEntry(id="e2", occurred_at=2.0, user_id="u1", actor="policy", action="send_email.done",
                       run_id="r1", task_id="s1", subject_id="act-1", approved_by="ana", detail={"message_id": "m1"})
    audit = av.audit_rows([older, newer])
    assert [r[4] for r in audit] == ["send_email.done", "google.connected"]
    assert audit[0][1:4] == ["u1", "policy", "ana"] and audit[0][8] == "message_id=m1"


# --- the client and the handlers ------------------------------------------------------------------------


def test_each_decision_sends_the_args_hash_it_was_shown() -> None:
    sent: list[tuple[str, str, Any]] = []
    one = action(1).model_dump(mode="json")

    def handler(request: httpx.Request) -> httpx.Response:
        body: Any = json.loads(request.content) if request.content else None
        sent.append((request.method, f"{request.url.path}?{request.url.query.decode()}", body))
        path = request.url.path
        if path.endswith("/act-0009/approve"):
            return httpx.Response(410, json={"detail": "This approval has expired"})
        if path == "/api/approvals/batch":
            return httpx.Response(200, json={"done": ["act-0001"], "refused": {}})
        if path == "/api/approvals/policy":
            return httpx.Response(200, json={"policies": dict.fromkeys(ACTION_TYPES, "ask") | body["policies"]})
        if path == "/api/audit" or request.method == "GET":
            return httpx.Response(200, json=[])
        return httpx.Response(200, json=one | {"status": "approved"})

    async def calls(c: ApiClient) -> list[Any]:
        out: list[Any] = [await c.list_approvals(status="pending", run_id="r1", limit=5)]
        out.append(await c.approve("act-0001", "hash-1"))
        out.append(await c.edit_action("act-0001", "hash-1", {"to": ["b@y.com"]}))
        out.append(await c.reject("act-0001", "wrong person"))
        out.append(await c.decide_batch("approve", [BatchItem(id="act-0001", args_hash="hash-1")]))
        out.append(await c.update_policy({"send_email": "deny"}))
        out.append(await c.audit(run_id="r1", action="send_email.done"))
        try:
            await c.approve("act-0009", "hash-9")
        except ApiError as exc:
            out.append(f"✖ {exc}")
        return out

    out = run_with(handler, calls)
    assert out[1].status == "approved" and out[4].done == ["act-0001"] and out[5].policies["send_email"] == "deny"
    assert out[-1] == "✖ This approval has expired (HTTP 410)"
    assert sent[:7] == [
        ("GET", "/api/approvals?status=pending&run_id=r1&limit=5", None),
        ("POST", "/api/approvals/act-0001/approve?", {"args_hash": "hash-1"}),
        ("POST", "/api/approvals/act-0001/edit?", {"args_hash": "hash-1", "arguments": {"to": ["b@y.com"]}}),
        ("POST", "/api/approvals/act-0001/reject?", {"reason": "wrong person"}),
        ("POST", "/api/approvals/batch?", {"decision": "approve", "items": [{"id": "act-0001", "args_hash": "hash-1"}]}),
        ("PUT", "/api/approvals/policy?", {"policies": {"send_email": "deny"}}),
        ("GET", "/api/audit?run_id=r1&action=send_email.done&limit=200", None),
    ]


NO_DELEGATES: dict[str, Any] = {"delegates": [], "delegate_for": []}  # the listing asks whose actions it shows


def test_the_page_lists_groups_and_approve_all_decides_exactly_what_was_shown() -> None:
    pending = [action(i) for i in range(40)] + [action(100, "create_event", title="Demo")]
    decided = [action(500, status="done")]
    batches: list[dict[str, Any]] = []
    edits: list[dict[str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/api/approvals/delegates":
            return httpx.Response(200, json=NO_DELEGATES)
        if request.method == "GET":
            status = request.url.params.get("status")
            return httpx.Response(200, json=dumped(pending if status == "pending" else pending + decided))
        body = json.loads(request.content)
        if path == "/api/approvals/batch":
            batches.append(body)
            return httpx.Response(200, json={"done": [i["id"] for i in body["items"][1:]],
                                             "refused": {body["items"][0]["id"]: "already decided"}})
        if path.endswith("/edit"):
            edits.append(body)
            return httpx.Response(200, json=action(900, status="approved").model_dump(mode="json"))
        return httpx.Response(410, json={"detail": "This approval has expired"})

    async def flow(c: ApiClient) -> dict[str, Any]:
        h = ApprovalHandlers(c, max_groups=2)
        first = await h.listing()
        note, slots, rest = first[0], first[1:9], first[9:]
        shown, seen, pick, review, picked, recent, nav = rest
        again = await h.tick(seen, None)
        approved = await h.decide_group("approve", 0, shown)
        gone = await h.decide_group("approve", 5, shown)
        chosen = await h.pick("act-0003", shown)
        expired = await h.approve(chosen[2])
        form = [box.value for box in chosen[6:15]] + [chosen[15]]
        same = await h.save_edit(chosen[2], *form)
        form[2] = "Hello again"  # subject
        saved = await h.save_edit(chosen[2], *form)
        return {"note": note, "slots": slots, "shown": shown, "pick": pick, "review": review, "picked": picked,
                "recent": recent, "nav": nav, "again": again, "approved": approved, "gone": gone, "chosen": chosen,
                "expired": expired, "same": same, "saved": saved}

    got = run_with(handler, flow)
    assert got["note"].startswith("**41** action(s) wait for you in 2 group(s).")
    col, html, approve_all, reject_all = got["slots"][:4]
    assert col.visible and 'data-count="40"' in html and approve_all.value == "Approve all 40"
    assert reject_all.value == "Reject all 40" and got["slots"][6].value == "Approve all 1"
    assert len(got["shown"]) == 41 and got["pick"].choices[0] == ("Send email · to lead0@example.com · subject "
                                                                  "Hello 0 · act-0000", "act-0000")
    assert got["recent"]["data"][0][1] == "✔ done" and got["nav"].value == "Approvals (41)"
    assert got["again"] == [SKIP] * len(got["again"])  # nothing changed: nothing redrawn
    assert batches[0]["decision"] == "approve"
    assert batches[0]["items"] == [{"id": a.id, "args_hash": a.args_hash} for a in pending[:40]]
    assert got["approved"] == "✔ Approved 39 of 40. ✖ 1 refused: act-0000: already decided"
    assert got["gone"] == "✖ That group is no longer on screen." and len(batches) == 1
    chosen = got["chosen"]
    assert chosen[0].visible and 'data-action="act-0003"' in chosen[1] and chosen[3].visible and not chosen[5].visible
    assert [box.value for box in chosen[6:10]] == ["lead3@example.com", "", "Hello 3", "Dear lead 3"]
    assert all(box.visible for box in chosen[6:10]) and not any(box.visible for box in chosen[10:15])
    assert got["expired"] == "✖ This approval has expired (HTTP 410)"
    assert got["same"].startswith("Nothing changed") and got["saved"].startswith("✔ Edited and approved as act-0900")
    assert edits == [{"args_hash": "hash-3", "arguments": {"to": ["lead3@example.com"], "subject": "Hello again",
                                                            "body": "Dear lead 3"}}]


def test_the_policy_handlers_load_and_save() -> None:
    puts: list[Any] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "PUT":
            puts.append(json.loads(request.content))
            assert request.headers["X-Maos-Reauth"] == "the-login-token"  # the password box, sent along
            return httpx.Response(200, json={"policies": {"send_email": "allow"}})
        return httpx.Response(200, json={"policies": {"send_email": "ask"}})

    async def flow(c: ApiClient) -> tuple[Any, ...]:
        h = ApprovalHandlers(c)
        loaded = await h.load_policy()
        values, saved = loaded[:len(ACTION_TYPES)], loaded[len(ACTION_TYPES)]
        unchanged = await h.save_policy(*values, saved, "")
        values[0] = "allow"
        return loaded, unchanged, await h.save_policy(*values, saved, "the-login-token")

    loaded, unchanged, changed = run_with(handler, flow)
    assert loaded[-1] == "Every action waits for a person (ask)." and unchanged[1] == "Nothing changed."
    assert puts == [{"policies": {"send_email": "allow"}}]
    assert changed == ({"send_email": "allow"}, "✔ Saved. ⚠ Runs with no one looking: Send email.")


FEATURES = [{"name": n, "label": f"Label {n}", "scopes": [f"scope/{n}"], "enabled": n == "gmail_write"}
            for n in ("gmail_read", "gmail_write", "calendar_read")]


def test_google_status_features_and_the_way_to_the_consent_page() -> None:
    reconnect = IntegrationView.model_validate({"status": "reconnect", "reason": "token revoked <by you>",
                                                "features": FEATURES, "waiting_tasks": 3, "account": "a@x.com"})
    html = iv.status_html(reconnect)
    assert 'id="google-reconnect"' in html and "token revoked &lt;by you&gt;" in html
    assert "3 tasks are waiting for this." in html and iv.connect_label(reconnect) == "Reconnect"
    assert iv.feature_value(reconnect) == ["gmail_write"]
    assert iv.feature_choices(reconnect)[0] == ("Label gmail_read", "gmail_read")
    fresh = IntegrationView.model_validate({"status": "disconnected", "features": FEATURES})
    assert iv.feature_value(fresh) == ["gmail_read", "calendar_read"] and iv.connect_label(fresh) == "Connect Google"
    assert iv.safe_url("javascript:alert(1)") is None and 'id="google-continue"' not in iv.continue_html("data:x")
    link = iv.continue_html('https://accounts.example/auth?a=1&b="2"')
    assert 'href="https://accounts.example/auth?a=1&amp;b=&quot;2&quot;"' in link and 'target="_self"' in link

    posted: list[Any] = []
    state = {"status": "not_configured", "reason": "set MAOS_GOOGLE_CLIENT_ID", "features": FEATURES}

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/connect"):
            posted.append(json.loads(request.content))
            return httpx.Response(200, json={"authorization_url": "https://accounts.example/auth?state=s1"})
        if request.url.path.endswith("/disconnect"):
            return httpx.Response(200, json={"status": "disconnected", "features": FEATURES})
        return httpx.Response(200, json=[state])

    async def flow(c: ApiClient) -> list[Any]:
        h = IntegrationHandlers(c)
        return [await h.load(), await h.connect([]), await h.connect(["calendar_read", "gmail_read", "nope"]),
                await h.disconnect()]

    loaded, none, connected, disconnected = run_with(handler, flow)
    assert "set MAOS_GOOGLE_CLIENT_ID" in loaded[0] and not loaded[2].interactive and not loaded[3].visible
    assert "Choose at least one feature" in none[0] and none[1] == ""
    assert posted == [{"features": ["gmail_read", "calendar_read"]}]
    assert connected[1] == "https://accounts.example/auth?state=s1" and 'id="google-continue"' in connected[0]
    assert 'data-status="disconnected"' in disconnected[0] and "Disconnected" in disconnected[4]


def test_a_page_link_opens_that_page() -> None:
    from ui.app import PAGES, url_link

    outputs = [object()] * 3
    opened: list[str] = []

    def show(key: str) -> Callable[[], list[Any]]:
        def switch() -> list[Any]:
            opened.append(key)
            return ["switched"] * 3
        return switch

    def request(**params: str) -> Any:
        return SimpleNamespace(query_params=params)

    link = url_link(outputs, show)
    assert "integrations" in PAGES and "approvals" in PAGES
    assert link(request(open="integrations")) == ["switched"] * 3 + [SKIP]
    assert link(request(doc="d1")) == ["switched"] * 3 + ["d1"]
    assert link(request(open="nope")) == [SKIP] * 4 and link(request()) == [SKIP] * 4
    assert opened == ["integrations", "memory"]


# --- recipients, flags and the real objects -------------------------------------------------------------


def reviewed(n: int, to: list[str], known: set[str], run: str = "run-aaaaaaaa-1", **extra: Any) -> ActionView:
    from core.recipients import review_action

    args = {"to": to, "cc": [], "subject": f"Hello {n}", "body": "b", **extra}
    return action(n, run=run, **args).model_copy(update={"review": review_action("send_email", args,
                                                                                 "owner@example.com", known)})


def test_a_group_shows_every_distinct_recipient_and_domain_and_flags_outliers() -> None:
    known = {f"lead{i}@client.com" for i in range(6)}
    leads = [reviewed(i, [f"lead{i}@client.com"], known) for i in range(6)]
    odd = reviewed(9, ["drop@evil.test", "ann@example.com"], known)
    (group,) = av.group_actions([*leads, odd])
    html = av.group_html(group, now=0.0)
    assert html.count('class="act"') == 3  # three in full, as before ...
    head = html[:html.index('<div class="act" ')]
    for address in [*known, "drop@evil.test", "ann@example.com"]:  # ... but every recipient, each once
        assert head.count(f'<li data-address="{address}"') == 1, address
    assert 'data-recipients="8" data-domains="3"' in html and "client.com (6)" in html and "evil.test (1)" in html
    assert '<li data-address="drop@evil.test" data-external="true" data-new="true">' in html
    assert '<li data-address="ann@example.com" data-external="false" data-new="true">' in html  # a colleague
    assert 'data-outliers="1"' in html and "act-0009: drop@evil.test: outside example.com" in html
    assert not group.can_approve_all and group.approve_all == "Approve all 7: 1 need approving one by one"
    (clean,) = av.group_actions(leads)
    assert clean.can_approve_all and clean.approve_all == "Approve all 6" and 'data-outliers="0"' in av.group_html(clean)


def test_an_action_shows_where_a_reply_goes_and_events_as_they_are_in_calendar() -> None:
    from core.recipients import review_action

    args = {"thread_id": "t1", "body": "ok", "to": ["pay@evil.test"], "subject": "Re: Invoice", "sender": "cfo@client.com",
            "reply_to": ["pay@evil.test"], "to_source": "reply_to"}
    reply = action(1, "reply_email", **args).model_copy(update={"review": review_action(
        "reply_email", args, "owner@example.com", set())})
    html = av.action_html(reply, now=0.0)
    assert "⚠ Reply-To (pay@evil.test) differs from From (cfo@client.com): the reply goes to the Reply-To" in html
    assert "✋ Approve this one on its own" in html and "the Reply-To of the message replied to" in html
    assert html.index("act-review") < html.index("act-args")  # the flags come before the text
    change = {"event_id": "e1", "attendees": ["ann@example.com", "spy@evil.test"], "title": "Board (moved)",
              "before": {"title": "Board", "start": "2030-01-07T10:00:00Z", "end": "2030-01-07T11:00:00Z",
                         "attendees": ["ann@example.com", "bob@example.com"]}}
    diff = av.action_html(action(2, "update_event", **change), now=0.0)
    assert "Event <b>Board</b> 2030-01-07T10:00:00Z – 2030-01-07T11:00:00Z, as it is in Google Calendar" in diff
    assert '<tr data-key="title"><th>Title</th><td>Board</td><td>Board (moved)</td></tr>' in diff
    assert "Adds: <b>spy@evil.test</b>" in diff and "Removes: bob@example.com" in diff
    assert 'data-key="before"' not in diff
    unread = av.action_html(action(3, "update_event", event_id="e1", title="x"), now=0.0)
    assert "could not be read from Calendar" in unread
    gone = av.action_html(action(4, "delete_event", event_id="e1", title="Board", start="2030-01-07T10:00:00Z",
                                 end="2030-01-07T11:00:00Z", attendees=["bob@example.com"]), now=0.0)
    assert "The event as it is in Google Calendar" in gone and "bob@example.com" in gone
    assert gone.index('data-key="title"') < gone.index('data-key="event_id"')


def test_approve_all_is_disabled_for_a_group_with_an_outlier_and_sends_nothing() -> None:
    known = {"lead0@client.com"}
    pending = [reviewed(0, ["lead0@client.com"], known), reviewed(1, ["drop@evil.test"], known),
               reviewed(5, ["lead0@client.com"], known, run="run-bbbbbbbb")]
    batches: list[Any] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/approvals/delegates":
            return httpx.Response(200, json=NO_DELEGATES)
        if request.method == "GET":
            return httpx.Response(200, json=dumped(pending))
        batches.append(json.loads(request.content))
        return httpx.Response(200, json={"done": [i["id"] for i in batches[-1]["items"]], "refused": {}})

    async def flow(c: ApiClient) -> list[Any]:
        h = ApprovalHandlers(c, max_groups=2)
        listed = await h.listing()
        shown = listed[9]
        return [listed, await h.decide_group("approve", 0, shown), await h.decide_group("approve", 1, shown),
                await h.decide_group("reject", 0, shown)]

    listed, refused, approved, rejected = run_with(handler, flow)
    approve_odd, approve_clean = listed[3], listed[7]
    assert approve_odd.value == "Approve all 2: 1 need approving one by one" and approve_odd.interactive is False
    assert approve_clean.value == "Approve all 1" and approve_clean.interactive is True
    assert refused.startswith("✖ Not approved: 1 of these reach a new outside recipient")
    assert listed[11].choices[1] == ("✋ Send email · to drop@evil.test · subject Hello 1 · act-0001", "act-0001")
    assert approved == "✔ Approved 1 of 1." and rejected == "✔ Rejected 2 of 2."
    assert [b["decision"] for b in batches] == ["approve", "reject"]  # the refused group sent nothing
