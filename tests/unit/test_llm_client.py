"""The litellm boundary against the simulated server: what goes on the wire, and what does not."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"

from core.schemas import ChatMessage, ChatRequest, ToolSpec  # noqa: E402
from integrations.llm import client  # noqa: E402
from integrations.llm.backend import Backend  # noqa: E402
from integrations.llm.sim_thread import SimConfig, SimHandle, sim_llm_in_thread  # noqa: E402

SAVE = ToolSpec(name="save_document", description="Save a draft document.",
                parameters={"type": "object", "properties": {"title": {"type": "string"}}, "required": ["title"]})


@pytest.fixture
def sim(monkeypatch: pytest.MonkeyPatch) -> Iterator[SimHandle]:
    with sim_llm_in_thread(SimConfig(log_bodies=True)) as handle:
        monkeypatch.setenv("OLLAMA_API_BASE", handle.base_url)
        yield handle


@pytest.mark.parametrize("provider", ["ollama", "openai"])
async def test_calls_send_the_schema_and_tools_and_look_a_model_up_once(sim: SimHandle, provider: str) -> None:
    backend = Backend(provider=provider, base_url=sim.base_url, planner_model="planner-x", worker_model="worker-x")
    schema = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}
    await client.complete(backend, ChatRequest(messages=[ChatMessage(role="user", content="hi")], json_schema=schema,
                                               schema_name="answer", role="planner"), 10)
    resp = await client.complete(backend, ChatRequest(
        messages=[ChatMessage(role="user", content="Write and save a draft document for the team")], tools=[SAVE]), 10)

    assert [c.name for c in resp.message.tool_calls] == ["save_document"]
    assert resp.model == "worker-x"
    planned, worked = sim.log()
    wire_format = planned["body"]["format"] if provider == "ollama" else planned["body"]["response_format"]["json_schema"]["schema"]
    assert wire_format == schema
    assert worked["body"]["tools"][0]["function"]["name"] == "save_document"
    # litellm looks every call's model up (a synchronous /api/show for Ollama) unless it is
    # registered; registering looks it up once.
    lookups = sim.stats()["model_lookups"]
    for _ in range(3):
        await client.complete(backend, ChatRequest(messages=[ChatMessage(role="user", content="hi")]), 10)
    assert sim.stats()["model_lookups"] == lookups <= 2
