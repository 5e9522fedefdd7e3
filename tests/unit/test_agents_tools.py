"""Agent specs, typed tools and their observations, on a real DuckDB :memory: (no Ray)."""

from __future__ import annotations

import json
import pickle
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from actors import agents
from actors.agents import AgentSpec, PromptError, Tool, ToolContext, invoke
from actors.agents import specs as specs_module
from actors.agents._tooling import MAX_OBSERVATION_CHARS
from core.errors import ConfigError, NotFound, ToolError
from tests._db import LocalToolOps


@pytest.fixture
def store() -> LocalToolOps:
    return LocalToolOps()


def make_ctx(store: LocalToolOps, user: str = "u1", task: str = "run1:s1", attempt_key: str = "run1:s1") -> ToolContext:
    return ToolContext(store=store.for_user(user), user_id=user, run_id="run1", task_id=task, idempotency_key=attempt_key)


async def call(name: str, ctx: ToolContext, /, **arguments: Any) -> str:
    return await invoke(agents.get_tool(name), ctx, arguments)


async def call_json(name: str, ctx: ToolContext, /, **arguments: Any) -> dict[str, Any]:
    text = await call(name, ctx, **arguments)
    assert not text.startswith("error:"), text
    return json.loads(text)


def in_days(n: int) -> str:
    return (datetime.now(UTC).date() + timedelta(days=n)).isoformat()


# --- schemas and invoke ---------------------------------------------------------------------


async def greet(ctx: ToolContext, name: str, times: int = 1, tags: list[str] | None = None) -> object:
    """Greet someone
    politely.

    More detail the model does not need.

    Args:
        name: Who to greet.
        times: How many times,
            at most a few.
        tags: Labels to add.

    Returns:
        The greeting.
    """
    if name == "boom":
        raise RuntimeError("kaput")
    if name == "nobody":
        raise ToolError("no such person 'nobody'")
    if name == "big":
        return {"items": ["x" * 100] * 100}
    return f"hello {name}" * times if not tags else {"name": name, "tags": tags}


async def undocumented(ctx: ToolContext, name: str) -> str:
    """Has no Args section."""
    return name


def test_schema_is_derived_from_signature_and_docstring() -> None:
    tool = Tool.from_function(greet)
    assert tool.name == "greet"
    assert tool.description == "Greet someone politely."
    schema = tool.parameters
    assert schema["type"] == "object" and schema["additionalProperties"] is False
    assert schema["required"] == ["name"]
    assert schema["properties"]["name"] == {"type": "string", "description": "Who to greet."}
    assert schema["properties"]["times"] == {
        "type": "integer", "default": 1, "description": "How many times, at most a few."
    }
    assert schema["properties"]["tags"] == {"type": "array", "items": {"type": "string"}, "description": "Labels to add."}
    assert "title" not in json.dumps(schema)
    spec = tool.spec()
    assert spec.name == "greet" and spec.parameters == schema


def test_builtin_schema_keeps_a_parameter_called_title_and_enums() -> None:
    event = agents.get_tool("draft_event").parameters
    assert "title" in event["properties"] and event["required"] == ["title", "attendees", "start"]
    assert event["properties"]["attendees"]["items"] == {"type": "string"}
    find = agents.get_tool("find_leads").parameters
    assert "required" not in find
    assert find["properties"]["status"]["enum"] == ["new", "contacted", "qualified", "won", "lost"]
    assert find["properties"]["limit"]["maximum"] == 200


def test_tool_needs_documented_arguments_and_a_context() -> None:
    with pytest.raises(TypeError, match="'name' is not described"):
        Tool.from_function(undocumented)

    async def no_ctx(name: str) -> str:
        """Nothing.

        Args:
            name: A name.
        """
        return name

    with pytest.raises(TypeError, match="ctx: ToolContext"):
        Tool.from_function(no_ctx)


async def test_invoke_turns_bad_arguments_and_failures_into_observations(store: LocalToolOps) -> None:
    tool, ctx = Tool.from_function(greet), make_ctx(store)
    assert await invoke(tool, ctx, {"name": "Ada", "times": "2"}) == "hello Adahello Ada"
    missing = await invoke(tool, ctx, {"times": 2})
    assert missing.startswith("error:") and "missing required argument 'name'" in missing and "greet" in missing
    wrong = await invoke(tool, ctx, {"name": "Ada", "times": "often"})
    assert wrong.startswith("error:") and "'times'" in wrong and "integer" in wrong
    extra = await invoke(tool, ctx, {"name": "Ada", "loudly": True})
    assert "unknown argument 'loudly'" in extra and "name, times, tags" in extra
    item = await invoke(tool, ctx, {"name": "Ada", "tags": ["ok", 3]})
    assert "'tags[1]'" in item
    assert await invoke(tool, ctx, "name=Ada") == "error: arguments for tool 'greet' must be a JSON object, got str"  # type: ignore[arg-type]  # the model may send anything
    assert await invoke(tool, ctx, {"name": "nobody"}) == "error: greet: no such person 'nobody'"
    boom = await invoke(tool, ctx, {"name": "boom"})
    assert boom.startswith("error: tool 'greet' failed") and "kaput" in boom
    assert await invoke(tool, ctx, {"name": "Ada", "tags": ["x"]}) == '{"name":"Ada","tags":["x"]}'
    big = await invoke(tool, ctx, {"name": "big"})
    assert len(big) < MAX_OBSERVATION_CHARS + 200 and "truncated" in big


# --- leads ----------------------------------------------------------------------------------

CSV = """name,email,company,phone,tags
Ada Lovelace,ada@example.com,Analytical,+44 20 7946 0000,webinar;VIP
Grace Hopper,grace@example.com,Navy,,webinar
,nobody@example.com,Nowhere,,webinar
Alan Turing,not-an-email,Bletchley,,
Too,Many,Fields,1234567,x,extra
Ada L.,ADA@example.com,Analytical,,webinar
Linus,linus@example.com,,,web
"""


async def test_csv_import_skips_bad_rows_with_reasons_and_is_safe_to_repeat(store: LocalToolOps) -> None:
    ctx = make_ctx(store)
    result = await call_json("import_leads_csv", ctx, csv_text=CSV)
    assert result["imported"] == 3
    reasons = {s["line"]: s["reason"] for s in result["skipped"]}
    assert reasons == {
        4: "name is empty",
        5: "email 'not-an-email' is not an email address",
        6: "6 fields, the header has 5",
        7: "duplicate of line 2",
    }
    again = await call_json("import_leads_csv", ctx, csv_text=CSV)
    assert again["imported"] == 0
    assert [s["line"] for s in again["skipped"] if s["reason"] == "already in the CRM"] == [2, 3, 8]
    assert store.conn.execute("SELECT count(*) FROM leads").fetchone() == (3,)
    no_header = await call("import_leads_csv", ctx, csv_text="Ada,ada@example.com")
    assert no_header.startswith("error:") and "'name' column" in no_header


async def test_find_leads_by_exact_tag_text_and_status_scoped_to_user(store: LocalToolOps) -> None:
    ctx = make_ctx(store)
    await call_json("import_leads_csv", ctx, csv_text=CSV)
    other = make_ctx(store, user="u2")
    assert (await call("add_lead", other, name="Eve", email="eve@example.com", tags=["webinar"])).startswith("Added")
    webinar = await call_json("find_leads", ctx, tag="Webinar")
    assert sorted(lead["name"] for lead in webinar["leads"]) == ["Ada Lovelace", "Grace Hopper"]
    assert webinar["leads"][0]["tags"] in (["webinar", "vip"], ["webinar"])
    assert [lead["name"] for lead in (await call_json("find_leads", ctx, tag="web"))["leads"]] == ["Linus"]
    assert [lead["name"] for lead in (await call_json("find_leads", ctx, text="navy"))["leads"]] == ["Grace Hopper"]
    none = await call_json("find_leads", ctx, tag="webinar", status="won")
    assert none["count"] == 0 and "no leads match" in none["note"]
    capped = await call_json("find_leads", ctx, limit=1)
    assert capped["count"] == 1 and "more than 1" in capped["note"]
    bad = await call("find_leads", ctx, status="hot")
    assert bad.startswith("error:") and "'status'" in bad


async def test_add_lead_does_not_duplicate_and_validates(store: LocalToolOps) -> None:
    ctx = make_ctx(store)
    first = await call("add_lead", ctx, name="Ada", email="ada@example.com", company="", tags=[" VIP ", "vip"])
    again = await call("add_lead", ctx, name="Ada Lovelace", email="ADA@example.com")
    assert first.startswith("Added lead 'Ada'") and "already exists" in again
    lead_id = first.split("(id ")[1].rstrip(").")
    assert lead_id in again
    assert store.conn.execute("SELECT company, tags FROM leads").fetchall() == [(None, '["vip"]')]
    assert "not an email address" in await call("add_lead", ctx, name="Bob", email="bob")


async def test_update_score_and_schedule_follow_up(store: LocalToolOps) -> None:
    ctx = make_ctx(store)
    lead_id = (await call("add_lead", ctx, name="Ada", email="ada@example.com")).split("(id ")[1].rstrip(").")
    updated = await call_json("update_lead", ctx, lead_id=lead_id, status="contacted", notes="Met at the webinar", tags=["warm"])
    assert updated["status"] == "contacted" and updated["tags"] == ["warm"] and "Met at the webinar" in updated["notes"]
    scored = await call_json("score_lead", ctx, lead_id=lead_id, score=85, reason="asked for pricing")
    assert scored["score"] == 85 and "scored 85: asked for pricing" in scored["notes"]
    assert "Met at the webinar" in scored["notes"]  # notes accumulate
    when = in_days(7)
    followed = await call_json("schedule_follow_up", ctx, lead_id=lead_id, when=when, note="send the proposal")
    assert followed["next_follow_up"].startswith(when)
    stored = store.conn.execute("SELECT next_follow_up, score FROM leads WHERE id = ?", [lead_id]).fetchone()
    assert stored == (datetime.fromisoformat(when).replace(tzinfo=UTC).timestamp(), 85)
    too_high = await call("score_lead", ctx, lead_id=lead_id, score=101, reason="x")
    assert too_high.startswith("error:") and "'score'" in too_high
    past = await call("schedule_follow_up", ctx, lead_id=lead_id, when="2001-01-01", note="x")
    assert past.startswith("error:") and "in the past" in past
    garbled = await call("schedule_follow_up", ctx, lead_id=lead_id, when="next tuesday", note="x")
    assert "not an ISO date" in garbled
    assert "no lead with id 'nope'" in await call("score_lead", ctx, lead_id="nope", score=5, reason="x")
    assert "no lead with id" in await call("score_lead", make_ctx(store, user="u2"), lead_id=lead_id, score=5, reason="x")
    assert "nothing to update" in await call("update_lead", ctx, lead_id=lead_id)


# --- drafts ---------------------------------------------------------------------------------


async def test_drafts_are_idempotent_per_step_and_never_reported_sent(store: LocalToolOps) -> None:
    ctx = make_ctx(store)
    args = {"to": "ada@example.com", "subject": "Thanks", "body": "Thanks for coming."}
    first = await call("draft_email", ctx, **args)
    retry = await call("draft_email", ctx, **args)
    assert store.conn.execute("SELECT count(*), min(status), max(status) FROM drafts").fetchone() == (1, "draft", "draft")
    draft_id = store.conn.execute("SELECT id FROM drafts").fetchone()[0]  # type: ignore[index]
    for text in (first, retry):
        assert draft_id in text and "status: draft" in text and "NOT been sent" in text and "approval" in text
    other_step = await call("draft_email", make_ctx(store, task="run1:s2", attempt_key="run1:s2"), **args)
    changed = await call("draft_email", ctx, **{**args, "body": "Thanks again."})
    assert draft_id not in other_step and draft_id not in changed
    assert store.conn.execute("SELECT count(*) FROM drafts").fetchone() == (3,)
    assert "is not an email address" in await call("draft_email", ctx, to="Ada", subject="s", body="b")


async def test_event_text_and_call_drafts(store: LocalToolOps) -> None:
    ctx = make_ctx(store)
    start = f"{in_days(3)}T15:30"
    event = await call("draft_event", ctx, title="Review", attendees=["ada@example.com"], start=start, agenda="Q3")
    assert "calendar draft" in event and "NOT been sent" in event
    body = store.conn.execute("SELECT body FROM drafts WHERE channel = 'calendar'").fetchone()[0]  # type: ignore[index]
    assert body.startswith(f"start: {start}+00:00\nduration_minutes: 30") and body.endswith("Q3")
    assert "NOT been sent" in await call("draft_text", ctx, to="+1 555 123 4567", body="See you soon")
    assert "NOT been sent" in await call("draft_call", ctx, to="+15551234567", script="Hi, it's about the demo.")
    assert "not a phone number" in await call("draft_text", ctx, to="Ada", body="hi")
    assert "'attendees'" in await call("draft_event", ctx, title="x", attendees="ada@example.com", start=start)
    listed = await call_json("list_drafts", ctx, channel="text")
    assert [d["channel"] for d in listed["drafts"]] == ["text"] and listed["drafts"][0]["status"] == "draft"
    assert (await call_json("list_drafts", ctx))["count"] == 3
    assert store.conn.execute("SELECT DISTINCT status FROM drafts").fetchall() == [("draft",)]


# --- documents and research -----------------------------------------------------------------


def add_document(store: LocalToolOps, doc_id: str, kind: str, title: str, content: str, user: str = "u1") -> None:
    store.conn.execute(
        "INSERT INTO documents (id, user_id, kind, title, content, created_at) VALUES (?, ?, ?, ?, ?, 1.0)",
        [doc_id, user, kind, title, content],
    )


async def test_search_and_read_documents(store: LocalToolOps) -> None:
    ctx = make_ctx(store)
    add_document(store, "d1", "sop", "Refund policy", "Refunds within 30 days. Ask for the order number first.")
    add_document(store, "d2", "doc", "Pricing", "Our pricing has three tiers. No refund after a year.")
    add_document(store, "d3", "sop", "Onboarding", "Welcome call, then account setup." + " filler" * 500)
    add_document(store, "d4", "sop", "Refund policy (other user)", "refund refund", user="u2")
    found = await call_json("search_documents", ctx, query="refund policy")
    assert [d["id"] for d in found["documents"]] == ["d1", "d2"]
    assert "Refunds within 30 days" in found["documents"][0]["snippet"]
    assert [d["id"] for d in (await call_json("search_documents", ctx, query="refund", kind="doc"))["documents"]] == ["d2"]
    nothing = await call_json("search_documents", ctx, query="payroll")
    assert nothing["count"] == 0 and "no stored document matches 'payroll'" in nothing["note"]
    assert "no words to search" in await call("search_documents", ctx, query="the a")
    doc = await call_json("read_document", ctx, document_id="d3")
    assert doc["title"] == "Onboarding" and doc["next_offset"] == 3000 and len(doc["content"]) == 3000
    rest = await call_json("read_document", ctx, document_id="d3", offset=doc["next_offset"])
    assert "next_offset" not in rest
    assert "no document with id 'd4'" in await call("read_document", ctx, document_id="d4")


async def test_save_draft_document_once_per_step(store: LocalToolOps) -> None:
    ctx = make_ctx(store)
    first = await call("save_draft_document", ctx, title="Webinar recap", content="Thanks all.")
    retry = await call("save_draft_document", ctx, title="Webinar recap", content="Thanks, everyone.")
    rows = store.conn.execute("SELECT id, kind, content, idempotency_key, task_id FROM documents").fetchall()
    assert len(rows) == 1 and rows[0][1:] == ("draft", "Thanks all.", "run1:s1:Webinar recap", "run1:s1")
    assert rows[0][0] in first and rows[0][0] in retry and "already saved" in retry
    found = await call_json("search_documents", ctx, query="recap", kind="draft")
    assert [d["id"] for d in found["documents"]] == [rows[0][0]]


async def test_research_notes_uses_stored_material_and_says_when_nothing_is_found(store: LocalToolOps) -> None:
    ctx = make_ctx(store)
    empty = await call("research_notes", ctx, topic="quantum widgets")
    assert empty.startswith("Nothing stored matches 'quantum widgets'") and "No web search" in empty
    add_document(store, "d1", "doc", "Widget market", "Quantum widgets are growing fast.")
    await call("add_lead", ctx, name="Wanda", email="wanda@widgets.io", company="Quantum Widgets Ltd")
    notes = await call_json("research_notes", ctx, topic="quantum widgets")
    assert [d["id"] for d in notes["documents"]] == ["d1"]
    assert [lead["name"] for lead in notes["leads"]] == ["Wanda"]
    assert "No web search" in notes["note"]


# --- specs and prompts ----------------------------------------------------------------------

BUILTINS = ["calendar", "calling", "email", "leads", "research", "sops", "texting", "writing"]


def test_builtin_specs_and_their_tools_exist() -> None:
    assert agents.names() == BUILTINS
    assert [s.name for s in agents.all_specs()] == BUILTINS
    for spec in agents.all_specs():
        tools = agents.tools_for(spec)
        assert [t.name for t in tools] == list(spec.tools) and tools
        assert spec.description and spec.instructions and spec.max_turns >= 1
    assert [t.name for t in agents.tools_for("email")][:4] == ["find_leads", "draft_email", "list_drafts", "search_documents"]
    assert {"reply_email", "send_email", "gmail_search"} <= set(agents.get("email").tools)
    used = {name for spec in agents.all_specs() for name in spec.tools}
    assert used == set(agents.tool_names())


def test_unknown_agent_type_and_tool_errors_list_known_names() -> None:
    with pytest.raises(NotFound) as caught:
        agents.get("emial")
    assert str(caught.value) == f"unknown agent type 'emial'; known: {', '.join(BUILTINS)}"
    with pytest.raises(NotFound, match="unknown tool 'send_fax'; known: add_lead, "):
        agents.get_tool("send_fax")
    restored = pickle.loads(pickle.dumps(caught.value))
    assert str(restored) == str(caught.value)


def test_extensions_register_like_builtins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(specs_module, "_SPECS", dict(specs_module._SPECS))
    monkeypatch.setattr(specs_module, "_TOOLS", dict(specs_module._TOOLS))
    agents.register_tool(greet)
    spec = agents.register(AgentSpec(name="greeter", description="Greets.", instructions="Greet.", tools=("greet",)))
    assert spec.tools == ("greet",) and "greeter" in agents.names()
    assert agents.tools_for("greeter")[0].name == "greet"
    with pytest.raises(ConfigError, match="unknown tool"):
        agents.register(AgentSpec(name="broken", description="d", instructions="i", tools=("teleport",)))
    with pytest.raises(ConfigError, match="already registered"):
        agents.register(AgentSpec(name="email", description="d", instructions="i"))
    with pytest.raises(ConfigError, match="lower-case"):
        AgentSpec(name="Bad Name", description="d", instructions="i")


def test_subagent_prompt_carries_task_id_and_instructions_only() -> None:
    prompt = agents.render_subagent_prompt("email", task_id="run9:s2", today=date(2030, 1, 2))
    assert "\ntask_id: run9:s2\n" in prompt
    assert agents.get("email").instructions in prompt
    assert "Today: 2030-01-02" in prompt and "draft_email" in prompt and "${" not in prompt
    assert "Data from" in prompt  # it tells the model what marked data is (the data itself is user content)


def test_prompt_rendering_is_strict() -> None:
    full = {"agent": "a", "task_id": "t", "today": "d", "instructions": "i", "tools": "x"}
    assert agents.render("subagent", **full).count("task_id: t") == 1
    missing = {k: v for k, v in full.items() if k != "tools"}
    with pytest.raises(PromptError, match="missing variable\\(s\\): tools"):
        agents.render("subagent", **missing)
    with pytest.raises(PromptError, match="has no variable\\(s\\): mood"):
        agents.render("subagent", **full, mood="x")
    with pytest.raises(PromptError, match="no prompt template 'nope'; known: .*subagent"):
        agents.render("nope")
    assert "$1" in agents.render("subagent", **{**full, "instructions": "costs $1 ${x}"})
