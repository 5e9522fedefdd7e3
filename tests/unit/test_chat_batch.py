"""A pool's sub-agents reach the gateway in few calls (``BatchedChat`` → ``LLMGateway.chat_many``): the real
litellm client against the simulated server, the gateway in process behind a handle that counts calls."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"  # before litellm is imported

from actors.agents.chat_batch import BatchedChat  # noqa: E402
from actors.gateway import LLMGateway  # noqa: E402
from actors.runtime.apis import GatewayApi  # noqa: E402
from actors.runtime.handles import LocalHandle  # noqa: E402
from actors.runtime.typed import typed  # noqa: E402
from core.chat_schemas import ChatMessage, ChatRequest, ToolSpec  # noqa: E402
from core.errors import ActorGone, LLMError  # noqa: E402
from core.settings import Settings  # noqa: E402
from integrations.llm.backend import Backend  # noqa: E402
from maos_testing.llm.sim_thread import SimConfig, SimHandle, sim_llm_in_thread  # noqa: E402


class CountingHandle(LocalHandle):
    def __init__(self, obj: Any) -> None:
        super().__init__(obj)
        self.streams = 0

    async def stream(self, method: str, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        self.streams += 1
        async for item in super().stream(method, *args, **kwargs):
            yield item


@pytest.fixture
def sim(monkeypatch: pytest.MonkeyPatch) -> Iterator[SimHandle]:
    with sim_llm_in_thread(SimConfig(ttft_ms=20, token_ms=1, reply_tokens=6)) as handle:
        monkeypatch.setenv("OLLAMA_API_BASE", handle.base_url)
        yield handle


def _gateway(sim: SimHandle, tmp_path: Path) -> CountingHandle:
    backend = Backend(provider="ollama", base_url=sim.base_url, planner_model="sim-model", worker_model="sim-model")
    return CountingHandle(LLMGateway(Settings(data_dir=tmp_path, llm_retries=0), backend, None, slots=100))


def _ask(text: str, tools: list[ToolSpec] | None = None) -> ChatRequest:
    return ChatRequest(messages=[ChatMessage(role="user", content=text)], role="worker", priority="background",
                       tools=tools or [])


async def test_each_request_gets_its_own_reply_and_a_slow_one_holds_up_none(sim: SimHandle, tmp_path: Path) -> None:
    handle = _gateway(sim, tmp_path)
    chat = BatchedChat(typed(handle, GatewayApi))
    finished: dict[str, float] = {}

    async def ask(text: str) -> str:
        reply = (await chat.chat(_ask(text))).message.content
        finished[text] = time.monotonic()
        return reply

    texts = [f"note {i}" for i in range(30)] + ["note slow [slow 1.5]"]
    replies = await asyncio.gather(*(ask(t) for t in texts))
    for text, reply in zip(texts[:-1], replies, strict=False):
        assert reply.startswith(f"Summary: {text} "), reply
    assert handle.streams == 1  # thirty-one requests, one call
    fast_done = max(finished[t] for t in texts[:-1])
    assert finished[texts[-1]] - fast_done > 1.0  # the fast ones came back long before the slow one


async def test_a_failed_request_fails_alone_and_a_lost_gateway_fails_all_that_wait(sim: SimHandle, tmp_path: Path) -> None:
    chat = BatchedChat(typed(_gateway(sim, tmp_path), GatewayApi))
    tool = ToolSpec(name="save_note", description="Save a note.", parameters={"type": "object", "properties": {}})
    good, bad = await asyncio.gather(chat.chat(_ask("note 1", [tool])), chat.chat(_ask("note 2 [fail-step]", [tool])),
                                     return_exceptions=True)
    assert not isinstance(good, BaseException) and good.message.tool_calls[0].name == "save_note"
    assert isinstance(bad, LLMError) and "simulated step failure" in str(bad)

    class Gone(LocalHandle):
        async def stream(self, method: str, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
            yield [(0, (await self.obj.chat(args[0][0])))]  # one reply, then the actor dies
            raise ActorGone("actor 'gateway-0' is gone: ActorDiedError", "gateway-0")

    lost = BatchedChat(typed(Gone(_gateway(sim, tmp_path).obj), GatewayApi))
    first, second = await asyncio.gather(lost.chat(_ask("note 3")), lost.chat(_ask("note 4")), return_exceptions=True)
    assert not isinstance(first, BaseException) and first.message.content.startswith("Summary: note 3")
    assert isinstance(second, ActorGone)
