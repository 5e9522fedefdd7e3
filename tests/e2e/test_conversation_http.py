"""A conversation over HTTP: a follow-up is planned with the earlier turn and its results (as the
simulated server received it), "the second one" resolves, and a greeting or a question about the
last run is answered with no steps."""

from __future__ import annotations

from typing import Any

import httpx

from maos_testing.llm.sim_thread import SimHandle
from tests.e2e.conftest import Served
from tests.e2e.test_http import read_events


def say(client: httpx.Client, conversation_id: str, message: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Post ``message`` and follow its run to the end: (the run with its tasks, its events)."""
    resp = client.post(f"/api/conversations/{conversation_id}/messages", json={"message": message})
    assert resp.status_code == 202, resp.text
    accepted = resp.json()
    events = list(read_events(client, accepted["events_url"]))
    return client.get(f"/api/runs/{accepted['run_id']}").json(), events


def plan_requests(sim: SimHandle) -> list[list[dict[str, Any]]]:
    return [r["body"]["messages"] for r in sim.log() if r["kind"] == "plan" and r["body"] is not None]


def test_a_follow_up_reads_the_last_turn_and_its_results_and_the_second_one_resolves(
        served: Served, bodies: SimHandle) -> None:
    sim = bodies
    with served.client(60) as client:
        conversation = client.post("/api/conversations", json={}).json()["id"]
        first, _ = say(client, conversation, "[fanout 3 writing] write a note for each venue title=alpha|beta|gamma")
        assert first["run"]["status"] == "done" and len(first["tasks"]) == 3, first["run"]
        results = {t["step_id"]: " ".join(t["result"].split()) for t in first["tasks"]}
        assert len(set(results.values())) == 3 and all(len(r) < 300 for r in results.values()), results
        sim.clear()

        second, _ = say(client, conversation, "make the second one shorter")
        assert second["run"]["status"] == "done", second["run"]

        (request, *_) = plan_requests(sim)
        roles = [m["role"] for m in request]
        assert roles[:4] == ["system", "user", "assistant", "user"], roles
        assert request[1]["content"] == first["run"]["message"]  # the first turn, as the user's message
        assert request[2]["content"] == " ".join(first["run"]["summary"].split())[:len(request[2]["content"])]
        assert request[3]["content"] == "make the second one shorter"
        data = request[4]["content"]
        assert request[4]["role"] == "user" and data.startswith("Data from the last run in this conversation")
        assert all(r in data for r in results.values())  # its results, as data
        assert all(first["run"]["message"] not in m["content"] for m in request if m["role"] == "system")

        (step,) = second["run"]["plan"]["steps"]
        assert results["s2"] in step["instruction"]  # "the second one" is what step two produced
        assert results["s1"] not in step["instruction"] and results["s3"] not in step["instruction"]

        done, events = say(client, conversation, "what did you just do?")
        assert done["run"]["status"] == "done" and done["tasks"] == [] and done["run"]["plan"] is None
        assert "make the second one shorter" in done["run"]["summary"]  # answered from the conversation
        assert [e["kind"] for e in events][-2:] == ["summary", "end"] and events[-1]["status"] == "done"
        assert not any(e["kind"] in ("plan", "task") for e in events)
        messages = client.get(f"/api/conversations/{conversation}").json()["messages"]
        assert [m["role"] for m in messages] == ["user", "assistant"] * 3
        assert messages[-1]["content"] == done["run"]["summary"]


def test_hello_gets_a_reply_and_no_steps(served: Served, sim: SimHandle) -> None:
    with served.client(60) as client:
        conversation = client.post("/api/conversations", json={}).json()["id"]
        hello, events = say(client, conversation, "hello")
        assert hello["run"]["status"] == "done" and hello["tasks"] == [] and hello["run"]["plan"] is None
        assert hello["run"]["summary"] and hello["run"]["error"] is None
        summary = next(e for e in events if e["kind"] == "summary")
        assert summary["text"] == hello["run"]["summary"]
        streamed = "".join(e["text"] for e in events if e["kind"] == "token")
        assert hello["run"]["summary"] in streamed.replace('\\"', '"')  # the reply streamed as it was written
        assert [r["kind"] for r in sim.log()] == ["plan"]  # one LLM call: no sub-agent, no summary
