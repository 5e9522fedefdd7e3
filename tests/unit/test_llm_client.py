"""The litellm boundary against the simulated server: what goes on the wire, and what does not."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest

os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"

from core.chat_schemas import ChatMessage, ChatRequest, ToolSpec  # noqa: E402
from integrations.llm import client  # noqa: E402
from integrations.llm.backend import Backend  # noqa: E402
from maos_testing.llm.sim_thread import SimConfig, SimHandle, sim_llm_in_thread  # noqa: E402

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


async def test_warming_litellm_up_sends_the_server_nothing(sim: SimHandle, monkeypatch: pytest.MonkeyPatch) -> None:
    """The gateway warms litellm up as it starts (its first call's own work, ~0.5 s of CPU, done before
    the first plan needs it) with a canned reply: no request reaches the server, and calls then work."""
    monkeypatch.setattr(client, "_warmed", threading.Event())  # as in a new process
    backend = Backend(provider="ollama", base_url=sim.base_url, planner_model="warm-x", worker_model="warm-x")
    client.warm_up(backend)
    client.warm_up(backend)

    assert client._warmed.is_set()
    assert sim.log() == []
    resp = await client.complete(backend, ChatRequest(messages=[ChatMessage(role="user", content="hi")]), 10)
    assert resp.message.content and len(sim.log()) == 1


async def test_the_embedded_model_replies_within_a_cap_unless_a_request_sets_its_own(sim: SimHandle) -> None:
    backend = Backend(provider="embedded", base_url=sim.base_url, planner_model="m", worker_model="m")
    ask = [ChatMessage(role="user", content="Write and save a draft document for the team")]
    await client.complete(backend, ChatRequest(messages=ask, tools=[SAVE]), 10)
    await client.complete(backend, ChatRequest(messages=ask, max_tokens=50), 10)
    capped, own = sim.log()
    assert capped["body"]["max_tokens"] == client.EMBEDDED_REPLY_TOKENS
    assert own["body"]["max_tokens"] == 50


def test_the_gateway_sizes_litellms_http_pool_to_its_slots() -> None:
    """litellm reads its pool size once, at import: in a fresh process, the gateway's set-up must size it
    (its default, 500 a host, held requests back below the slots at 1,000 in flight)."""
    code = ("from actors.gateway import LLMGateway; from core.settings import Settings; "
            "from integrations.llm.backend import Backend; "
            "LLMGateway.prepare_process(Settings(llm_slots=3000), Backend(provider='ollama', "
            "base_url='http://127.0.0.1:9', planner_model='m', worker_model='m')); "
            "from litellm import constants as c; print(c.AIOHTTP_CONNECTOR_LIMIT, c.AIOHTTP_CONNECTOR_LIMIT_PER_HOST)")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIOHTTP_CONNECTOR")}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["3000", "3000"]


def test_litellms_price_catalogue_keeps_only_the_providers_used_here() -> None:
    """litellm scans its whole catalogue (~4,900 hosted models) several times on every Ollama call; only
    the local providers' entries are kept (the calls above run with it, their models registered)."""
    import litellm

    assert {v.get("litellm_provider") for v in litellm.model_cost.values()} <= client.LOCAL_PROVIDERS
    assert 0 < len(litellm.model_cost) < 1000
