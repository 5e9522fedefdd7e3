"""/api/status over HTTP: each LLM endpoint with its state, and why LLM work waits; the endpoint list
changed from the settings API (the login again, as for another LLM server), shown without credentials,
and back."""

from __future__ import annotations

import httpx

from maos_testing.llm.sim_thread import SimHandle
from tests.e2e.conftest import Served, free_port
from tests.e2e.people import admin_session


def test_status_shows_each_llm_endpoint_and_why_work_waits(served: Served, sim: SimHandle) -> None:
    base = served.base_url
    assert httpx.get(f"{base}/api/status", timeout=30).status_code == 401  # a stranger
    port = free_port()
    dead, shown = f"http://user:s3cret@127.0.0.1:{port}", f"http://127.0.0.1:{port}"
    listed = f"{sim.base_url}=1000,{dead}=2"
    # from a browser session, another server list needs the login token again
    with admin_session(base) as browser:
        moved = browser.patch("/api/settings", json={"llm_endpoints": listed})
    assert moved.status_code == 403
    with served.client() as client:
        one = client.get("/api/status").json()
        assert [(e["url"], e["up"]) for e in one["llm_endpoints"]] == [(sim.base_url, True)]
        assert one["llm_slots"] == 1000 and one["llm_wait_reason"] is None
        try:
            changed = client.patch("/api/settings", json={"llm_endpoints": listed})
            assert changed.status_code == 200, changed.text
            assert "llm_endpoints" in changed.json()["applied"] and "s3cret" not in changed.text
            assert changed.json()["values"]["llm_endpoints"] == f"{sim.base_url}=1000,{shown}=2"
            status = client.get("/api/status")
            by_url = {e["url"]: e for e in status.json()["llm_endpoints"]}
            assert set(by_url) == {sim.base_url, shown} and "s3cret" not in status.text
            assert by_url[sim.base_url]["up"] and not by_url[shown]["up"] and by_url[shown]["last_error"]
            assert status.json()["llm_slots"] == 1002
            assert status.json()["llm_wait_reason"] == "1 of 2 LLM endpoints down"
            same = client.patch("/api/settings", json={"llm_endpoints": f"{sim.base_url}=1000,{shown}=2"})
            assert same.status_code == 200 and same.json()["applied"] == []  # as shown: unchanged
            assert client.patch("/api/settings", json={"llm_endpoints": "http://x=0"}).status_code == 422
        finally:
            assert client.patch("/api/settings", json={"llm_endpoints": "none"}).status_code == 200
        back = client.get("/api/status").json()
        assert [e["url"] for e in back["llm_endpoints"]] == [sim.base_url] and back["llm_slots"] == 1000
