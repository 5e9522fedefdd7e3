""""Approve all" over HTTP, as a script or the UI would call it: refused (409, naming the outliers)
for a group whose replies go to a hostile mail's Reply-To, accepted for a clean group; the outlier is
approved on its own, after which its address is known."""

from __future__ import annotations

from typing import Any

from tests.e2e.conftest import Served
from tests.e2e.test_google_http import REPLY, connected_with_nothing_pending, wait_for


def test_approve_all_is_refused_for_a_group_with_an_outlier_and_accepted_for_a_clean_one(served: Served) -> None:
    fake = served.google
    with served.client(60) as api:
        connected_with_nothing_pending(served, api)
        lure = fake.add_message(sender="Dana Ruiz <dana@example.test>", to="owner@example.test", subject="New bank details",
                                body="Please confirm the new account.", headers={"Reply-To": "dana.ruiz@evil.test"})
        plain = fake.add_message(sender="pat@example.test", to="owner@example.test", subject="Thursday?", body="Free?")
        odd_run, clean_run = (api.post("/api/runs", json={"message": f"[fanout 3 email] {REPLY.format(t['threadId'])}"})
                              .json()["run_id"] for t in (lure, plain))
        for run in (odd_run, clean_run):
            wait_for(lambda run=run: api.get(f"/api/runs/{run}").json()["run"]["status"] == "done", what="the run")

        groups = {g["group"]: g for g in api.get("/api/approvals/groups").json()}
        odd, clean = groups[f"{odd_run}:reply_email"], groups[f"{clean_run}:reply_email"]
        assert odd["recipients"] == [{"address": "dana.ruiz@evil.test", "domain": "evil.test", "actions": 3,
                                      "external": True, "new": True}]
        assert odd["domains"] == {"evil.test": 3} and not odd["approve_all"] and len(odd["outliers"]) == 3
        assert all("differs from From (dana@example.test)" in w[0] for w in odd["warnings"].values())
        assert clean["approve_all"] and clean["outliers"] == {} and [r["address"] for r in clean["recipients"]] == [
            "pat@example.test"]
        shown = api.get(f"/api/approvals/{odd['items'][0]['id']}").json()
        assert shown["arguments"]["to_source"] == "reply_to" and shown["arguments"]["sender"] == "dana@example.test"
        assert shown["review"]["outliers"] and shown["review"]["recipients"][0]["external"]

        refused = api.post("/api/approvals/batch", json={"decision": "approve", "items": odd["items"]})
        assert refused.status_code == 409, refused.text
        assert "dana.ruiz@evil.test" in refused.json()["detail"] and "Nothing was approved" in refused.json()["detail"]
        statuses = {a["id"]: a["status"] for a in api.get("/api/approvals", params={"run_id": odd_run}).json()}
        assert set(statuses.values()) == {"pending"}

        accepted = api.post("/api/approvals/batch", json={"decision": "approve", "items": clean["items"]})
        assert accepted.status_code == 200, accepted.text
        assert sorted(accepted.json()["done"]) == sorted(i["id"] for i in clean["items"])

        first, *rest = odd["items"]
        assert api.post(f"/api/approvals/{first['id']}/approve", json={"args_hash": first["args_hash"]}).status_code == 200
        after = {g["group"]: g for g in api.get("/api/approvals/groups").json()}[f"{odd_run}:reply_email"]
        assert after["approve_all"] and after["recipients"][0]["new"] is False  # approved once, by a person
        assert api.post("/api/approvals/batch", json={"decision": "approve", "items": rest}).status_code == 200

    def sent(thread: str) -> list[dict[str, Any]]:
        return [m for m in fake.sent_messages() if m["threadId"] == thread]
    wait_for(lambda: len(sent(lure["threadId"])) == 3 and len(sent(plain["threadId"])) == 3, what="six replies sent")
    assert {tuple(m["to"]) for m in sent(lure["threadId"])} == {("dana.ruiz@evil.test",)}
