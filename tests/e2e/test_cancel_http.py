"""Cancelling a run through HTTP: the signed-in person stops it (idempotently); a stranger cannot."""

from __future__ import annotations

import time

import httpx

from tests.e2e.conftest import Served
from tests.e2e.people import admin_session


def test_a_run_is_cancelled_over_http_and_a_stranger_is_refused(served: Served) -> None:
    base = served.base_url
    with served.client() as api:
        accepted = api.post("/api/runs", json={"message": "[fanout 40] [slow 1] call every lead",
                                               "max_tokens": 10_000_000}).json()
        run_id = accepted["run_id"]
        # no login, or a cross-site post with the login cookie: refused, and the run goes on
        assert httpx.post(f"{base}/api/runs/{run_id}/cancel", timeout=30).status_code == 401
        with admin_session(base) as browser:
            cookies = dict(browser.cookies)
        forged = httpx.post(f"{base}/api/runs/{run_id}/cancel", cookies=cookies, timeout=30,
                            headers={"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"})
        assert forged.status_code == 403
        deadline = time.monotonic() + 120
        while api.get(f"/api/runs/{run_id}").json()["run"]["status"] == "planning":
            assert time.monotonic() < deadline, "the run was never planned"
            time.sleep(0.2)
        assert api.get(f"/api/runs/{run_id}").json()["run"]["status"] == "running"
        out = api.post(f"/api/runs/{run_id}/cancel")
        assert out.status_code == 200 and out.json()["cancelled"] and out.json()["status"] == "cancelled"
        again = api.post(f"/api/runs/{run_id}/cancel").json()
        assert again["cancelled"] is False and again["status"] == "cancelled"
        view = api.get(f"/api/runs/{run_id}").json()
        assert view["run"]["status"] == "cancelled" and view["run"]["error"].startswith("cancelled by")
        assert {t["status"] for t in view["tasks"]} <= {"done", "cancelled"}
        assert api.post("/api/runs/nope/cancel").status_code == 404
