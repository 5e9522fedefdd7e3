"""The audit log over HTTP (issue 23, item 7): a settings change, a document deleted and Google
disconnected each leave a row naming who did it, with ids and field names but never a value or a
secret; a member reads their own rows, an admin everyone's."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from maos_testing.llm.sim_thread import SimHandle
from tests._cluster import LOGIN_TOKEN
from tests.e2e.conftest import Served, free_port
from tests.e2e.test_google_http import connect_http

SECRET = f"s3cret-{uuid.uuid4().hex[:8]}"
PASSWORD = f"correct horse {uuid.uuid4().hex[:6]}"
SOP = b"# Refunds\n\nRefunds over 500 EUR are approved by the finance lead within two working days.\n"


@contextmanager
def _member(served: Served, admin: httpx.Client) -> Iterator[tuple[str, httpx.Client]]:
    """A member the admin invited, signed in through the link as the setup page does: their id, and a
    client holding the session (with its CSRF token and the app's origin, as the browser sends)."""
    made = admin.post("/api/users", json={"name": f"ada-{uuid.uuid4().hex[:6]}"})
    assert made.status_code == 201, made.text
    with httpx.Client(base_url=served.base_url, timeout=60, headers={"Origin": served.base_url}) as client:
        accepted = client.post("/api/auth/accept", json={"token": made.json()["link"].split("#", 1)[1],
                                                         "password": PASSWORD})
        assert accepted.status_code == 200, accepted.text
        client.headers["X-CSRF-Token"] = accepted.json()["csrf_token"]
        yield str(made.json()["user"]["id"]), client


def _rows(client: httpx.Client, action: str | None = None) -> list[dict[str, Any]]:
    """The audit rows this client may read (``action``: those whose action contains it)."""
    params: dict[str, Any] = {"limit": 2000, **({"action": action} if action is not None else {})}
    answer = client.get("/api/audit", params=params)
    assert answer.status_code == 200, answer.text
    rows: list[dict[str, Any]] = answer.json()
    return rows


def _only(rows: list[dict[str, Any]], **match: Any) -> dict[str, Any]:
    found = [r for r in rows if all(r.get(k) == v for k, v in match.items())]
    assert len(found) == 1, (match, rows)
    return found[0]


def test_changes_are_audited_with_who_and_never_a_value(served: Served, sim: SimHandle) -> None:
    with served.client() as admin, _member(served, admin) as (member_id, member):
        admin_id = admin.get("/api/auth/me").json()["user"]["id"]
        assert admin_id != member_id

        # settings: the admin changes two (one a URL holding a password); the row names the fields only
        before = admin.get("/api/settings").json()["values"]
        dead = f"http://audit:{SECRET}@127.0.0.1:{free_port()}"
        try:
            changed = admin.patch("/api/settings", json={
                "llm_endpoints": f"{sim.base_url}=1000,{dead}=2",
                "user_uploads_per_minute": before["user_uploads_per_minute"] + 1})
            assert changed.status_code == 200, changed.text
            assert set(changed.json()["applied"]) == {"llm_endpoints", "user_uploads_per_minute"}
            row = next(r for r in _rows(admin, "settings.changed") if "llm_endpoints" in r["detail"]["fields"])
            assert row["user_id"] == admin_id and row["actor"] == admin_id
            assert row["detail"]["fields"] == ["llm_endpoints", "user_uploads_per_minute"]
            unchanged = admin.patch("/api/settings", json={"user_uploads_per_minute": before["user_uploads_per_minute"] + 1})
            assert unchanged.status_code == 200 and unchanged.json()["applied"] == []
        finally:
            restored = admin.patch("/api/settings", json={
                "llm_endpoints": "none", "user_uploads_per_minute": before["user_uploads_per_minute"]})
            assert restored.status_code == 200, restored.text
        settings_rows = _rows(admin, "settings.changed")
        assert sum(r["actor"] == admin_id for r in settings_rows) >= 2  # the change and the way back, not the no-op

        # a document: the member uploads one and deletes it
        up = member.post("/api/documents", files={"file": ("refunds.md", SOP, "text/markdown")},
                         data={"kind": "sop", "tags": "billing"})
        assert up.status_code in (200, 202), up.text
        doc_id = up.json()["document"]["id"]
        assert member.delete(f"/api/documents/{doc_id}").status_code == 204
        assert member.get(f"/api/documents/{doc_id}").status_code == 404
        assert member.delete(f"/api/documents/{doc_id}").status_code == 404  # nothing left: no second row
        deleted = _only(_rows(member, "document.deleted"), subject_id=doc_id)
        assert deleted["user_id"] == member_id and deleted["actor"] == member_id
        assert deleted["detail"]["kind"] == "sop"

        # Google: the member connects (through the fake) and disconnects
        done = connect_http(served, member, ["gmail_read"])
        assert done.status_code == 303 and "google=connected" in done.headers["location"], done.text
        gone = member.post("/api/integrations/google/disconnect")
        assert gone.status_code == 200 and gone.json()["status"] == "disconnected", gone.text
        off = _only([r for r in _rows(member, "google.disconnected") if r["user_id"] == member_id], actor=member_id)
        assert off["detail"]["revoked"] is True

        # a member reads their own rows (and the system's), never the admin's; the admin reads everyone's
        mine = _rows(member)
        assert mine and all(r["user_id"] in (member_id, None) for r in mine)
        assert not any(r["action"] == "settings.changed" for r in mine)
        everyone = _rows(admin)
        ids = {r["id"] for r in everyone}
        assert {deleted["id"], off["id"], row["id"]} <= ids

        # no value and no secret in any row either can read
        for rows in (mine, everyone):
            text = json.dumps(rows)
            for secret in (SECRET, LOGIN_TOKEN, PASSWORD, "finance lead", "owner@example.test"):
                assert secret not in text, secret
