"""The run event log, conversation search, saved settings and the HTTP models — on :memory: DuckDB, no Ray."""

from __future__ import annotations

import asyncio
import inspect
import pickle
from pathlib import Path

import pytest
from pydantic import BaseModel, ValidationError

import core.errors
from actors.storage.conversations import title_of
from actors.store import Store
from core.errors import ConfigError, MaosError, NotFound
from core.schemas import (
    AgentPoolView,
    AgentsView,
    ConversationSummary,
    ConversationView,
    EditableSettings,
    Message,
    Plan,
    PlanStep,
    RunAccepted,
    RunEvent,
    SettingsView,
    StepOutcome,
)
from core.settings import Settings, overlay
from serve_app.live_settings import changes_of, editable

PLAN = Plan(goal="g", steps=[PlanStep(id="s1", agent="leads", instruction="find them"),
                             PlanStep(id="s2", agent="writing", instruction="write", depends_on=["s1"])])


async def test_a_run_logs_its_life_in_order_and_wakes_readers_on_commit() -> None:
    store = Store(":memory:")
    run = await store.create_run("follow up with webinar leads", "u1")
    await store.enqueue_plan(run.id, PLAN, 3)
    reader = asyncio.create_task(store.run_events(run.id, after=4, wait_s=10))
    await asyncio.sleep(0.05)
    assert not reader.done()  # nothing new yet: the reader waits
    claimed = await store.claim({"leads": 5}, {"leads": ["l/0"]}, 30)
    woken = await asyncio.wait_for(reader, 5)
    assert [(e.kind, e.status, e.step_id) for e in woken] == [("task", "running", "s1")]
    task = claimed[0][0]
    await store.complete([StepOutcome(task_id=task.id, attempt=task.attempts, ok=True, result="3 leads found")])
    await store.finish_run(run.id, "done", "All three leads have drafts.", None)

    events = await store.run_events(run.id)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert [(e.kind, e.status) for e in events[:4]] == [("status", "planning"), ("plan", None), ("status", "running"),
                                                        ("task", "ready")]
    done = next(e for e in events if e.kind == "task" and e.status == "done")
    assert done.text == "3 leads found" and done.step_id == "s1" and done.agent == "leads"
    assert [e.kind for e in events[-2:]] == ["summary", "end"] and events[-1].status == "done"
    assert await store.run_events(run.id, after=events[-1].seq) == []
    assert await store.run_events(run.id, after=events[-1].seq, wait_s=0.05) == []  # times out empty


async def test_a_failed_write_leaves_a_gap_never_a_repeat() -> None:
    store = Store(":memory:", commit_interval_s=0.05)
    run = await store.create_run("x", "u1")
    bad = store.save_settings_overrides({"max_turns": {1, 2}})  # not JSON: fails in the transaction
    good = store.append_tokens([(run.id, "plan", "{")])
    results = await asyncio.gather(bad, good, return_exceptions=True)
    assert isinstance(results[0], TypeError) and results[1] is None
    await store.append_tokens([(run.id, "plan", '"goal"')])
    seqs = [e.seq for e in await store.run_events(run.id)]
    assert seqs == sorted(set(seqs))
    assert [e.text for e in await store.run_events(run.id) if e.kind == "token"] == ["{", '"goal"']


async def test_a_store_reopened_on_the_same_file_numbers_on() -> None:
    import tempfile

    path = str(Path(tempfile.mkdtemp()) / "s.duckdb")
    store = Store(path)
    run = await store.create_run("x", "u1")
    await store.append_tokens([(run.id, "plan", "a")])
    store.close()
    again = Store(path)
    await again.append_tokens([(run.id, "plan", "b")])
    assert [e.seq for e in await again.run_events(run.id)] == [1, 2, 3]


async def test_conversations_search_by_text_status_agent_and_date() -> None:
    store = Store(":memory:")
    first = await store.create_run("Follow up with the WEBINAR leads", "u1")
    await store.enqueue_plan(first.id, PLAN, 3)
    await store.finish_run(first.id, "failed", None, "gave up")
    empty = await store.create_conversation("u1", None)
    second = await store.create_run("book a review call 100% of the time", "u1", empty.id)

    found = await store.list_conversations(q="webinar")
    assert [c.id for c in found] == [first.conversation_id] and found[0].last_status == "failed"
    assert found[0].agents == ["leads", "writing"]
    assert [c.id for c in await store.list_conversations(q="100%")] == [second.conversation_id]
    assert [c.id for c in await store.list_conversations(q="%")] == [second.conversation_id]  # % is literal
    assert [c.id for c in await store.list_conversations(agent="writing")] == [first.conversation_id]
    assert [c.id for c in await store.list_conversations(status="planning")] == [second.conversation_id]
    assert await store.list_conversations(since=second.created_at + 60) == []
    view = await store.get_conversation(empty.id)
    assert view.conversation.title == "book a review call 100% of the time"  # an untitled one takes the first message
    assert [m.role for m in view.messages] == ["user"] and [r.id for r in view.runs] == [second.id]
    with pytest.raises(NotFound, match="no conversation 'nope'"):
        await store.get_conversation("nope")


def test_titles_are_one_shortened_line() -> None:
    assert title_of("  call\n\nthe   leads ") == "call the leads"
    long = title_of("word " * 40)
    assert len(long) <= 81 and long.endswith("…") and not long.endswith(" …")


async def test_saved_settings_overlay_validated_and_null_only_where_it_means_default(tmp_path: Path) -> None:
    base = Settings(data_dir=tmp_path, llm_slots=4)
    assert overlay(base, {"llm_slots": 9, "from_an_older_version": 1}).llm_slots == 9
    with pytest.raises(ValidationError):
        overlay(base, {"llm_slots": 0})
    assert changes_of(EditableSettings(llm_model=None, max_turns=3)) == {"llm_model": None, "max_turns": 3}
    with pytest.raises(ConfigError, match="max_turns: cannot be empty"):
        changes_of(EditableSettings(max_turns=None))
    assert editable(base).llm_slots == 4

    store = Store(str(base.db_path))
    assert await store.settings_overrides() == {}  # a new database: nothing saved
    await store.save_settings_overrides({"max_turns": 2, "stream_replies": False})
    store.close()
    again = Store(str(base.db_path))  # the next start reads them from the Store (serve_app.boot)
    saved = overlay(base, await again.settings_overrides())
    again.close()
    assert (saved.max_turns, saved.stream_replies, saved.llm_slots) == (2, False, 4)


def _samples() -> list[BaseModel]:
    summary = ConversationSummary(id="c1", title="t", created_at=1.0, updated_at=2.0, runs=1, last_status="done",
                                  agents=["leads"])
    return [
        RunEvent(kind="plan", run_id="r1", seq=2, at=1.0, plan=PLAN),
        RunEvent(kind="task", run_id="r1", seq=3, at=1.0, status="done", task_id="r1:s1", step_id="s1", agent="leads",
                 attempt=1, text="ok"),
        ConversationView(conversation=summary,
                         messages=[Message(id="m", role="user", content="hi", run_id="r1", created_at=1.0)]),
        RunAccepted(run_id="r1", conversation_id="c1", status="planning", events_url="/api/runs/r1/events"),
        AgentsView(pools=[AgentPoolView(agent="leads", description="d", actors=["pool-leads-0"], in_flight=1, queued=2,
                                        done_last_minute=3, dead=0)], in_flight=1, queued=2, dead=[]),
        SettingsView(values=EditableSettings(llm_slots=4, stream_replies=True), applied=["llm_slots"]),
    ]


@pytest.mark.parametrize("model", _samples(), ids=lambda m: type(m).__name__)
def test_http_models_round_trip_through_json_and_pickle(model: BaseModel) -> None:
    assert type(model).model_validate_json(model.model_dump_json()) == model
    assert pickle.loads(pickle.dumps(model)) == model
    with pytest.raises(ValidationError):
        type(model).model_validate({**model.model_dump(), "unexpected": 1})


def test_every_program_error_pickles_with_its_message() -> None:
    for name, cls in inspect.getmembers(core.errors, inspect.isclass):
        if issubclass(cls, MaosError):
            params = [p for p in inspect.signature(cls.__init__).parameters.values()
                      if p.name != "self" and p.kind is p.POSITIONAL_OR_KEYWORD and p.default is p.empty]
            err = cls(*([f"{name} message"] + ["x"] * (len(params) - 1)))
            again = pickle.loads(pickle.dumps(err))
            assert type(again) is cls and str(again) == f"{name} message"


async def test_streamed_text_is_replaced_by_the_cleaned_plan_and_summary_events() -> None:
    """A stream cannot be cleaned of images while it is written: once the plan (or the summary)
    is stored, the run's token events are dropped, pending ones too, and numbering goes on."""
    store = Store(":memory:", commit_interval_s=0.05)
    run = await store.create_run("x", "u1")
    await store.append_tokens([(run.id, "plan", '{"goal": "![x](https://exfil.example/p.png?d=1)')])
    pending = store.append_tokens([(run.id, "plan", '"}')])  # in the same group commit as the plan
    plan = Plan(goal="x", steps=[PlanStep(id="s1", agent="leads", instruction="find")])
    await asyncio.gather(pending, store.enqueue_plan(run.id, plan, 3))
    events = await store.run_events(run.id)
    assert [e.kind for e in events if e.kind == "token"] == [] and any(e.kind == "plan" for e in events)
    assert "exfil" not in str([e.model_dump() for e in events])
    last = events[-1].seq
    await store.append_tokens([(run.id, "summary", "All ![](https://exfil.example/s.png) done")])
    await store.finish_run(run.id, "done", "All done", None)
    after = await store.run_events(run.id, after=last)
    assert [e.kind for e in after] == ["summary", "end"] and all(e.seq > last for e in after)
