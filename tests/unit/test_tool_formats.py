"""Models that write tool calls as text, end to end: the recorded transcripts of real model families
(Qwen 2.5, Llama 3.x, Mistral, Gemma) replayed by the simulated server through the real litellm client,
and a sub-agent step that calls its tool and finishes for every style."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"  # before litellm is imported

from actors import agents  # noqa: E402
from actors.agents import AgentSpec, ToolContext  # noqa: E402
from actors.agents import specs as specs_module  # noqa: E402
from actors.agents.subagent import run_subagent  # noqa: E402
from core.chat_schemas import ChatMessage, ChatRequest, ChatResponse, ToolSpec  # noqa: E402
from core.schemas import Assignment, TaskRecord  # noqa: E402
from integrations.llm import client  # noqa: E402
from integrations.llm.backend import Backend  # noqa: E402
from maos_testing.llm import _sim_formats as formats  # noqa: E402
from maos_testing.llm.sim_thread import SimConfig, SimHandle, sim_llm_in_thread  # noqa: E402

STYLES = sorted(formats.styles())
EXCHANGES = formats.exchanges()


@pytest.fixture(scope="module")
def sim() -> Iterator[SimHandle]:
    with sim_llm_in_thread(SimConfig(log_bodies=True)) as handle:
        yield handle


@pytest.fixture
def fresh(sim: SimHandle, monkeypatch: pytest.MonkeyPatch) -> SimHandle:
    sim.update(tool_format="native")
    sim.clear()
    monkeypatch.setenv("OLLAMA_API_BASE", sim.base_url)
    return sim


def backend(sim: SimHandle, provider: str = "ollama") -> Backend:
    return Backend(provider=provider, base_url=sim.base_url, planner_model="sim-model", worker_model="sim-model")


def test_the_transcripts_cover_every_family_and_every_text_form() -> None:
    families = {s.family.split(" (")[0].split(" /")[0] for s in formats.styles().values()}
    assert {"Qwen 2.5", "Llama 3.1", "Mistral 7B Instruct v0.3, Mixtral, Mistral Nemo", "Gemma 2"} <= families
    assert {s.format for s in formats.styles().values()} == {"hermes", "llama", "mistral", "fenced", "json"}
    assert set(STYLES) == {e.style for e in EXCHANGES}  # every style has recorded exchanges
    with pytest.raises(ValueError, match="tool_format must be"):
        SimConfig(tool_format="klingon")


@pytest.mark.parametrize("provider", ["ollama", "openai"])
@pytest.mark.parametrize("ex", EXCHANGES, ids=lambda e: f"{e.style}: {e.title}")
async def test_each_recorded_reply_is_read_as_the_family_meant_it(fresh: SimHandle, ex: formats.Exchange,
                                                                   provider: str) -> None:
    fresh.update(tool_format=ex.style)
    tools = [ToolSpec(name=t["function"]["name"], description=t["function"]["description"],
                      parameters=t["function"]["parameters"]) for t in ex.request["tools"]]
    req = ChatRequest(messages=[ChatMessage(**m) for m in ex.request["messages"]], tools=tools)

    resp = await client.complete(backend(fresh, provider), req, 10)

    (logged,) = fresh.log()
    assert logged["reply"] == ex.response  # the sim answered the recorded text, the native field empty
    assert resp.tool_call_format == ex.expect["format"]
    assert resp.message.content == ex.expect["content"]
    got = [(c.name, c.arguments, c.parse_error is not None) for c in resp.message.tool_calls]
    assert got == [(c["name"], c["arguments"], bool(c.get("parse_error"))) for c in ex.expect["calls"]]
    for call, expected in zip(resp.message.tool_calls, ex.expect["calls"], strict=True):
        if "id" in expected:
            assert call.id == expected["id"]


@pytest.fixture
def counting_agent(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """A registered agent type "counter" whose one tool, ``count_it``, notes each call it runs."""
    monkeypatch.setattr(specs_module, "_SPECS", dict(specs_module._SPECS))
    monkeypatch.setattr(specs_module, "_TOOLS", dict(specs_module._TOOLS))
    ran: list[dict[str, Any]] = []

    async def count_it(ctx: ToolContext, item: str, times: int = 1) -> str:
        """Note one item.

        Args:
            item: The item.
            times: How many of it.
        """
        ran.append({"item": item, "times": times, "task": ctx.task_id})
        return f"noted {times} x {item}"

    agents.register_tool(count_it)
    agents.register(AgentSpec(name="counter", description="Counts.", instructions="Count.", tools=("count_it",)))
    return ran


def _task(instruction: str) -> TaskRecord:
    return TaskRecord(id="r1:s1", run_id="r1", step_id="s1", agent="counter", instruction=instruction,
                      status="running", attempts=1, max_attempts=3, idempotency_key="r1:s1", created_at=1, updated_at=1)


class Recording:
    """The real client as the sub-agent's chat, keeping each reply."""

    def __init__(self, b: Backend) -> None:
        self.backend = b
        self.replies: list[ChatResponse] = []

    async def __call__(self, req: ChatRequest) -> ChatResponse:
        resp = await client.complete(self.backend, req, 10)
        self.replies.append(resp)
        return resp


@pytest.mark.parametrize("style", STYLES)
async def test_a_step_calls_its_tool_and_finishes_whatever_form_the_model_writes(
        fresh: SimHandle, counting_agent: list[dict[str, Any]], style: str) -> None:
    fresh.update(tool_format=style)
    chat = Recording(backend(fresh))
    out = await run_subagent(Assignment(task=_task("Count the boxes [use count_it] item=boxes times=3"),
                                        attempt=1, lease_owner="p"),
                             agents.get("counter"), chat, store=None, user_id="u1", goal="", max_turns=4)  # type: ignore[arg-type]

    assert out.ok and out.turns == 2, out.error
    assert counting_agent == [{"item": "boxes", "times": 3, "task": "r1:s1"}]
    first, last = chat.replies
    assert first.tool_call_format == formats.styles()[style].format != "native"
    assert last.tool_call_format is None and out.result and out.result.startswith("Done: noted 3 x boxes")
    assert [r["kind"] for r in fresh.log()] == ["tool_call", "final"]
    assert "[ARGS]" in fresh.log()[0]["reply"] or "{" in fresh.log()[0]["reply"]  # written as text


async def test_a_call_that_cannot_be_read_is_answered_with_why_and_the_step_goes_on(fresh: SimHandle) -> None:
    """The recorded Qwen reply with broken JSON: not dropped, not run; the model is told what was wrong (and
    how to write a call) as the call's observation, and its next turn finishes the step."""
    (broken,) = [e for e in EXCHANGES if e.title == "a quantized model breaks the JSON"]
    fresh.update(tool_format=broken.style)
    chat = Recording(backend(fresh))
    task = _task(broken.request["messages"][-1]["content"]).model_copy(update={"agent": "sops"})

    out = await run_subagent(Assignment(task=task, attempt=1, lease_owner="p"), agents.get("sops"), chat,
                             store=None, user_id="u1", goal="", max_turns=4)  # type: ignore[arg-type]

    assert out.ok and out.turns == 2, out.error
    second = fresh.log()[1]["body"]["messages"]
    observation = second[-1]
    assert observation["role"] == "tool"
    assert observation["content"].startswith("error: not run: your tool call is not valid JSON")
    assert "<tool_call>" in observation["content"] and "search_documents" in observation["content"]


async def test_an_unknown_tool_in_a_marked_call_is_answered_as_unknown(fresh: SimHandle) -> None:
    (unknown,) = [e for e in EXCHANGES if e.title == "a tool it was not given"]
    fresh.update(tool_format=unknown.style)
    task = _task(unknown.request["messages"][-1]["content"]).model_copy(update={"agent": "sops"})
    out = await run_subagent(Assignment(task=task, attempt=1, lease_owner="p"), agents.get("sops"),
                             Recording(backend(fresh)), store=None, user_id="u1", goal="", max_turns=4)  # type: ignore[arg-type]
    assert out.ok
    observation = fresh.log()[1]["body"]["messages"][-1]
    assert observation["role"] == "tool" and observation["content"].startswith("error: unknown tool 'send_email'")
