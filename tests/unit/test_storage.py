"""The storage package's functions on ``:memory:`` (no Ray), and the one place a tool's user is set:
through the ToolStore a step's tools get, another user's rows are neither seen nor changed."""

from __future__ import annotations

import time

import duckdb
import pytest

from actors.storage import actions, credentials, documents, leads, runs, tool_effects
from actors.storage.events import EventLog
from actors.storage.migrations import migrate
from core.crypto import Sealed
from core.schemas import Plan, PlanStep, Run
from core.storage_schemas import NewLead, StoredAction, UpdateLead
from tests._db import LocalToolOps


@pytest.fixture
def conn() -> duckdb.DuckDBPyConnection:
    c = duckdb.connect(":memory:")
    migrate(c)
    return c


async def test_a_steps_tools_see_and_change_only_their_users_rows() -> None:
    db = LocalToolOps()
    ann, eve = db.for_user("ann"), db.for_user("eve")
    assert await ann.add_leads([NewLead(id="l1", name="Dana Prospect", email="dana@example.test", tags=["vip"])],
                               source="csv") == ["l1"]
    await ann.save_draft("r1:s1", "email", "dana@example.test", "Offer", "Secret price", key="r1:s1:email")
    saved = await ann.save_document_draft("r1:s1", "Plan", "the secret plan", key="r1:s1:Plan")
    await ann.record_tool_effect("r1:s1", "gmail_create_draft", "r1:s1:d", {"draft_id": "g1"})
    db.conn.execute("INSERT INTO documents (id, user_id, kind, title, content, created_at) "
                    "VALUES ('d1', 'ann', 'sop', 'Secret process', 'the secret process', 0)")

    assert await eve.find_leads(tag=None, text=None, status=None, limit=50) == []
    assert await eve.find_leads(tag="vip", text="dana", status=None, limit=50) == []
    assert await eve.search_leads(["dana", "prospect"], 10) == []
    assert await eve.existing_lead("Dana Prospect", "dana@example.test", None) is None
    assert await eve.update_lead("l1", status="lost", note="mine now") is None
    assert await eve.list_drafts(None, 50) == []
    assert await eve.search_documents(["secret"], None, 10) == []
    assert await eve.search_documents(["secret"], "draft", 10) == []
    assert await eve.read_document("d1") is None and await eve.read_document(str(saved.id)) is None
    assert await eve.tool_effects("r1:s1", "gmail_create_draft") == []
    assert await eve.tool_effect("r1:s1:d") is None
    again = await eve.save_draft("r1:s1", "email", "x@example.test", "Offer", "b", key="r1:s1:email")
    assert again.created is False and again.id is None  # the key is ann's: nothing of hers comes back
    assert await eve.add_leads([NewLead(id="l2", name="Dana Prospect", email="dana@example.test")],
                               source="csv") == ["l2"]  # not a duplicate: ann's lead is not eve's

    [lead] = await ann.find_leads(tag="vip", text=None, status=None, limit=50)
    assert lead.id == "l1" and lead.status == "new" and lead.notes is None  # untouched by eve
    assert [d.body for d in await ann.list_drafts(None, 50)] == ["Secret price"]
    assert {op.user_id for op in db.sent} == {"ann", "eve"}  # every operation carried its step's user


def test_leads_are_added_once_and_updated_with_notes_appended(conn: duckdb.DuckDBPyConnection) -> None:
    new = [NewLead(id="a", name="Ann", email="ANN@x.test"), NewLead(id="b", name="Bo", company="Acme")]
    assert leads.add(conn, "u", new, "csv", 100.0) == ["a", "b"]
    again = [NewLead(id="c", name="ann", email="ann@x.test"), NewLead(id="d", name="bo", company="ACME")]
    assert leads.add(conn, "u", again, "csv", 101.0) == []  # the same email (any case); the same name and company
    assert leads.existing(conn, "u", "BO", None, "acme") == "b"
    assert [x.id for x in leads.find(conn, "u", None, None, None, 10)] == ["b", "a"]  # newest first
    change = UpdateLead(user_id="u", lead_id="a", status="contacted", note="line 1")
    leads.update(conn, "u", change, 102.0)
    updated = leads.update(conn, "u", change.model_copy(update={"note": "line 2", "tags": ["vip"]}), 103.0)
    assert updated is not None and updated.notes == "line 1\nline 2" and updated.tags == ["vip"]
    assert [x.id for x in leads.search(conn, "u", ["vip", "ann"], 5)] == ["a"]


def test_saved_drafts_are_found_only_when_drafts_are_asked_for(conn: duckdb.DuckDBPyConnection) -> None:
    first = documents.save_draft(conn, "u", "r:s1", "Note", "refund steps", "r:s1:Note", 1.0)
    assert first.created and documents.save_draft(conn, "u", "r:s1", "Note", "other", "r:s1:Note", 2.0).id == first.id
    conn.execute("INSERT INTO documents (id, user_id, kind, title, content, created_at) "
                 "VALUES ('d1', 'u', 'sop', 'Refunds', 'refund refund policy', 0)")
    assert [d.id for d in documents.search(conn, "u", ["refund"], None, 5)] == ["d1"]
    assert [d.id for d in documents.search(conn, "u", ["refund"], "draft", 5)] == [first.id]
    read = documents.read(conn, "u", str(first.id))
    assert read is not None and read.content == "refund steps"


def test_tool_effects_are_noted_once_per_key(conn: duckdb.DuckDBPyConnection) -> None:
    assert tool_effects.record(conn, "u", "r:s1", "labels", "k1", {"messages": 3}, 1.0)
    assert not tool_effects.record(conn, "u", "r:s1", "labels", "k1", {"messages": 9}, 2.0)
    tool_effects.record(conn, "u", "r:s1", "labels", "k2", {"messages": 4}, 3.0)
    assert tool_effects.of_step(conn, "u", "r:s1", "labels", besides="k2") == [{"messages": 3}]
    assert tool_effects.by_key(conn, "u", "k2") == {"messages": 4}


def _action(key: str, status: str = "pending", expires_at: float = 1e12) -> StoredAction:
    return StoredAction(id=f"act_{key}", user_id="u", run_id="r", task_id="r:s1", action="send_email", status=status,
                        args_hash="h", ciphertext=b"c", nonce=b"n", key_id="k", idempotency_key=key, group="r:send_email",
                        created_at=1.0, expires_at=expires_at)


def test_an_action_is_recorded_once_per_key_decided_once_and_claimed_by_one(conn: duckdb.DuckDBPyConnection) -> None:
    first, created = actions.insert(conn, _action("k1"))
    again, created_again = actions.insert(conn, _action("k1").model_copy(update={"id": "act_other"}))
    assert created and not created_again and again.id == first.id
    assert actions.decide(conn, "someone", first.id, "h", "approved", "x", None, None, 2.0) is None  # not theirs
    assert actions.decide(conn, "u", first.id, "other-hash", "approved", "u", None, None, 2.0) is None
    new_seal = (Sealed(b"c2", b"n2", "k"), b"stale-nonce")
    assert actions.decide(conn, "u", first.id, "h", "approved", "u", None, new_seal, 2.0) is None  # re-sealed since
    decided = actions.decide(conn, "u", first.id, "h", "approved", "u", None, (Sealed(b"c2", b"n2", "k"), b"n"), 2.0)
    assert decided is not None and decided.status == "approved" and decided.nonce == b"n2"
    assert actions.decide(conn, "u", first.id, "h", "approved", "u", None, None, 3.0) is None  # used once
    assert actions.due(conn, include_executing=False) == [first.id]
    claimed = actions.claim(conn, first.id, 4.0)
    assert claimed is not None and claimed.status == "executing" and claimed.attempts == 1
    assert actions.record_staged(conn, first.id, {"draft_id": "d1"}, 5.0)
    actions.finish(conn, first.id, "done", {"message_id": "m1"}, None, 6.0)
    assert actions.claim(conn, first.id, 7.0) is None and not actions.record_staged(conn, first.id, {}, 8.0)
    [done] = actions.get(conn, "u", [first.id, "act_unknown"])
    assert done.status == "done" and done.staged == '{"draft_id": "d1"}' and done.result == '{"message_id": "m1"}'
    assert actions.proposed_counts(conn, "r:s1", "r") == (1, 1) and actions.runs_with(conn, ["r", "x"], ["done"]) == {"r"}


def test_expired_and_pending_actions_are_told_apart_by_the_deadline(conn: duckdb.DuckDBPyConnection) -> None:
    actions.insert(conn, _action("late", expires_at=5.0))
    actions.insert(conn, _action("fresh", expires_at=50.0))
    assert [a.idempotency_key for a in actions.listed(conn, "u", "expired", None, 10, now=10.0)] == ["late"]
    assert [a.idempotency_key for a in actions.listed(conn, "u", "pending", None, 10, now=10.0)] == ["fresh"]
    assert actions.listed(conn, "v", None, None, 10, now=10.0) == []


def test_credentials_stay_sealed_and_a_sign_in_state_is_taken_once(conn: duckdb.DuckDBPyConnection) -> None:
    sealed = Sealed(b"ct", b"nonce", "k1")
    credentials.save(conn, "row1", "u", "google", ["a", "b"], sealed, 1.0)
    credentials.save(conn, "row1", "u", "google", ["a"], Sealed(b"ct2", b"n2", "k2"), 2.0)  # replaced, not added
    loaded = credentials.load(conn, "u", "google")
    assert loaded is not None and (loaded.id, loaded.ciphertext, loaded.status) == ("row1", b"ct2", "connected")
    assert credentials.id_of(conn, "u", "google") == "row1" and credentials.load(conn, "v", "google") is None
    assert [r.row_id for r in credentials.not_under(conn, "oauth_credentials", "k1")] == ["row1"]
    credentials.put_state(conn, "s1", "u", "google", ["gmail_read"], "http://x/cb", sealed, 1.0, 100.0)
    taken = credentials.take_state(conn, "s1", 2.0)
    assert taken is not None and taken.features == ["gmail_read"] and taken.ciphertext == b"ct"
    assert credentials.take_state(conn, "s1", 3.0) is None  # used once
    credentials.put_state(conn, "s2", "u", "google", [], "http://x/cb", sealed, 1.0, 2.0)
    assert credentials.take_state(conn, "s2", 3.0) is None  # expired


def test_a_runs_progress_and_usage(conn: duckdb.DuckDBPyConnection) -> None:
    log = EventLog()
    now = time.time()
    runs.create(conn, log, Run(id="r1", conversation_id="c1", user_id="u", message="hello", status="planning",
                               created_at=now, updated_at=now))
    plan = Plan(goal="g", steps=[PlanStep(id="a", agent="leads", instruction="i"),
                                 PlanStep(id="b", agent="email", instruction="i", depends_on=["a"])])
    runs.start(conn, log, "r1", plan, 3, now)
    progress = runs.progress(conn, "r1")
    assert progress is not None and progress.status == "running" and progress.tasks == {"ready": 1, "pending": 1}
    assert runs.progress(conn, "nope") is None
    runs.record_llm_calls(conn, [{"run_id": "r1", "agent": "master", "tokens_in": 10, "tokens_out": 4, "ok": True,
                                  "created_at": now}] * 2)
    usage = runs.usage(conn, "r1")
    assert (usage.llm_calls, usage.tokens_in, usage.tokens_out, usage.step_runs) == (2, 20, 8, {})
    runs.finish(conn, log, "r1", "done", "all done", None, now)
    view = runs.get(conn, "r1")
    assert view is not None and view.run.summary == "all done" and [t.step_id for t in view.tasks] == ["a", "b"]
