"""Approvals a person can trust: who an action reaches (external and never-approved addresses
flagged), replies that go to a Reply-To, events shown as they are in Calendar, and "approve all"
refused for a group holding an outlier. Pure rules first, then the Workspace (no Ray) against the
fake Google server through the real client library."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from pydantic import SecretStr

from actors.runtime.handles import LocalHandle
from actors.store import Store
from actors.workspace import Workspace
from core.action_schemas import ActionView, BatchItem
from core.crypto import new_key_text
from core.errors import ApprovalRefused, ToolError
from core.recipients import pending_groups, review_action, summarize_group
from core.settings import Settings
from maos_testing.google.fake_server import FakeGoogle

ACCOUNT = "owner@example.test"

# --- the rules ----------------------------------------------------------------------------------


def test_external_and_new_recipients_are_flagged_and_both_make_an_outlier() -> None:
    mail = {"to": ["ann@example.test", "Bob@Client.COM", "eve@evil.test"], "cc": ["bob@client.com", "me@x.org"],
            "subject": "s", "body": "b"}
    review = review_action("send_email", mail, ACCOUNT, known={"bob@client.com", "me@x.org"})
    flags = {r.address: (r.external, r.new, r.roles) for r in review.recipients}
    assert flags == {"ann@example.test": (False, True, ["to"]),  # a colleague, never mailed: new, not an outlier
                     "Bob@Client.COM": (True, False, ["to", "cc"]),  # outside, approved before (case ignored)
                     "eve@evil.test": (True, True, ["to"]),
                     "me@x.org": (True, False, ["cc"])}
    assert review.outliers == ["eve@evil.test: outside example.test and never approved before"]
    assert review_action("send_email", mail, ACCOUNT, known={"eve@evil.test", "bob@client.com", "me@x.org"}).outliers == []


def test_a_public_mail_domain_is_not_internal_nor_is_anything_without_an_account() -> None:
    mail = {"to": ["stranger@gmail.com", "me@gmail.com"], "subject": "s", "body": "b"}
    review = review_action("send_email", mail, "me@gmail.com", known=set())
    assert [(r.address, r.external, r.new) for r in review.recipients] == [("stranger@gmail.com", True, True),
                                                                           ("me@gmail.com", False, False)]
    assert len(review.outliers) == 1 and "outside your own account" in review.outliers[0]
    assert review_action("send_email", {"to": ["ann@example.test"]}, None, known=set()).outliers != []
    texts = review_action("send_text", {"to": "+1 (555) 010-0199", "body": "hi"}, ACCOUNT, known={"+15550100199"})
    assert [(r.domain, r.external, r.new, r.roles) for r in texts.recipients] == [(None, True, False, ["text"])]
    assert review_action("place_call", {"to": "+15550100", "script": "."}, ACCOUNT, known=set()).outliers


def test_a_reply_to_a_reply_to_that_differs_from_from_is_flagged_and_an_outlier_until_approved() -> None:
    reply = {"thread_id": "t1", "body": "b", "to": ["collect@example.test"], "sender": "ceo@example.test",
             "reply_to": ["collect@example.test"], "to_source": "reply_to"}
    review = review_action("reply_email", reply, ACCOUNT, known=set())
    assert review.warnings == ["Reply-To (collect@example.test) differs from From (ceo@example.test): the reply "
                               "goes to the Reply-To address"]
    assert review.outliers == ["collect@example.test: the message's Reply-To, not its sender ceo@example.test"]
    assert review.recipients[0].source == "the Reply-To of the message replied to"
    assert not review.recipients[0].external  # same domain: only the Reply-To makes it an outlier
    assert review_action("reply_email", reply, ACCOUNT, known={"collect@example.test"}).outliers == []
    edited = reply | {"to": ["ceo@example.test"], "to_source": "person"}
    person = review_action("reply_email", edited, ACCOUNT, known=set())
    assert person.outliers == [] and person.warnings[0].endswith("differs from From (ceo@example.test)")
    plain = review_action("reply_email", reply | {"reply_to": [], "to_source": "from", "to": ["ceo@example.test"]},
                          ACCOUNT, known=set())
    assert plain.warnings == [] and plain.outliers == [] and plain.recipients[0].source.startswith("the From")


def test_an_event_change_counts_only_added_attendees_and_says_who_is_added_and_removed() -> None:
    change = {"event_id": "e1", "attendees": ["ann@example.test", "spy@evil.test"],
              "before": {"title": "Board", "attendees": ["ann@example.test", "bob@example.test"]}}
    review = review_action("update_event", change, ACCOUNT, known=set())
    assert [(r.address, r.roles) for r in review.recipients] == [("spy@evil.test", ["new attendee"])]
    assert review.warnings == ["Adds attendees: spy@evil.test (they are sent the event)",
                               "Removes attendees: bob@example.test"]
    assert review.outliers == ["spy@evil.test: outside example.test and never approved before"]
    deleting = review_action("delete_event", {"event_id": "e1", "title": "Board", "attendees": ["bob@example.test"]},
                             ACCOUNT, known=set())
    assert deleting.recipients == [] and deleting.warnings == [
        "Its attendees are told it is cancelled: bob@example.test"]


def view(n: int, to: list[str], known: set[str] | None = None, run: str = "r1") -> ActionView:
    args = {"to": to, "cc": [], "subject": f"s{n}", "body": "b"}
    return ActionView(id=f"act_{n}", action="send_email", status="pending", summary="", arguments=args,
                      args_hash=f"h{n}", user_id="u", group=f"{run}:send_email", created_at=0.0, expires_at=1e10,
                      run_id=run, review=review_action("send_email", args, ACCOUNT, known or set()))


def test_a_group_lists_every_distinct_recipient_and_domain_and_its_outliers() -> None:
    known = {f"lead{j}@client{j % 3}.com" for j in range(7)}
    views = [view(i, [f"lead{i % 7}@client{i % 7 % 3}.com"], known) for i in range(20)]
    views.append(view(99, ["eve@evil.test", "lead0@client0.com"], known))
    (group,) = pending_groups([*views, view(100, ["x@y.z"]).model_copy(update={"status": "done"})])
    assert len(group.items) == 21 and group == summarize_group("r1:send_email", views)
    assert len(group.recipients) == 8  # every one, not a sample of three
    assert {r.address for r in group.recipients} == {f"lead{j}@client{j % 3}.com" for j in range(7)} | {"eve@evil.test"}
    assert group.recipients[0].address == "lead0@client0.com" and group.recipients[0].actions == 4
    assert group.domains == {"client0.com": 9, "client1.com": 6, "client2.com": 6, "evil.test": 1}
    assert list(group.outliers) == ["act_99"] and not group.approve_all
    clean = summarize_group("r1:send_email", views[:20])
    assert clean.approve_all and clean.outliers == {}


# --- the Workspace against the fake Google --------------------------------------------------------


@pytest.fixture
def fake() -> Iterator[FakeGoogle]:
    with FakeGoogle(account_email=ACCOUNT) as server:
        yield server
        assert not server.internal_errors, server.internal_errors[-1]


@pytest.fixture
async def ws(tmp_path: Path, fake: FakeGoogle) -> AsyncIterator[Workspace]:
    store = Store(str(tmp_path / "maos.duckdb"))
    settings = Settings(encryption_key=SecretStr(new_key_text()), google_client_id=fake.client_id,  # type: ignore[call-arg]
                        google_client_secret=SecretStr(fake.client_secret), google_auth_uri=fake.auth_uri,
                        google_token_uri=fake.token_uri, google_revoke_uri=fake.revoke_uri,
                        google_api_endpoint=fake.url, google_backoff_s=0.05)
    workspace = Workspace(settings, LocalHandle(store, "store"), sweep=False)
    start = await workspace.connect_start("alice", ["gmail_read", "gmail_write", "calendar_read", "calendar_write"])
    async with httpx.AsyncClient() as http:
        consent = await http.get(start.authorization_url, follow_redirects=False)
    query = parse_qs(urlsplit(consent.headers["location"]).query)
    assert (await workspace.connect_finish(query["state"][0], query["code"][0])).account == ACCOUNT
    yield workspace
    store.close()


async def reply(ws: Workspace, fake: FakeGoogle, sender: str, run: str, n: int,
                headers: dict[str, str] | None = None) -> ActionView:
    tid = fake.add_message(sender=sender, to=ACCOUNT, subject=f"Offer {n}", body="hi", headers=headers)["threadId"]
    return await ws.propose("alice", run, f"{run}:s{n}", f"{run}:s{n}:k", "reply_email", {"thread_id": tid, "body": "ok"})


def items(views: list[ActionView]) -> list[BatchItem]:
    return [BatchItem(id=v.id, args_hash=v.args_hash) for v in views]


async def test_approve_all_is_refused_for_a_group_with_an_outlier_and_each_is_approved_on_its_own(
        ws: Workspace, fake: FakeGoogle) -> None:
    clean = [await reply(ws, fake, f"lead{i}@example.test", "clean", i) for i in range(3)]
    mixed = [await reply(ws, fake, f"pat{i}@example.test", "mixed", i) for i in range(2)]
    mixed.append(await reply(ws, fake, "Boss <boss@example.test>", "mixed", 9,
                             headers={"Reply-To": "Boss <boss.private@evil.test>"}))
    odd = mixed[-1]
    assert odd.arguments["to"] == ["boss.private@evil.test"] and odd.arguments["to_source"] == "reply_to"
    assert odd.arguments["sender"] == "boss@example.test" and odd.arguments["reply_to"] == ["boss.private@evil.test"]
    assert "(its Reply-To)" in odd.summary

    listed = {v.id: v for v in await ws.list_actions("alice", "pending")}
    review = listed[odd.id].review
    assert review is not None and review.outliers == [
        "boss.private@evil.test: outside example.test and never approved before; the message's Reply-To, not its "
        "sender boss@example.test"]
    assert review.warnings[0].startswith("Reply-To (boss.private@evil.test) differs from From (boss@example.test)")
    assert (await ws.get_action("alice", odd.id)).review == review
    groups = {g.group: g for g in pending_groups(list(listed.values()))}
    assert groups["mixed:reply_email"].outliers.keys() == {odd.id} and groups["clean:reply_email"].approve_all

    with pytest.raises(ApprovalRefused) as refused:
        await ws.batch("alice", "approve", items(mixed), "alice")
    assert refused.value.reason == "outliers" and odd.id in str(refused.value)
    assert "boss.private@evil.test" in str(refused.value) and "Nothing was approved" in str(refused.value)
    assert {v.status for v in await ws.list_actions("alice", "pending")} == {"pending"}
    assert len(await ws.list_actions("alice", "pending")) == 6  # not one of the group was approved
    with pytest.raises(ApprovalRefused, match="outliers|Reply-To"):
        await ws.batch("alice", "approve", items([odd]), "alice")  # not even alone, in a batch

    result = await ws.batch("alice", "approve", items(clean), "alice")
    assert sorted(result.done) == sorted(v.id for v in clean) and result.refused == {}
    assert (await ws.approve("alice", odd.id, odd.args_hash, "alice")).status == "approved"  # on its own
    assert (await ws.batch("alice", "approve", items(mixed[:2]), "alice")).done == [v.id for v in mixed[:2]]
    assert (await ws.batch("alice", "reject", items([await reply(ws, fake, "x@evil.test", "r", 1)]),
                           "alice")).refused == {}  # rejecting many at once is always allowed

    again = await reply(ws, fake, "Boss <boss@example.test>", "later", 1, headers={"Reply-To": "boss.private@evil.test"})
    assert (await ws.get_action("alice", again.id)).review.outliers == []  # type: ignore[union-attr]
    assert (await ws.batch("alice", "approve", items([again]), "alice")).done == [again.id]  # approved once before


async def test_an_allow_policy_does_not_make_an_address_known(ws: Workspace, fake: FakeGoogle) -> None:
    await ws.set_policies({"send_email": "allow"}, "admin")
    sent = await ws.propose("alice", "p", "p:s1", "p:s1:k", "send_email",
                            {"to": ["eve@evil.test"], "subject": "s", "body": "b"})
    assert sent.status == "approved" and sent.decided_by == "policy"
    await ws.set_policies({"send_email": "ask"}, "admin")
    asked = await ws.propose("alice", "p", "p:s2", "p:s2:k", "send_email",
                             {"to": ["eve@evil.test"], "subject": "s", "body": "b"})
    with pytest.raises(ApprovalRefused, match="eve@evil.test"):
        await ws.batch("alice", "approve", items([asked]), "alice")


async def test_delete_event_shows_the_event_from_calendar_not_the_models_title(ws: Workspace, fake: FakeGoogle) -> None:
    start = time.time() + 86_400
    fake.add_event(summary="Board meeting", start=start, end=start + 3600, event_id="board0001",
                   attendees=["chair@example.test", "investor@fund.test"])
    proposed = await ws.propose("alice", "d", "d:s1", "d:s1:k", "delete_event",
                                {"event_id": "board0001", "title": "Duplicate placeholder (safe to delete)"})
    args = proposed.arguments
    assert args["title"] == "Board meeting" and args["attendees"] == ["chair@example.test", "investor@fund.test"]
    assert args["start"] and args["end"] and "placeholder" not in proposed.summary
    assert proposed.summary.startswith("Delete event 'Board meeting'")
    review = (await ws.get_action("alice", proposed.id)).review
    assert review is not None and review.warnings == [
        "Its attendees are told it is cancelled: chair@example.test, investor@fund.test"]
    with pytest.raises(ToolError, match="no event 'nope0001'"):
        await ws.propose("alice", "d", "d:s2", "d:s2:k", "delete_event", {"event_id": "nope0001", "title": "Lunch"})


async def test_update_event_shows_before_and_after_and_who_is_added_then_runs(ws: Workspace, fake: FakeGoogle) -> None:
    start = time.time() + 86_400
    fake.add_event(summary="Pricing review", start=start, end=start + 1800, event_id="price0001",
                   attendees=["ann@example.test"])
    proposed = await ws.propose("alice", "u", "u:s1", "u:s1:k", "update_event", {
        "event_id": "price0001", "attendees": ["ann@example.test", "spy@evil.test"], "description": "see notes",
        "before": {"title": "forged", "attendees": ["spy@evil.test"]}})
    before: dict[str, Any] = proposed.arguments["before"]
    assert before["title"] == "Pricing review" and before["attendees"] == ["ann@example.test"]
    assert before["description"] == "" and before["start"]
    assert proposed.summary == "Change event 'Pricing review': attendees, description; adds spy@evil.test"
    review = (await ws.get_action("alice", proposed.id)).review
    assert review is not None and review.warnings == ["Adds attendees: spy@evil.test (they are sent the event)"]
    assert review.outliers == ["spy@evil.test: outside example.test and never approved before"]
    await ws.approve("alice", proposed.id, proposed.args_hash, "alice")
    await ws._execute(proposed.id)  # the sweeper is off here: carry it out in this test
    done = await ws.get_action("alice", proposed.id)
    assert done.status == "done", done.error
    (event,) = [e for e in fake.events() if e["id"] == "price0001"]
    assert [a["email"] for a in event["attendees"]] == ["ann@example.test", "spy@evil.test"]
    assert event["description"] == "see notes" and event["summary"] == "Pricing review"
