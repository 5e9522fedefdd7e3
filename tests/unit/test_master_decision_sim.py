"""The master's one-call decision against the simulated server through the real client (no Ray): a
greeting is answered, work is planned, a broken reply is repaired as many times as a plan is."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"  # before litellm is imported

from actors.gateway import LLMGateway  # noqa: E402
from actors.master import MasterAgent  # noqa: E402
from actors.runtime.handles import LocalHandle  # noqa: E402
from core.errors import PlanError  # noqa: E402
from core.plan import Decision  # noqa: E402
from core.schemas import Plan  # noqa: E402
from core.settings import Settings  # noqa: E402
from integrations.llm.backend import Backend  # noqa: E402
from maos_testing.llm.sim_thread import SimConfig, SimHandle, sim_llm_in_thread  # noqa: E402


@pytest.fixture
def sim(monkeypatch: pytest.MonkeyPatch) -> Iterator[SimHandle]:
    with sim_llm_in_thread(SimConfig()) as handle:
        monkeypatch.setenv("OLLAMA_API_BASE", handle.base_url)
        yield handle


def _master(sim: SimHandle, tmp_path: Path) -> MasterAgent:
    settings = Settings(data_dir=tmp_path, llm_retries=0, stream_replies=False)
    backend = Backend(provider="ollama", base_url=sim.base_url, planner_model="sim-model", worker_model="sim-model")
    return MasterAgent(settings, LocalHandle(object(), "store"), LocalHandle(LLMGateway(settings, backend, None)))


async def test_one_call_answers_a_greeting_or_plans_work(sim: SimHandle, tmp_path: Path) -> None:
    master = _master(sim, tmp_path)
    hello = await master.respond("hello")
    assert isinstance(hello, Decision) and hello.mode == "answer" and hello.reply and not hello.steps
    asked = await master.respond("email them [ask]")
    assert isinstance(asked, Decision) and asked.mode == "ask"
    plan = await master.respond("[fanout 3] research each venue")
    assert isinstance(plan, Plan) and len(plan.steps) == 3
    assert [r["kind"] for r in sim.log()] == ["plan"] * 3  # one call each


async def test_a_broken_decision_is_repaired_like_a_plan_then_fails_clearly(sim: SimHandle, tmp_path: Path) -> None:
    master = _master(sim, tmp_path)
    assert isinstance(await master.respond("write the weekly summary [broken-json 2]"), Plan)
    assert len(sim.log()) == 3
    with pytest.raises(PlanError, match="no valid plan in 3 attempts.*not valid JSON"):
        await master.respond("write the weekly summary [broken-json always]")
