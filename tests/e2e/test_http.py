"""The HTTP API end to end: httpx against the running Serve app, simulated LLM server behind it."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx

from actors.runtime.typed import blocking
from maos_testing.llm.sim_thread import SimHandle
from tests.e2e.conftest import Served, free_port


def read_events(client: httpx.Client, url: str, last_event_id: int | None = None,
                stop_after: int | None = None) -> Iterator[dict[str, Any]]:
    """Parse the SSE stream into events (``id`` and ``event`` merged into the JSON data)."""
    headers = {"Accept": "text/event-stream"}
    if last_event_id is not None:
        headers["Last-Event-ID"] = str(last_event_id)
    with client.stream("GET", url, headers=headers, timeout=120) as resp:
        assert resp.status_code == 200, resp.read()
        assert resp.headers["content-type"].startswith("text/event-stream")
        fields: dict[str, str] = {}
        n = 0
        for line in resp.iter_lines():
            if line.startswith(":"):
                continue
            if line == "":
                if "data" in fields:
                    event = json.loads(fields["data"])
                    assert int(fields["id"]) == event["seq"] and fields["event"] == event["kind"]
                    yield event
                    n += 1
                    if event["kind"] == "end" or (stop_after is not None and n >= stop_after):
                        return
                fields = {}
                continue
            key, _, value = line.partition(":")
            fields[key] = value.lstrip(" ")


def post_message(client: httpx.Client, message: str) -> dict[str, Any]:
    conv = client.post("/api/conversations", json={})
    assert conv.status_code == 201, conv.text
    resp = client.post(f"/api/conversations/{conv.json()['id']}/messages", json={"message": message})
    assert resp.status_code == 202, resp.text
    return resp.json()  # type: ignore[no-any-return]


def test_a_message_streams_plan_steps_and_summary_to_the_end(served: Served) -> None:
    with served.client(60) as client:
        accepted = post_message(client, "[fanout 6] follow up with every lead tagged webinar")
        events = list(read_events(client, accepted["events_url"]))

        seqs = [e["seq"] for e in events]
        assert seqs == sorted(set(seqs)) and seqs[0] == 1
        assert events[0]["kind"] == "status" and events[0]["status"] == "planning"
        kinds = [e["kind"] for e in events]
        assert kinds.index("token") < kinds.index("plan")  # the plan streams as it is written
        plan = next(e["plan"] for e in events if e["kind"] == "plan")
        assert len(plan["steps"]) == 6
        done = Counter(e["step_id"] for e in events if e["kind"] == "task" and e["status"] == "done")
        assert done == Counter({s["id"]: 1 for s in plan["steps"]})
        assert all(e["text"] for e in events if e["kind"] == "task" and e["status"] == "done")
        summary = next(e for e in events if e["kind"] == "summary")
        streamed = "".join(e["text"] for e in events if e["kind"] == "token" and e["phase"] == "summary")
        assert streamed.strip() == summary["text"]
        assert events[-1]["kind"] == "end" and events[-1]["status"] == "done"

        run = client.get(f"/api/runs/{accepted['run_id']}").json()
        assert run["run"]["status"] == "done" and all(t["status"] == "done" for t in run["tasks"])
        conv = client.get(f"/api/conversations/{accepted['conversation_id']}").json()
        assert [m["role"] for m in conv["messages"]] == ["user", "assistant"]
        assert conv["messages"][1]["content"] == summary["text"]


def test_reconnecting_with_last_event_id_misses_nothing(served: Served) -> None:
    with served.client(60) as client:
        accepted = post_message(client, "[fanout 5] [slow 0.3] research each webinar lead")
        first = list(read_events(client, accepted["events_url"], stop_after=4))
        assert len(first) == 4 and first[-1]["kind"] != "end"
        rest = list(read_events(client, accepted["events_url"], last_event_id=first[-1]["seq"]))
        assert rest[0]["seq"] > first[-1]["seq"] and rest[-1]["kind"] == "end"
        whole = list(read_events(client, accepted["events_url"]))  # the log from the start, after the end
        # the text streamed while the plan and summary were written is superseded by them in the log
        seen = [e for e in first + rest if e["kind"] != "token"]
        assert [e["seq"] for e in seen] == [e["seq"] for e in whole] and seen == whole
        resumed = list(read_events(client, f"{accepted['events_url']}?after={whole[-3]['seq']}"))
        assert resumed == whole[-2:]


def test_bad_requests_get_clear_errors(served: Served) -> None:
    with served.client(60) as client:
        empty = client.post("/api/runs", json={"message": ""})
        assert empty.status_code == 422 and "message" in empty.json()["detail"]
        assert client.post("/api/runs", json={"text": "hi"}).status_code == 422
        not_json = client.post("/api/runs", content=b"{", headers={"content-type": "application/json"})
        assert not_json.status_code == 422
        bad_limit = client.get("/api/tasks", params={"limit": 0})
        assert bad_limit.status_code == 422 and "limit" in bad_limit.json()["detail"]
        for path in ("/api/runs/nope", "/api/tasks/nope:s1", "/api/conversations/nope", "/api/runs/nope/events"):
            resp = client.get(path)
            assert resp.status_code == 404 and "nope" in resp.json()["detail"], path
        missing = client.post("/api/conversations/nope/messages", json={"message": "hello"})
        assert missing.status_code == 404
        assert client.post("/api/tasks/nope:s1/retry").status_code == 404

        accepted = client.post("/api/runs", json={"message": "[fanout 2] draft a note"}).json()
        list(read_events(client, accepted["events_url"]))
        task_id = client.get("/api/tasks", params={"run_id": accepted["run_id"]}).json()[0]["id"]
        not_dead = client.post(f"/api/tasks/{task_id}/retry")
        assert not_dead.status_code == 409 and "only dead tasks" in not_dead.json()["detail"]
        bad_id = client.get(accepted["events_url"], headers={"Last-Event-ID": "abc"})
        assert bad_id.status_code == 422 and "Last-Event-ID" in bad_id.json()["detail"]
        bad_setting = client.patch("/api/settings", json={"llm_slots": 0})
        assert bad_setting.status_code == 422 and "llm_slots" in bad_setting.json()["detail"]
        unknown = client.patch("/api/settings", json={"colour": "blue"})
        assert unknown.status_code == 422 and "colour" in unknown.json()["detail"]
        assert client.patch("/api/settings", json={"max_turns": None}).status_code == 422


def test_past_the_queue_bound_new_work_gets_429_with_retry_after(served: Served) -> None:
    with served.client(60) as client:
        bound = client.patch("/api/settings", json={"queue_bound": 2})
        assert bound.status_code == 200, bound.text
        try:
            slow = client.post("/api/runs", json={"message": "[fanout 3] [slow 1.5] call each lead"}).json()
            deadline = time.monotonic() + 30
            while client.get(f"/api/runs/{slow['run_id']}").json()["run"]["status"] == "planning":
                assert time.monotonic() < deadline, json.dumps([client.get(f"/api/runs/{slow['run_id']}").json(),
                                                                client.get("/api/status").json()])
                time.sleep(0.05)
            refused = client.post("/api/runs", json={"message": "one more thing"})
            assert refused.status_code == 429, refused.text
            assert int(refused.headers["Retry-After"]) >= 1 and "bound 2" in refused.json()["detail"]
        finally:
            assert client.patch("/api/settings", json={"queue_bound": 50_000}).status_code == 200
        list(read_events(client, slow["events_url"]))
        after = client.post("/api/runs", json={"message": "[fanout 1] and now this"})
        assert after.status_code == 202
        list(read_events(client, after.json()["events_url"]))  # left running, it would keep the LLM busy


def test_settings_round_trip_are_saved_and_applied(served: Served, sim: SimHandle) -> None:
    with served.client(60) as client:
        before = client.get("/api/settings").json()["values"]
        changed = client.patch("/api/settings", json={"max_turns": 4, "stream_replies": False, "llm_slots": 64})
        assert changed.status_code == 200, changed.text
        assert changed.json()["applied"] == ["llm_slots", "max_turns", "stream_replies"]
        assert changed.json()["restart_required"] == []
        values = client.get("/api/settings").json()["values"]
        assert (values["max_turns"], values["stream_replies"], values["llm_slots"]) == (4, False, 64)
        saved = blocking(served.app.store.settings_overrides(), timeout=30)
        assert saved["max_turns"] == 4 and saved["stream_replies"] is False
        try:
            # Applied without a restart: with streaming off, a run's log has no tokens.
            accepted = client.post("/api/runs", json={"message": "[fanout 2] write a thank-you note"}).json()
            kinds = {e["kind"] for e in read_events(client, accepted["events_url"])}
            assert "token" not in kinds and {"plan", "summary", "end"} <= kinds
            status = client.get("/api/status").json()
            assert status["llm_provider"] == "ollama" and status["llm_reachable"] is True
        finally:
            client.patch("/api/settings", json={k: before[k] for k in ("max_turns", "stream_replies", "llm_slots")})

        ok = client.post("/api/settings/test-connection",
                         json={"provider": "ollama", "base_url": sim.base_url, "model": "sim-model"}).json()
        assert ok["ok"] is True and ok["models"]
        wrong_model = client.post("/api/settings/test-connection",
                                  json={"provider": "ollama", "base_url": sim.base_url, "model": "nope"}).json()
        assert wrong_model["ok"] is False and "nope" in wrong_model["error"]
        dead = client.post("/api/settings/test-connection",
                           json={"provider": "openai", "base_url": f"http://127.0.0.1:{free_port()}"}).json()
        assert dead["ok"] is False and "did not answer" in dead["error"]
        assert client.post("/api/settings/test-connection", json={"provider": "x", "base_url": "y"}).status_code == 422


def test_history_agents_probes_and_metrics(served: Served, sim: SimHandle) -> None:
    with served.client(60) as client:
        accepted = post_message(client, "[fanout 3] find the webinar leads from Tuesday")
        list(read_events(client, accepted["events_url"]))
        found = client.get("/api/conversations", params={"q": "WEBINAR leads from tuesday"}).json()
        assert accepted["conversation_id"] in [c["id"] for c in found]
        assert found[0]["last_status"] == "done" and found[0]["runs"] == 1
        ids = lambda **p: [c["id"] for c in client.get("/api/conversations", params=p).json()]  # noqa: E731
        assert accepted["conversation_id"] in ids(status="done", since=time.time() - 600)
        assert accepted["conversation_id"] not in ids(since=time.time() + 60)
        assert accepted["conversation_id"] not in ids(q="no such words anywhere")
        agent = found[0]["agents"][0]
        assert accepted["conversation_id"] in ids(agent=agent)
        tasks = client.get("/api/tasks", params={"run_id": accepted["run_id"], "agent": agent}).json()
        assert tasks and all(t["agent"] == agent for t in tasks)

        agents = client.get("/api/agents").json()
        assert {p["agent"] for p in agents["pools"]} >= {"leads", "email", "calendar", "writing", "research"}
        assert all(p["actors"] and p["description"] for p in agents["pools"])
        assert sum(p["done_last_minute"] for p in agents["pools"]) >= 3
        (machine,) = agents["machines"]  # this machine: the head, alive
        assert machine["head"] and machine["alive"] and len(machine["node"]) == 8 and machine["steps_running"] >= 0
        assert {t["node"] for t in tasks} == {machine["node"]}  # where the run's steps ran

        assert client.get("/health").json() == {"status": "ok"}
        assert client.get("/ready").json() == {"ready": True, "reasons": []}
        # A request in flight at the server counts as "busy, up" for a while: stop it when idle,
        # with no step left that could send one.
        def busy() -> bool:
            status = client.get("/api/status").json()
            return bool(status["llm_in_flight"] or any(status["queue"].get(s) for s in ("pending", "ready", "running")))

        deadline = time.monotonic() + 60
        while busy():
            assert time.monotonic() < deadline, client.get("/api/status").json()
            time.sleep(0.1)
        sim.stop()
        try:
            down = client.get("/ready")
            assert down.status_code == 503 and down.json()["reasons"] == [
                f"llm: ollama at {sim.base_url} is not answering"]
            assert client.get("/health").status_code == 200  # alive, just not ready
        finally:
            sim.start()
        assert client.get("/ready").status_code == 200
        metrics = client.get("/metrics")
        assert metrics.status_code == 200
        assert 'maos_tasks{status="done"}' in metrics.text and "maos_http_request_seconds_bucket" in metrics.text
        assert client.get("/docs").status_code == 200
        assert "/api/conversations/{conversation_id}/messages" in client.get("/openapi.json").json()["paths"]
