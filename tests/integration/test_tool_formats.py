"""A whole app whose model writes its tool calls as text (Qwen's <tool_call>, Llama's python tag, Mistral's
[TOOL_CALLS], Gemma's fenced JSON): every step calls its tool, gets the tool's result and finishes."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from actors.runtime import wiring
from maos_testing.llm._sim_formats import styles
from maos_testing.llm.sim_thread import SimHandle
from tests._db import app_sql
from tests.integration.conftest import app_for_module, ask, wait_run


@pytest.fixture(scope="module")
def app(ray_session: None, sim: SimHandle, tmp_path_factory: pytest.TempPathFactory) -> Iterator[wiring.App]:
    yield from app_for_module(tmp_path_factory, "tool-formats", sim.base_url)


@pytest.fixture
def text_sim(fresh_sim: SimHandle) -> Iterator[SimHandle]:
    fresh_sim.update(log_bodies=True)
    yield fresh_sim
    fresh_sim.update(tool_format="native", log_bodies=False)  # the session's sim, as the next test expects it


@pytest.mark.parametrize("style", ["hermes", "llama", "mistral-args", "fenced"])
def test_a_run_whose_model_writes_tool_calls_as_text_acts_and_finishes(app: wiring.App, text_sim: SimHandle,
                                                                       style: str) -> None:
    text_sim.update(tool_format=style)
    run_id = ask(app, f"[fanout 3 sops] look up the refund policy ({style}) [use search_documents] query=refund")
    view = wait_run(app, run_id)

    assert view.run.status == "done", view.run.error
    assert len(view.tasks) == 3 and {t.status for t in view.tasks} == {"done"}
    log = [r for r in text_sim.log() if r["task_id"] in {t.id for t in view.tasks}]
    calls = [r for r in log if r["kind"] == "tool_call"]
    finals = [r for r in log if r["kind"] == "final"]
    assert len(calls) == 3 and len(finals) == 3
    for r in calls:  # the model wrote its call as text; the API's field stayed empty
        assert r["reply"] and "search_documents" in r["reply"]
    for r in finals:  # each step's second turn carries the tool's own result, not an error about the call
        observation = r["body"]["messages"][-1]
        assert observation["role"] == "tool" and not observation["content"].startswith("error"), observation
    # agent_runs says which form the model wrote its calls in (rows land shortly after the calls)
    query = "SELECT tool_call_format, count(*) FROM agent_runs WHERE run_id = ? AND tool_call_format IS NOT NULL GROUP BY 1"
    deadline = time.monotonic() + 10
    while (rows := app_sql(app, query, [run_id])) != [(styles()[style].format, 3)]:
        assert time.monotonic() < deadline, rows
        time.sleep(0.05)
