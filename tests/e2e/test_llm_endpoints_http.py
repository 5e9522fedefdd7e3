"""/api/status over HTTP: each LLM endpoint with its state, and why LLM work waits; the endpoint list
changed from the settings API (the login again, as for another LLM server) and back."""

from __future__ import annotations

import httpx

from maos_testing.llm.sim_thread import SimHandle
from tests.e2e.conftest import Served, free_port


def test_status_shows_each_llm_endpoint_and_why_work_waits(served: Served, sim: SimHandle) -> None:
    assert httpx.get(f"{served.base_url}/api/status", timeout=30).status_code == 401  # a stranger
    dead = f"http://127.0.0.1:{free_port()}"
    with served.client() as client:
        one = client.get("/api/status").json()
        assert [(e["url"], e["up"]) for e in one["llm_endpoints"]] == [(sim.base_url, True)]
        assert one["llm_slots"] == 1000 and one["llm_wait_reason"] is None
        try:
            changed = client.patch("/api/settings", json={"llm_endpoints": f"{sim.base_url}=1000,{dead}=2"})
            assert changed.status_code == 200, changed.text
            assert "llm_endpoints" in changed.json()["applied"]
            status = client.get("/api/status").json()
            by_url = {e["url"]: e for e in status["llm_endpoints"]}
            assert set(by_url) == {sim.base_url, dead}
            assert by_url[sim.base_url]["up"] and not by_url[dead]["up"] and by_url[dead]["last_error"]
            assert status["llm_slots"] == 1002 and status["llm_wait_reason"] == "1 of 2 LLM endpoints down"
            assert client.patch("/api/settings", json={"llm_endpoints": "http://x=0"}).status_code == 422
        finally:
            assert client.patch("/api/settings", json={"llm_endpoints": "none"}).status_code == 200
        back = client.get("/api/status").json()
        assert [e["url"] for e in back["llm_endpoints"]] == [sim.base_url] and back["llm_slots"] == 1000
