"""Approval policies are the install's and approval delegates (issue 23, item 4), over HTTP through
Serve: the admin's policy applies to a member's run; member A names B their delegate; B sees A's
pending action (marked as A's), approves it (recorded with B deciding, A owning), C gets 404; A
removes B and B gets 404 again at once."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from tests.e2e.conftest import Served
from tests.e2e.test_google_http import REPLY, connect_http, wait_for
from tests.e2e.test_isolation_http import finished, member


def _pending_reply(served: Served, a: httpx.Client) -> tuple[str, list[dict[str, Any]]]:
    """A's run that proposes one reply: (run id, A's actions of that run once it ended)."""
    thread = served.google.add_message(sender="pat@example.test", to="owner@example.test", subject="Lunch?",
                                       body="Free on Friday?")
    accepted = a.post("/api/runs", json={"message": REPLY.format(thread["threadId"])})
    assert accepted.status_code == 202, accepted.text
    run_id = accepted.json()["run_id"]
    finished(a, run_id)
    return run_id, wait_for(lambda: a.get("/api/approvals", params={"run_id": run_id}).json(),
                            what="A's proposed reply")


def test_the_installs_policy_reaches_members_and_a_delegate_decides_until_removed(served: Served) -> None:
    suffix = uuid.uuid4().hex[:6]
    a, b, c = (member(served, f"{who}{suffix}") for who in ("ann", "bea", "cid"))
    a_id, b_id = (p.get("/api/auth/me").json()["user"]["id"] for p in (a, b))
    with served.client() as admin:
        try:
            # the admin's policy is the install's: a member reads it, and their agents are held to it
            denied = admin.put("/api/approvals/policy", json={"policies": {"reply_email": "deny"}})
            assert denied.status_code == 200 and denied.json()["policies"]["reply_email"] == "deny"
            assert a.get("/api/approvals/policy").json()["policies"]["reply_email"] == "deny"
            assert a.put("/api/approvals/policy", json={"policies": {"reply_email": "ask"}}).status_code == 403
            connect_http(served, a, ["gmail_read", "gmail_write"])
            _, (refused,) = _pending_reply(served, a)
            assert (refused["status"], refused["decided_by"], refused["user_id"]) == ("rejected", "policy", a_id)
        finally:
            assert admin.put("/api/approvals/policy", json={"policies": {"reply_email": "ask"}}).status_code == 200

    run_id, (action,) = _pending_reply(served, a)
    assert action["status"] == "pending"
    url, approve = f"/api/approvals/{action['id']}", {"args_hash": action["args_hash"]}
    assert b.get(url).status_code == 404  # not named yet

    # A names B (by login name); only an enabled other person can be named
    assert a.put("/api/approvals/delegates", json={"delegates": [a_id]}).status_code == 422
    assert a.put("/api/approvals/delegates", json={"delegates": ["nobody-" + suffix]}).status_code == 422
    named = a.put("/api/approvals/delegates", json={"delegates": [f"bea{suffix}"]})
    assert named.status_code == 200, named.text
    assert [p["id"] for p in named.json()["delegates"]] == [b_id]
    assert [p["id"] for p in b.get("/api/approvals/delegates").json()["delegate_for"]] == [a_id]

    # B sees A's action, marked as A's, in the list and the groups, and may read it; C may not
    listed = {v["id"]: v for v in b.get("/api/approvals", params={"status": "pending"}).json()}
    assert listed[action["id"]]["user_id"] == a_id
    groups = {g["group"]: g for g in b.get("/api/approvals/groups").json()}
    assert [i["id"] for i in groups[f"{run_id}:reply_email"]["items"]] == [action["id"]]
    assert b.get(url).json()["user_id"] == a_id
    for verb in ("approve", "reject"):
        assert c.post(f"{url}/{verb}", json=approve if verb == "approve" else {"reason": "no"}).status_code == 404
    assert c.get(url).status_code == 404
    assert action["id"] not in [v["id"] for v in c.get("/api/approvals").json()]

    approved = b.post(f"{url}/approve", json=approve)
    assert approved.status_code == 200, approved.text
    assert (approved.json()["user_id"], approved.json()["decided_by"]) == (a_id, b_id)
    trail = a.get("/api/audit", params={"action": "approval."}).json()
    entry = next(e for e in trail if e["action"] == "approval.approved" and e["subject_id"] == action["id"])
    assert (entry["user_id"], entry["actor"], entry["approved_by"]) == (a_id, b_id, b_id)
    assert any(e["action"] == "approval.delegated" and e["detail"]["added"] == [b_id] for e in trail)
    wait_for(lambda: a.get(url).json()["status"] == "done", what="the reply sent, as A's")

    # A removes B: at once, B is refused A's next action as a stranger is
    _, (later,) = _pending_reply(served, a)
    later_url = f"/api/approvals/{later['id']}"
    assert b.get(later_url).status_code == 200
    assert a.put("/api/approvals/delegates", json={"delegates": []}).json()["delegates"] == []
    assert b.get(later_url).status_code == 404
    assert b.post(f"{later_url}/approve", json={"args_hash": later["args_hash"]}).status_code == 404
    assert later["id"] not in [v["id"] for v in b.get("/api/approvals").json()]
    assert a.get(later_url).json()["status"] == "pending"
    a.post(f"{later_url}/reject", json={"reason": "test done"})
    for person in (a, b, c):
        person.close()
