"""Follow-ups over HTTP after direct answers: "the second one" resolves against the last run with steps
however many greetings and questions came after it, and the planning request names that run; the
conversation settings (answer directly, context budget) saved over HTTP take effect on the next message."""

from __future__ import annotations

import httpx

from maos_testing.llm.sim_thread import SimHandle
from tests.e2e.conftest import Served
from tests.e2e.test_conversation_http import plan_requests, say


def test_the_second_one_resolves_against_the_last_run_with_steps_after_direct_answers(
        served: Served, bodies: SimHandle) -> None:
    sim = bodies
    with served.client(60) as client:
        conversation = client.post("/api/conversations", json={}).json()["id"]
        first = say(client, conversation, "[fanout 3 writing] write a note for each venue title=alpha|beta|gamma")[0]
        assert first["run"]["status"] == "done" and len(first["tasks"]) == 3, first["run"]
        results = {t["step_id"]: " ".join(t["result"].split()) for t in first["tasks"]}
        for chat in ("hello", "thanks", "what can you do?"):
            answered = say(client, conversation, chat)[0]
            assert answered["tasks"] == [] and answered["run"]["status"] == "done", answered["run"]
        sim.clear()

        second = say(client, conversation, "make the second one shorter")[0]
        assert second["run"]["status"] == "done", second["run"]
        (request,) = plan_requests(sim)
        data = request[-1]["content"]
        assert request[-1]["role"] == "user" and data.startswith("Data from the last run in this conversation")
        assert (f"Run: {first['run']['id']} (the newest run with steps in this conversation; 3 later requests "
                "answered without steps)") in data
        assert all(f"{n}. s{n} (writing, done)" in data for n in (1, 2, 3)) and all(r in data for r in results.values())
        (step,) = second["run"]["plan"]["steps"]
        assert results["s2"] in step["instruction"]  # "the second one" is what step two of the first run produced
        assert results["s1"] not in step["instruction"] and results["s3"] not in step["instruction"]


def test_saved_conversation_settings_take_effect(served: Served, bodies: SimHandle) -> None:
    sim = bodies
    with served.client(60) as client:
        shown = client.get("/api/settings").json()["values"]
        assert shown["answer_directly"] is True and shown["context_token_budget"] == 1500
        assert httpx.patch(f"{served.base_url}/api/settings", json={"answer_directly": False},
                           timeout=30).status_code == 401
        assert client.patch("/api/settings", json={"context_token_budget": -1}).status_code == 422
        conversation = client.post("/api/conversations", json={}).json()["id"]
        assert say(client, conversation, "hello")[0]["tasks"] == []  # answered directly
        try:
            saved = client.patch("/api/settings", json={"answer_directly": False, "context_token_budget": 0})
            assert saved.status_code == 200, saved.text
            assert saved.json()["applied"] == ["answer_directly", "context_token_budget"]
            assert client.get("/api/settings").json()["values"]["context_token_budget"] == 0
            sim.clear()
            planned = say(client, conversation, "hello")[0]
            assert planned["run"]["plan"] is not None and planned["tasks"], planned["run"]  # planned, not answered
            (request,) = plan_requests(sim)
            # No earlier turn (the context budget is 0): the request follows the system prompt; after it at most
            # what memory recalls, never the conversation's last run.
            assert [m["role"] for m in request][:2] == ["system", "user"] and request[1]["content"] == "hello"
            assert "assistant" not in [m["role"] for m in request]
            assert not any("Data from the last run" in m["content"] for m in request)
        finally:
            back = client.patch("/api/settings", json={"answer_directly": True, "context_token_budget": 1500})
            assert back.status_code == 200, back.text
