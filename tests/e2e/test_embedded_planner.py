"""The master agent plans with the real embedded SmolLM2 (no Ollama, no LM Studio)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from actors.agents import names
from actors.gateway import LLMGateway
from actors.master import MasterAgent
from actors.runtime.handles import LocalHandle
from actors.store import Store
from core.plan import parse_plan
from core.settings import Settings
from integrations.llm.backend import Backend, resolve
from integrations.llm.embedded import EmbeddedServer


@pytest.fixture
async def embedded(tmp_path: Path) -> AsyncIterator[tuple[Settings, Backend]]:
    """``auto`` with nothing answering at the usual addresses: the embedded model, started here."""
    closed = "http://127.0.0.1:9"
    settings = Settings(data_dir=tmp_path, llm_provider="auto", ollama_url=closed, lmstudio_url=closed)
    server = EmbeddedServer(log_dir=tmp_path)
    try:
        yield settings, await resolve(settings, server.start)
    finally:
        server.stop()


@pytest.mark.slow
async def test_master_gets_a_schema_valid_plan_from_the_embedded_model(embedded: tuple[Settings, Backend]) -> None:
    settings, backend = embedded
    assert backend.provider == "embedded"
    os.environ.pop("OLLAMA_API_BASE", None)
    gateway = LocalHandle(LLMGateway(settings, backend, store=None))
    master = MasterAgent(settings, store=LocalHandle(object()), gateway=gateway, embedded=True)
    for request in ("follow up with every lead tagged webinar and draft a summary for the team",
                    "book a review call with Dana next week"):
        plan = await master.plan(request)
        assert 1 <= len(plan.steps) <= 4
        assert all(step.agent in names() for step in plan.steps)


@pytest.mark.slow
async def test_a_plan_streams_into_the_run_log_while_the_server_is_probed(embedded: tuple[Settings, Backend]) -> None:
    """The UI polls the backend's health while the model writes a plan: that must not cut the stream."""
    settings, backend = embedded
    store = Store(":memory:")
    gateway = LLMGateway(settings, backend, LocalHandle(store))
    master = MasterAgent(settings, store=LocalHandle(store), gateway=LocalHandle(gateway), embedded=True)
    run = await store.create_run("draft a thank-you email to the webinar attendees", "u1")
    planning = asyncio.ensure_future(master.plan(run.message, run_id=run.id))
    probes = []
    while not planning.done():
        probes.append((await gateway.health())["reachable"])
        await asyncio.sleep(0.3)
    plan = planning.result()
    assert probes and all(probes)  # busy generating is still reachable
    tokens = [e.text or "" for e in await store.run_events(run.id) if e.kind == "token" and e.phase == "plan"]
    assert len(tokens) >= 2 and parse_plan("".join(tokens)) == plan
