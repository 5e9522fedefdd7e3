"""Isolation matrix (issue 23): two members, A and B, each signed in with their own API token (made
through the real accounts flow: the admin's invite, the link used, a token for name and password).
For every route in the OpenAPI document that takes an id, B gets 404 for A's record (the list comes
from ``/openapi.json``: a new route with an id is covered, or fails here until this test has a record
for it); B's run event stream never carries A's events; B's memory search never returns A's document.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import Served
from tests.e2e.people import PASSWORD, invited
from tests.e2e.test_google_http import REPLY, connect_http, wait_for

# Path parameters that name no one's record: the caller's own connection to that integration is meant.
NOT_RECORDS = {"provider": "a registered integration's name; each person's connection is looked up by the caller"}
ADMIN_ONLY = {"user_id"}  # accounts: a member is refused (403) whoever it names
SECRET_WORD = "quokkaledger"


def member(served: Served, name: str) -> httpx.Client:
    """A new member, invited by the admin, signed in with an API token of their own."""
    invited(served.base_url, name)
    made = httpx.post(f"{served.base_url}/api/auth/token", json={"name": name, "password": PASSWORD,
                                                                  "token_name": "isolation"}, timeout=30)
    assert made.status_code == 200, made.text
    return httpx.Client(base_url=served.base_url, timeout=60,
                        headers={"Authorization": f"Bearer {made.json()['secret']}"})


@pytest.fixture(scope="module")
def people(served: Served) -> Iterator[tuple[httpx.Client, httpx.Client]]:
    suffix = uuid.uuid4().hex[:6]
    a, b = member(served, f"alice{suffix}"), member(served, f"bob{suffix}")
    assert a.get("/api/auth/me").json()["user"]["role"] == "member"
    yield a, b
    a.close()
    b.close()


def finished(api: httpx.Client, run_id: str) -> dict[str, Any]:
    return wait_for(lambda: (v := api.get(f"/api/runs/{run_id}").json())["run"]["status"] in ("done", "failed") and v,
                    what=f"run {run_id} to end")


def a_records(served: Served, a: httpx.Client) -> tuple[dict[str, str], dict[str, Any]]:
    """One of each of A's records: a conversation, a run, a step, a pending approval, a document, a token."""
    connect_http(served, a, ["gmail_read", "gmail_write"])
    thread = served.google.add_message(sender="pat@example.test", to="owner@example.test", subject="Lunch?", body="Free?")
    accepted = a.post("/api/runs", json={"message": f"[fanout 1 email] {REPLY.format(thread['threadId'])}"})
    assert accepted.status_code == 202, accepted.text
    run_id = accepted.json()["run_id"]
    view = finished(a, run_id)
    action = wait_for(lambda: a.get("/api/approvals", params={"run_id": run_id, "status": "pending"}).json(),
                      what="A's pending approval")[0]
    doc = a.post("/api/documents", files={"file": ("a.md", f"# A's notes\nThe {SECRET_WORD} code is 7741.".encode(),
                                                   "text/markdown")})
    assert doc.status_code in (200, 202), doc.text
    token = a.post("/api/tokens", json={"name": "spare"})
    assert token.status_code == 201, token.text
    ids = {"conversation_id": view["run"]["conversation_id"], "run_id": run_id, "task_id": view["tasks"][0]["id"],
           "action_id": action["id"], "document_id": doc.json()["document"]["id"], "token_id": token.json()["token"]["id"]}
    return ids, action


def bodies(action: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """A valid body per request schema (the lookup, not the body check, must answer B)."""
    return {"PostMessage": {"message": "hello"}, "Feedback": {"rating": "down"},
            "Decision": {"args_hash": action["args_hash"]},
            "EditDecision": {"args_hash": action["args_hash"], "arguments": action["arguments"]},
            "Rejection": {"reason": "not mine"}, "UserChange": {"disabled": True},
            "ConnectRequest": {"features": ["gmail_read"]}}


def body_schema(op: dict[str, Any]) -> str | None:
    content = op.get("requestBody", {}).get("content", {})
    refs = [c.get("schema", {}).get("$ref", "") for c in content.values()]
    return refs[0].rsplit("/", 1)[-1] if refs and refs[0] else ("inline" if content else None)


def test_b_gets_404_for_every_record_of_a_named_in_the_openapi_document(served: Served,
                                                                        people: tuple[httpx.Client, httpx.Client]) -> None:
    a, b = people
    ids, action = a_records(served, a)
    examples = bodies(action)
    doc = b.get("/openapi.json").json()
    asked: list[str] = []
    for path, ops in doc["paths"].items():
        params = re.findall(r"{(\w+)}", path)
        if not params or set(params) & NOT_RECORDS.keys():
            continue
        for method, op in ops.items():
            if set(params) & ADMIN_ONLY:
                refused = b.request(method.upper(), path.replace("{user_id}", "someone"), json=examples.get(
                    body_schema(op) or "", None))
                assert refused.status_code == 403, f"{method.upper()} {path}: {refused.status_code} {refused.text}"
                continue
            unknown = [p for p in params if p not in ids]
            assert not unknown, f"{method.upper()} {path}: no record of A's for {unknown}; add one to a_records()"
            schema = body_schema(op)
            assert schema is None or schema in examples, f"{method.upper()} {path}: add a valid {schema} to bodies()"
            url = path.format(**ids)
            answer = b.request(method.upper(), url, json=examples[schema] if schema else None)
            assert answer.status_code == 404, f"B {method.upper()} {url}: {answer.status_code} {answer.text[:300]}"
            detail = answer.json()["detail"]
            assert isinstance(detail, str) and detail
            asked.append(f"{method.upper()} {path}")
    assert len(asked) >= 15, asked  # every id route of the work, memory, approvals and token APIs

    # A's records are there, and as they were: B changed nothing.
    for path in ("/api/runs/{run_id}", "/api/conversations/{conversation_id}", "/api/tasks/{task_id}",
                 "/api/documents/{document_id}", "/api/approvals/{action_id}"):
        assert a.get(path.format(**ids)).status_code == 200, path
    assert a.get(f"/api/approvals/{ids['action_id']}").json()["status"] == "pending"
    assert len(a.get(f"/api/conversations/{ids['conversation_id']}").json()["runs"]) == 1
    assert ids["token_id"] in [t["id"] for t in a.get("/api/tokens").json()]
    # B's lists hold none of A's records.
    listed = json.dumps([b.get(p).json() for p in ("/api/conversations", "/api/tasks", "/api/drafts", "/api/approvals",
                                                   "/api/documents", "/api/tokens", "/api/audit")])
    for key in ("conversation_id", "run_id", "action_id", "document_id", "token_id"):
        assert ids[key] not in listed, key


def test_b_sees_only_b_events_and_b_memory(served: Served, people: tuple[httpx.Client, httpx.Client]) -> None:
    a, b = people
    doc = a.post("/api/documents", files={"file": ("b.md", f"# Vault\nThe {SECRET_WORD} vault opens at dawn.".encode(),
                                                   "text/markdown")})
    assert doc.status_code in (200, 202), doc.text
    a_run = a.post("/api/runs", json={"message": "[fanout 3 writing] alpha-private plans"}).json()["run_id"]
    b_run = b.post("/api/runs", json={"message": "[fanout 2 writing] bravo's own plans"}).json()["run_id"]
    events: list[dict[str, Any]] = []
    with b.stream("GET", f"/api/runs/{b_run}/events", timeout=120) as stream:
        assert stream.status_code == 200
        for line in stream.iter_lines():
            if line.startswith("data: "):
                events.append(json.loads(line[6:]))
                if events[-1]["kind"] == "end":
                    break
    assert events and {e["run_id"] for e in events} == {b_run}
    assert a_run not in json.dumps(events) and "alpha-private" not in json.dumps(events)
    finished(a, a_run)

    found = wait_for(lambda: [s for s in a.get("/api/memory/search", params={"q": SECRET_WORD}).json()
                              if SECRET_WORD in s["snippet"]], what="A's document searchable by A")
    assert found
    theirs = b.get("/api/memory/search", params={"q": SECRET_WORD, "limit": 50})
    assert theirs.status_code == 200
    assert not [s for s in theirs.json() if SECRET_WORD in s["snippet"] or s["source_id"] == doc.json()["document"]["id"]]
