"""Store operations whose work lives in ``actors.storage`` functions (runs.new, runs.conversation,
conversations.new, events.append_tokens and EventLog.read_or_wait, stopping.answer,
accounts.authenticate, credentials.put_state_for, tool_ops.run), through the Store on :memory:
(no Ray): what each answers and what it leaves in the database."""

from __future__ import annotations

import asyncio
import time

import pytest

from actors.store import Store
from core.budget import Budget
from core.crypto import Sealed
from core.errors import NotFound
from core.storage_schemas import RecordToolEffect, ToolEffect
from tests._db import sql


async def test_a_new_run_is_planning_in_a_new_conversation_with_its_budget_and_its_request_as_a_message() -> None:
    store = Store(":memory:")
    run = await store.create_run("find the venues", "u1", budget=Budget(max_tokens=100, deadline_s=60))
    assert run.status == "planning" and run.user_id == "u1" and run.created_at == run.updated_at
    assert run.id != run.conversation_id
    stored = await store.get_run(run.id)
    assert stored is not None and stored.run.conversation_id == run.conversation_id
    [(_, budget, used, _)] = await store.budget_usage()
    assert budget == Budget(max_tokens=100, deadline_s=60) and used == 0
    again = await store.create_run("and the caterers", "u1", run.conversation_id)
    assert again.conversation_id == run.conversation_id and again.id != run.id
    view = await store.get_conversation(run.conversation_id, "u1")
    assert [m.content for m in view.messages] == ["find the venues", "and the caterers"]
    assert [r.id for r in view.runs] == [run.id, again.id]
    assert [(rid, b) for rid, b, _, _ in await store.budget_usage() if rid == again.id] == [(again.id, None)]
    store.close()


async def test_a_conversation_is_made_empty_and_is_another_persons_only_as_not_found() -> None:
    store = Store(":memory:")
    made = await store.create_conversation("u1", None)
    assert made.title == "" and len(made.id) == 12
    titled = await store.create_conversation("u1", "Venues")
    assert {c.id for c in await store.list_conversations(user_id="u1")} == {made.id, titled.id}
    assert await store.list_conversations(user_id="u2") == []
    view = await store.get_conversation(titled.id, "u1")
    assert view.conversation.title == "Venues" and view.messages == [] and view.runs == []
    with pytest.raises(NotFound, match=titled.id):
        await store.get_conversation(titled.id, "u2")
    with pytest.raises(NotFound, match="nope"):
        await store.get_conversation("nope")
    store.close()


async def test_tokens_are_numbered_events_and_a_waiting_reader_gets_the_next_ones() -> None:
    store = Store(":memory:")
    run = await store.create_run("hello", "u1")
    first = await store.run_events(run.id)
    assert [e.kind for e in first] == ["status"]
    await store.append_tokens([(run.id, "plan", "Fir"), (run.id, "plan", "st")])
    tokens = await store.run_events(run.id, after=first[-1].seq or 0)
    assert [(e.kind, e.phase, e.text) for e in tokens] == [("token", "plan", "Fir"), ("token", "plan", "st")]
    last = tokens[-1].seq or 0
    assert await store.run_events(run.id, after=last) == []  # no wait asked: at once
    waiting = asyncio.create_task(store.run_events(run.id, after=last, wait_s=60))
    await asyncio.sleep(0)  # one turn: the reader has read nothing and waits before the write lands
    await store.append_tokens([(run.id, "summary", "Done")])
    got = await asyncio.wait_for(waiting, 30)
    assert [(e.phase, e.text) for e in got] == [("summary", "Done")]
    store.close()


async def test_cancel_answers_newly_once_then_the_status_it_left() -> None:
    store = Store(":memory:")
    run = await store.create_run("hello", "u1")
    out = await store.cancel_run(run.id, "u1", "stop")
    assert out.run_id == run.id and out.cancelled and out.status == "cancelled" and out.stopped_steps == []
    again = await store.cancel_run(run.id, "u1", "stop")
    assert not again.cancelled and again.status == "cancelled"
    store.close()


async def test_a_session_use_is_noted_at_most_once_a_minute_and_an_idle_one_is_refused() -> None:
    store = Store(":memory:")
    user = await store.create_user("u1", "ann", "member", "hash")
    await store.add_credential("session", user.id, "s-hash", "", time.time() + 3600)
    seen = sql(store, "SELECT last_seen_at FROM sessions WHERE token_hash = 's-hash'")[0][0]
    assert (await store.authenticate("session", "s-hash", idle_s=600)) == user
    assert sql(store, "SELECT last_seen_at FROM sessions WHERE token_hash = 's-hash'")[0][0] == seen  # within a minute
    sql(store, "UPDATE sessions SET last_seen_at = ? WHERE token_hash = 's-hash'", [time.time() - 120])
    assert (await store.authenticate("session", "s-hash", idle_s=600)) == user
    assert sql(store, "SELECT last_seen_at FROM sessions WHERE token_hash = 's-hash'")[0][0] > time.time() - 60
    sql(store, "UPDATE sessions SET last_seen_at = ? WHERE token_hash = 's-hash'", [time.time() - 700])
    assert await store.authenticate("session", "s-hash", idle_s=600) is None  # idle past idle_s
    assert await store.authenticate("session", "unknown", idle_s=600) is None
    await store.add_credential("api_token", user.id, "t-hash", "ci", None)
    assert (await store.authenticate("api_token", "t-hash", idle_s=600)) == user
    assert sql(store, "SELECT last_used_at IS NOT NULL FROM api_tokens WHERE token_hash = 't-hash'") == [(True,)]
    assert await store.authenticate("api_token", "s-hash", idle_s=600) is None  # a session is not a token
    store.close()


async def test_an_oauth_state_is_taken_once_within_its_time_to_live() -> None:
    store = Store(":memory:")
    sealed = Sealed(ciphertext=b"c", nonce=b"n", key_id="k1")
    await store.put_oauth_state("live", "u1", "google", ["gmail_read"], "http://x/cb", sealed, ttl_s=600)
    await store.put_oauth_state("gone", "u1", "google", [], "http://x/cb", sealed, ttl_s=-1)
    (created, expires), = sql(store, "SELECT created_at, expires_at FROM oauth_states WHERE state = 'live'")
    assert expires - created == pytest.approx(600)
    state = await store.take_oauth_state("live")
    assert state is not None and state.user_id == "u1" and state.features == ["gmail_read"]
    assert await store.take_oauth_state("live") is None  # used
    assert await store.take_oauth_state("gone") is None  # expired
    store.close()


async def test_tool_operations_answer_in_order_writes_committed_and_reads_on_the_reader() -> None:
    store = Store(":memory:")
    record = RecordToolEffect(user_id="u1", task_id="r:s1", tool="label", key="k1", result={"n": 2})
    first = await store.tool_ops([record])
    assert first == [True]
    answers = await store.tool_ops([record, ToolEffect(user_id="u1", key="k1"), ToolEffect(user_id="u2", key="k1")])
    assert answers == [False, {"n": 2}, None]  # noted once; another user's key is not theirs
    store.close()
