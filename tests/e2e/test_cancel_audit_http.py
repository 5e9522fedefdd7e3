"""A stopped run in the audit log, read over HTTP: a person's cancel names who and why and each
proposal it withdrew; a budget's stop names the budget."""

from __future__ import annotations

from typing import Any

import httpx

from tests.e2e.conftest import Served
from tests.e2e.test_google_http import REPLY, connected_with_nothing_pending, wait_for


def _audit(api: httpx.Client, run_id: str) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = api.get("/api/audit", params={"run_id": run_id}).json()
    return entries


def test_a_cancel_and_its_withdrawn_proposals_are_audited(served: Served) -> None:
    with served.client(60) as api:
        connected_with_nothing_pending(served, api)
        thread = served.google.add_message(sender="pat@example.test", to="owner@example.test", subject="Venues",
                                           body="Which venue did you pick?")["threadId"]
        run = api.post("/api/runs", json={"message": f"[fanout 3 email>writing] [slow 3] {REPLY.format(thread)}"}
                       ).json()["run_id"]
        pending = wait_for(lambda: [a["id"] for a in api.get("/api/approvals", params={"run_id": run}).json()
                                    if a["status"] == "pending"], what="a proposal of the run")
        assert _audit(api, run) and not [e for e in _audit(api, run) if e["action"] == "run.cancelled"]
        out = api.post(f"/api/runs/{run}/cancel").json()
        assert out["cancelled"] and set(pending) <= set(out["withdrawn"])

        entries = _audit(api, run)
        (stopped,) = [e for e in entries if e["action"] == "run.cancelled"]
        who = stopped["actor"]
        assert stopped["detail"] == {"by": "person", "reason": f"cancelled by {who}", "withdrawn": len(out["withdrawn"]),
                                     "stopped_steps": len(out["stopped_steps"])}
        withdrawn = [e for e in entries if e["action"] == "approval.withdrawn"]
        assert sorted(e["subject_id"] for e in withdrawn) == sorted(out["withdrawn"])
        assert all(e["actor"] == who and e["detail"] == {"by": "person", "reason": f"cancelled by {who}"}
                   for e in withdrawn)
        assert all(api.get(f"/api/approvals/{a}").json()["status"] == "withdrawn" for a in out["withdrawn"])

        assert not api.post(f"/api/runs/{run}/cancel").json()["cancelled"]  # again: no new cancel to audit

        def cancelling(rows: list[dict[str, Any]]) -> list[str]:  # (a step stopped mid-call may still log its own)
            return sorted(e["id"] for e in rows if e["action"] in ("run.cancelled", "approval.withdrawn"))
        assert cancelling(_audit(api, run)) == cancelling(entries)
        assert httpx.get(f"{served.base_url}/api/audit", params={"run_id": run}, timeout=30).status_code == 401


def test_a_budget_stop_is_audited_with_the_budget(served: Served) -> None:
    with served.client(60) as api:
        run = api.post("/api/runs", json={"message": "[fanout 6 writing] [slow 1] write six notes",
                                          "max_tokens": 30}).json()["run_id"]
        wait_for(lambda: api.get(f"/api/runs/{run}").json()["run"]["status"] == "cancelled", what="the budget stop")
        (stopped,) = wait_for(lambda: [e for e in _audit(api, run) if e["action"] == "run.cancelled"],
                              what="the audit entry")
        assert stopped["actor"] == "system" and stopped["detail"]["by"] == "budget"
        assert stopped["detail"]["reason"].startswith("token budget of 30 reached")
