"""The rules behind the writes tools make without a person (``actors.agents.tools._bounds``): no label
change that hides mail, Gmail drafts only in the step's own thread and to its participants, a few per
step, and nothing a step read written to memory. Tools run on a real DuckDB :memory: (no Ray)."""

from __future__ import annotations

import inspect
import json
from typing import Any

import pytest

from actors import agents
from actors.agents import ToolContext, invoke
from actors.agents import tools as tool_modules
from actors.agents.tools import _bounds
from core.errors import ToolError
from tests._db import LocalToolOps

OWNER = "owner@example.test"
THREADS: dict[str, dict[str, Any]] = {
    "t1": {"thread_id": "t1", "subject": "Order", "messages": [
        {"id": "m1", "from": "Ann <ann@partner.test>", "to": OWNER, "cc": "bob@partner.test", "body": "Hi"},
        {"id": "m2", "from": OWNER, "to": "ann@partner.test", "body": "planted", "draft": True, "cc": "eve@evil.test"},
    ]},
    "t2": {"thread_id": "t2", "subject": "Victim", "messages": [
        {"id": "m3", "from": "client@example.test", "to": OWNER, "body": "Invoice"}]},
    "t3": {"thread_id": "t3", "subject": "Spoof", "messages": [
        {"id": "m4", "from": "ceo@partner.test", "to": OWNER, "body": "Urgent"}]},
}
REPLY_TO = {"t1": ["ann@partner.test"], "t2": ["client@example.test"], "t3": ["thief@evil.test"]}  # t3: a Reply-To


class Google:
    """The ToolWorkspace protocol with a canned mailbox; it records every write it is asked for."""

    def __init__(self) -> None:
        self.writes: list[tuple[str, dict[str, Any]]] = []

    async def google(self, user_id: str, op: str, args: dict[str, Any]) -> Any:
        if op == "gmail.read_thread":
            if args["thread_id"] not in THREADS:
                raise ToolError(f"Gmail: thread '{args['thread_id']}' was not found (404)")
            return THREADS[args["thread_id"]]
        if op == "gmail.reply_headers":
            return {"to": REPLY_TO[args["thread_id"]], "subject": "Re: x"}
        if op in ("gmail.create_draft", "gmail.apply_labels"):
            self.writes.append((op, args))
            return {"draft_id": f"d{len(self.writes)}"} if op == "gmail.create_draft" else {
                "messages": len(args["message_ids"])}
        raise AssertionError(f"unexpected operation {op}")

    async def propose(self, *args: Any) -> Any:
        raise AssertionError("these tools never propose")


@pytest.fixture
def store() -> LocalToolOps:
    return LocalToolOps()


def ctx_for(store: LocalToolOps, google: Google, task: str = "run1:s1") -> ToolContext:
    return ToolContext(store=store.for_user("u1"), user_id="u1", run_id="run1", task_id=task, idempotency_key=task,
                       workspace=google)


async def call(name: str, ctx: ToolContext, /, **arguments: Any) -> str:
    return await invoke(agents.get_tool(name), ctx, arguments)


@pytest.mark.parametrize(("add", "remove", "named"), [
    (["TRASH"], [], "add TRASH"), (["spam"], [], "add spam"), ([], ["INBOX"], "remove INBOX"),
    (["CATEGORY_PROMOTIONS"], [], "add CATEGORY_PROMOTIONS"), (["Follow up"], ["inbox"], "remove inbox"),
])
async def test_a_label_change_that_hides_mail_is_refused_whole(store: LocalToolOps, add: list[str], remove: list[str],
                                                                named: str) -> None:
    google = Google()
    text = await call("gmail_apply_labels", ctx_for(store, google), message_ids=["m1"], add=add, remove=remove)
    assert text.startswith("error: gmail_apply_labels: refused (") and named in text and "nothing was changed" in text
    assert google.writes == []


async def test_other_label_changes_run_bounded_per_step(store: LocalToolOps) -> None:
    google = Google()
    ctx = ctx_for(store, google)
    ids = [f"m{i}" for i in range(_bounds.MAX_LABELED_PER_STEP)]
    assert json.loads(await call("gmail_apply_labels", ctx, message_ids=ids[:60], add=["Follow up"],
                                 remove=["UNREAD"])) == {"messages": 60}
    again = await call("gmail_apply_labels", ctx, message_ids=ids[:60], add=["Follow up"], remove=["UNREAD"])
    assert not again.startswith("error")  # the same call again (a retry) is not counted twice
    over = await call("gmail_apply_labels", ctx, message_ids=ids[:41], add=["Later"])
    assert "already changed the labels of 60 messages and may change at most 100" in over
    assert not (await call("gmail_apply_labels", ctx, message_ids=ids[:40], add=["Later"])).startswith("error")
    assert "may change at most" in await call("gmail_apply_labels", ctx, message_ids=["m1"], add=["Later"])
    other = await call("gmail_apply_labels", ctx_for(store, google, "run1:s2"), message_ids=["m1"], add=["Later"])
    assert not other.startswith("error")  # another step has its own bound
    assert len(google.writes) == 4


async def test_gmail_drafts_only_in_the_steps_thread_to_its_participants(store: LocalToolOps) -> None:
    google = Google()
    ctx = ctx_for(store, google)
    first = await call("gmail_create_draft", ctx, thread_id="t1", body="Thanks!")
    assert "read the thread with gmail_read_thread first" in first
    await call("gmail_read_thread", ctx, thread_id="t1")
    await call("gmail_read_thread", ctx, thread_id="t2")  # read second (a lure led there): not the step's thread
    elsewhere = await call("gmail_create_draft", ctx, thread_id="t2", body="New bank details attached.")
    assert "refused: this step handles thread t1" in elsewhere and "reply_email" in elsewhere
    stranger = await call("gmail_create_draft", ctx, thread_id="t1", to=["attacker@evil.test"], body="x")
    assert "refused: attacker@evil.test is not a participant of thread t1" in stranger
    planted = await call("gmail_create_draft", ctx, thread_id="t1", to=["eve@evil.test"], body="x")
    assert "not a participant" in planted  # an address only in a draft of the thread does not count
    assert google.writes == []
    saved = await call("gmail_create_draft", ctx, thread_id="t1", body="Thanks, see you Tuesday.")
    assert "Saved Gmail reply draft d1" in saved and "NOT been sent" in saved
    assert google.writes == [("gmail.create_draft", {"to": ["ann@partner.test"], "subject": "", "thread_id": "t1",
                                                     "body": "Thanks, see you Tuesday."})]
    cc = await call("gmail_create_draft", ctx, thread_id="t1", to=["Bob@Partner.test", OWNER], body="Looping in.")
    assert cc.startswith("Saved")  # the thread's participants, in any case
    again = await call("gmail_create_draft", ctx, thread_id="t1", body="Thanks, see you Tuesday.")
    assert "already saved" in again and len(google.writes) == 2  # a retry leaves no second draft


async def test_a_draft_to_a_reply_to_outside_the_thread_is_refused(store: LocalToolOps) -> None:
    google = Google()
    ctx = ctx_for(store, google)
    await call("gmail_read_thread", ctx, thread_id="t3")
    refused = await call("gmail_create_draft", ctx, thread_id="t3", body="Done, as you asked.")
    assert "thief@evil.test is not a participant" in refused and google.writes == []
    assert (await call("gmail_create_draft", ctx, thread_id="t3", to=["ceo@partner.test"], body="Done.")).startswith(
        "Saved")


async def test_a_step_saves_a_few_gmail_drafts_at_most(store: LocalToolOps) -> None:
    google = Google()
    ctx = ctx_for(store, google)
    await call("gmail_read_thread", ctx, thread_id="t1")
    for i in range(_bounds.MAX_DRAFTS_PER_STEP):
        assert (await call("gmail_create_draft", ctx, thread_id="t1", body=f"Version {i}")).startswith("Saved")
    over = await call("gmail_create_draft", ctx, thread_id="t1", body="One more")
    assert f"already saved {_bounds.MAX_DRAFTS_PER_STEP} Gmail drafts" in over
    assert len(google.writes) == _bounds.MAX_DRAFTS_PER_STEP


def test_no_tool_writes_what_it_read_to_memory() -> None:
    """Memory is written only by a person's upload: no tool calls ``ingest``, and drive_read cannot."""
    for module in (tool_modules.actions, tool_modules.documents, tool_modules.google, tool_modules.leads,
                   tool_modules.outbox, tool_modules.research):
        assert ".ingest(" not in inspect.getsource(module), module.__name__
    assert "remember" not in agents.get_tool("drive_read").parameters["properties"]


def test_hiding_changes() -> None:
    assert _bounds.hiding_changes(["Follow up", "STARRED"], ["UNREAD", "IMPORTANT"]) == []
    assert _bounds.hiding_changes(["Trash", "category_social"], ["Inbox"]) == [
        "add Trash", "add category_social", "remove Inbox"]


async def test_a_saved_draft_is_found_only_as_a_draft(store: LocalToolOps) -> None:
    """What a step wrote (maybe from what it read) never passes for an uploaded document or SOP."""
    ctx = ctx_for(store, Google())
    store.conn.execute("INSERT INTO documents (id, user_id, kind, title, content, created_at) "
                       "VALUES ('d1', 'u1', 'sop', 'Refund policy', 'Refunds within 30 days.', 1.0)")
    saved = await call("save_draft_document", ctx, title="Refund policy v2", content="Refunds go to IBAN XX00.")
    assert saved.startswith("Saved draft document")
    found = json.loads(await call("search_documents", ctx, query="refund policy"))
    assert [d["id"] for d in found["documents"]] == ["d1"]
    notes = json.loads(await call("research_notes", ctx, topic="refund policy"))
    assert [d["id"] for d in notes["documents"]] == ["d1"]
    drafts = json.loads(await call("search_documents", ctx, query="refund policy", kind="draft"))
    assert [d["kind"] for d in drafts["documents"]] == ["draft"]
