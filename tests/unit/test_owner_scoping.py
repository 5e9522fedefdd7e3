"""Every record scoped to its owner, in storage (on :memory: through the Store, no Ray): with a
``user_id`` a lookup finds only that person's runs, conversations, steps and drafts; another
person's record is the same None / NotFound as an unknown id."""

from __future__ import annotations

import pytest

from actors.storage import drafts
from actors.storage.queue import RetryPolicy
from actors.store import Store
from core.errors import NotFound
from core.schemas import Plan, PlanStep


async def _run(store: Store, user: str, message: str) -> tuple[str, str]:
    run = await store.create_run(message, user)
    await store.enqueue_plan(run.id, Plan(goal="g", steps=[PlanStep(id="s1", agent="writing", instruction=message)]),
                             max_attempts=2)
    return run.id, run.conversation_id


async def test_runs_conversations_steps_and_drafts_are_found_only_by_their_owner() -> None:
    store = Store(":memory:", retry=RetryPolicy(base_s=0, max_s=0))
    a_run, a_conv = await _run(store, "alice", "alice's request")
    b_run, b_conv = await _run(store, "bob", "bob's request")
    drafts.save(store._conn, "alice", f"{a_run}:s1", "email", "x@example.test", "s", "b", "k1", 1.0)

    # runs
    assert (await store.get_run(a_run, user_id="alice")) is not None
    assert await store.get_run(a_run, user_id="bob") is None
    assert (await store.get_run(a_run)) is not None  # no user: the system's own view (the actors)
    # conversations
    assert (await store.get_conversation(a_conv, user_id="alice")).conversation.id == a_conv
    with pytest.raises(NotFound, match=a_conv):
        await store.get_conversation(a_conv, user_id="bob")
    assert [c.id for c in await store.list_conversations(user_id="bob")] == [b_conv]
    assert {c.id for c in await store.list_conversations()} == {a_conv, b_conv}
    assert await store.list_conversations(q="alice", user_id="bob") == []
    # steps
    assert [t.run_id for t in await store.list_tasks(user_id="bob")] == [b_run]
    assert await store.list_tasks(run_id=a_run, user_id="bob") == []
    assert (await store.get_task(f"{a_run}:s1", user_id="alice")) is not None
    assert await store.get_task(f"{a_run}:s1", user_id="bob") is None
    # drafts
    assert [d.task_id for d in await store.list_drafts(user_id="alice")] == [f"{a_run}:s1"]
    assert await store.list_drafts(user_id="bob") == []
    assert await store.list_drafts(run_id=a_run, user_id="bob") == []
    assert len(await store.list_drafts()) == 1


async def test_the_audit_shows_a_member_theirs_and_an_admin_everyones_and_the_installs() -> None:
    """Rows with no user (a failed login of an unknown name, with the name typed) are an admin's to
    see, but for the install's policy changes, which hold everyone's agents."""
    from core.action_schemas import AuditEntry

    store = Store(":memory:", retry=RetryPolicy(base_s=0, max_s=0))
    for n, user in enumerate(("alice", "bob", None)):
        await store.record_audit(AuditEntry(id=f"e{n}", occurred_at=float(n), user_id=user, actor=user or "system",
                                            action="login.failed", detail={}))
    await store.record_audit(AuditEntry(id="e3", occurred_at=3.0, user_id=None, actor="alice", action="policy.changed",
                                        detail={"send_email": "allow"}))
    assert {e.id for e in await store.audit_entries(user_id="bob", run_id=None, action=None, limit=10)} == {"e1", "e3"}
    assert {e.id for e in await store.audit_entries(user_id=None, run_id=None, action=None, limit=10)} == {
        "e0", "e1", "e2", "e3"}
