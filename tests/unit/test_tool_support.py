"""Can the model call tools? The gateway's one-request check, what it means, and where it is shown; the
form of each reply's calls kept with the call."""

from __future__ import annotations

import asyncio
import os
import pickle
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"  # before litellm is imported

from actors.gateway import LLMGateway  # noqa: E402
from actors.runtime.handles import LocalHandle  # noqa: E402
from actors.store import Store  # noqa: E402
from core.chat_schemas import ChatMessage, ChatRequest, ChatResponse, ToolCall, ToolSpec  # noqa: E402
from core.errors import LLMError  # noqa: E402
from core.schemas import PoolStatus, SystemStatus, ToolSupport  # noqa: E402
from core.settings import Settings  # noqa: E402
from integrations.llm import toolcheck  # noqa: E402
from integrations.llm.backend import Backend, tool_probe_request, tool_support  # noqa: E402
from maos_testing.llm.sim_thread import SimConfig, SimHandle, sim_llm_in_thread  # noqa: E402
from tests._db import sql  # noqa: E402
from ui.views import integrations_html, sidebar_llm  # noqa: E402

NO_TOOLS = "sub-agent steps will answer without acting"


@pytest.fixture
def sim(monkeypatch: pytest.MonkeyPatch) -> Iterator[SimHandle]:
    with sim_llm_in_thread(SimConfig(log_bodies=True)) as handle:
        monkeypatch.setenv("OLLAMA_API_BASE", handle.base_url)
        yield handle


def gateway_for(sim: SimHandle, tmp_path: Path, model: str = "sim-model") -> LLMGateway:
    backend = Backend(provider="ollama", base_url=sim.base_url, planner_model=model, worker_model=model)
    return LLMGateway(Settings(data_dir=tmp_path, llm_retries=0), backend, None, slots=4)


async def checked(gateway: LLMGateway, deadline_s: float = 10.0) -> dict[str, Any]:
    """Ask ``health`` until the tool check has answered."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        tools = (await gateway.health())["tools"]
        if tools["state"] != "checking":
            return tools  # type: ignore[no-any-return]
        await asyncio.sleep(0.02)
    raise AssertionError("the tool check never answered")


def test_what_each_answer_of_the_check_means() -> None:
    assert tool_support("m", "native", None, 1.0).state == "native"
    text = tool_support("m", "hermes", None, 1.0)
    assert text.state == "text" and text.format == "hermes" and "as text (hermes form)" in text.meaning
    none = tool_support("qwen-tiny", None, None, 1.0)
    assert none.state == "none" and none.meaning.startswith(f"qwen-tiny cannot call tools: {NO_TOOLS}")
    ollama_says = tool_support("gemma2", None, 'LLM call failed: {"error":"registry.ollama.ai/library/gemma2:2b does '
                                               'not support tools"}', 1.0)
    assert ollama_says.state == "none"
    down = tool_support("m", None, "LLM server at http://x is unreachable", 1.0)
    assert down.state == "unknown" and down.checked_at is None and "asked again" in down.meaning
    req = tool_probe_request()
    assert [t.name for t in req.tools] == ["get_time"] and req.role == "worker" and req.priority == "background"


async def test_the_check_is_one_request_that_never_delays_health_and_is_kept(sim: SimHandle, tmp_path: Path) -> None:
    sim.update(ttft_ms=300)  # a slow model: health answers at once all the same
    gateway = gateway_for(sim, tmp_path)
    started = time.perf_counter()
    first = await gateway.health()
    assert time.perf_counter() - started < 0.25
    assert first["tools"]["state"] == "checking" and first["reachable"]

    tools = await checked(gateway)
    assert tools["state"] == "native" and tools["format"] == "native" and tools["model"] == "sim-model"
    for _ in range(3):
        await gateway.health()
    (probe,) = sim.log()  # one request, kept: no second check
    assert probe["kind"] == "tool_call" and probe["body"]["tools"][0]["function"]["name"] == "get_time"


@pytest.mark.parametrize(("style", "form"), [("hermes", "hermes"), ("mistral-args", "mistral"), ("fenced", "fenced")])
async def test_a_model_that_writes_calls_as_text_is_reported_with_its_form(sim: SimHandle, tmp_path: Path,
                                                                          style: str, form: str) -> None:
    sim.update(tool_format=style)
    tools = await checked(gateway_for(sim, tmp_path))
    assert (tools["state"], tools["format"]) == ("text", form)


async def test_a_model_that_does_not_call_is_reported_so_and_a_failed_check_is_tried_again(
        sim: SimHandle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    gateway = gateway_for(sim, tmp_path, model="prose-only")
    answers: list[ChatResponse | Exception] = [
        LLMError("LLM server at http://127.0.0.1 answered a transient error (Timeout): slow", transient=True),
        ChatResponse(message=ChatMessage(role="assistant", content="It is about noon, I think."), model="prose-only")]

    class Client:
        async def complete(self, backend: Backend, req: ChatRequest, timeout_s: float) -> ChatResponse:
            answer = answers.pop(0)
            if isinstance(answer, Exception):
                raise answer
            return answer

    gateway._client = Client()  # type: ignore[assignment]
    failed = await checked(gateway)
    assert failed["state"] == "unknown"
    assert (await gateway.health())["tools"]["state"] == "unknown"  # not asked again at once
    monkeypatch.setattr(toolcheck, "RETRY_S", 0.0)
    none = await checked(gateway)
    assert none["state"] == "none" and NO_TOOLS in none["meaning"] and answers == []


async def test_another_model_is_checked_again(sim: SimHandle, tmp_path: Path) -> None:
    gateway = gateway_for(sim, tmp_path)
    assert (await checked(gateway))["state"] == "native"
    sim.update(tool_format="llama")
    other = Backend(provider="ollama", base_url=sim.base_url, planner_model="sim-model", worker_model="llama-3.1")
    await gateway.configure(Settings(data_dir=tmp_path, llm_retries=0), other, 4)
    tools = await checked(gateway)
    assert (tools["model"], tools["state"], tools["format"]) == ("llama-3.1", "text", "llama")
    assert len(sim.log()) == 2


async def test_the_gateway_records_the_form_of_each_replys_calls_in_agent_runs(sim: SimHandle, tmp_path: Path) -> None:
    sim.update(tool_format="hermes")
    store = Store(":memory:")
    backend = Backend(provider="ollama", base_url=sim.base_url, planner_model="sim-model", worker_model="sim-model")
    gateway = LLMGateway(Settings(data_dir=tmp_path, llm_retries=0), backend, LocalHandle(store), slots=4)
    save = ToolSpec(name="save_document", description="Save.", parameters={"type": "object", "properties": {}})
    resp = await gateway.chat(ChatRequest(messages=[ChatMessage(role="user", content="save it [use save_document]")],
                                          tools=[save], run_id="r1", task_id="r1:s1", agent="writing"))
    plain = await gateway.chat(ChatRequest(messages=[ChatMessage(role="user", content="hello")], run_id="r1",
                                           agent="master"))
    assert resp.tool_call_format == "hermes" and [c.name for c in resp.message.tool_calls] == ["save_document"]
    assert plain.tool_call_format is None
    deadline = time.monotonic() + 10
    while len(rows := sql(store, "SELECT agent, tool_call_format FROM agent_runs ORDER BY agent")) < 2:
        assert time.monotonic() < deadline, rows
        await asyncio.sleep(0.02)
    assert rows == [("master", None), ("writing", "hermes")]


async def test_a_streamed_reply_with_tools_is_read_for_calls_too(sim: SimHandle, tmp_path: Path) -> None:
    sim.update(tool_format="mistral")
    store = Store(":memory:")
    run = await store.create_run("x", "u1")
    backend = Backend(provider="ollama", base_url=sim.base_url, planner_model="sim-model", worker_model="sim-model")
    gateway = LLMGateway(Settings(data_dir=tmp_path, llm_retries=0), backend, LocalHandle(store), slots=4)
    find = ToolSpec(name="find_leads", description="Find.",
                    parameters={"type": "object", "properties": {"tag": {"type": "string"}}})
    resp = await gateway.chat(ChatRequest(messages=[ChatMessage(role="user", content="who? [use find_leads] tag=vip")],
                                          tools=[find], run_id=run.id, agent="master", stream_phase="summary"))
    assert resp.tool_call_format == "mistral" and resp.message.content == ""
    assert [(c.name, c.arguments) for c in resp.message.tool_calls] == [("find_leads", {"tag": "vip"})]


def _status(tools: ToolSupport | None) -> SystemStatus:
    return SystemStatus(ray_nodes=1, llm_provider="ollama", llm_base_url="http://127.0.0.1:11434",
                        llm_models={"planner": "m", "worker": "m"}, llm_reachable=True, llm_in_flight=0, llm_waiting=0,
                        llm_tools=tools, pools=[PoolStatus(agent="leads", actors=1, in_flight=0, ready=2)],
                        queue={"done": 1})


def test_the_llm_badge_says_whether_the_model_calls_tools_and_what_it_means() -> None:
    none = sidebar_llm(_status(tool_support("tiny", None, None, 1.0)))
    assert 'data-tools="none"' in none and "cannot call tools" in none and NO_TOOLS in none
    text = sidebar_llm(_status(tool_support("qwen2.5", "hermes", None, 1.0)))
    assert 'data-tools="text"' in text and "tools ✔ (as text: hermes)" in text and NO_TOOLS not in text
    assert 'data-tools="native"' in sidebar_llm(_status(tool_support("m", "native", None, 1.0)))
    assert "llm-tools" not in sidebar_llm(_status(None))  # an older gateway: nothing said
    assert NO_TOOLS in integrations_html(_status(tool_support("tiny", None, None, 1.0)))


@pytest.mark.parametrize("model", [
    _status(tool_support("m", "mistral", None, 1.0)),
    ChatResponse(message=ChatMessage(role="assistant", tool_calls=[ToolCall(id="c", name="f", parse_error="bad")]),
                 model="m", tool_call_format="hermes"),
], ids=lambda m: type(m).__name__)
def test_the_new_fields_round_trip_through_json_and_pickle(model: BaseModel) -> None:
    assert type(model).model_validate_json(model.model_dump_json()) == model
    assert pickle.loads(pickle.dumps(model)) == model
