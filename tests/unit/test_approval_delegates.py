"""Approval policies are the install's, and approval delegates (issue 23, item 4), without Ray:
migration 10 folding per-user policy rows on :memory:, the storage functions, and the Workspace's
rules on a real DuckDB file — only the owner or a delegate the owner named sees and decides an
action; a removal holds at once; an admin is no delegate unless named; every decision audited with
the delegate as actor and the owner as ``user_id``. The HTTP routes' door: a stranger is refused."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import duckdb
import httpx
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from actors.storage import accounts, actions, delegates
from actors.storage.migrations import migrate
from actors.store import Store
from actors.workspace import Workspace
from core.account_schemas import Role
from core.action_schemas import ActionView, BatchItem
from core.errors import ApprovalRefused, Conflict, NotFound
from core.settings import Settings
from serve_app.api import build_api
from tests.unit.test_secrets_and_approvals import workspace
from ui.approvals import ApprovalHandlers
from ui.client import ApiClient

TEXT = {"to": "+15550100", "body": "hi"}


# --- migration 10 ------------------------------------------------------------------------------


def test_migration_10_folds_per_user_policies_into_the_installs_never_widening(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from actors.storage import migrations
    from actors.storage.database import open_database

    c = open_database(":memory:")  # its configuration locked, as the Store's is
    everything = list(migrations.MIGRATIONS)
    monkeypatch.setattr(migrations, "MIGRATIONS", [m for m in everything if m[0] < 10])
    migrations.migrate(c)
    rows = [("local", "send_email", "allow"), ("admin1", "send_email", "allow"), ("admin1", "send_text", "ask"),
            ("bob", "send_text", "deny"), ("local", "place_call", "allow"), ("admin1", "delete_event", "deny"),
            ("local", "create_event", "ask")]
    for user, action, policy in rows:
        c.execute("INSERT INTO approval_policies VALUES (?, ?, ?, 5.0)", [user, action, policy])
    monkeypatch.setattr(migrations, "MIGRATIONS", everything)
    assert 10 in migrations.migrate(c)

    assert actions.policies(c) == {"send_email": "ask", "place_call": "ask", "send_text": "deny",
                                   "delete_event": "deny", "create_event": "ask"}
    migrated = c.execute("SELECT subject_id, actor, user_id, detail FROM audit_log WHERE action = 'policy.migrated' "
                         "ORDER BY subject_id").fetchall()
    assert [(r[0], r[1], r[2]) for r in migrated] == [("place_call", "system", None), ("send_email", "system", None)]
    assert '"from": "allow"' in migrated[0][3]
    assert c.execute("SELECT count(*) FROM approval_delegates").fetchone() == (0,)


@pytest.fixture
def conn() -> duckdb.DuckDBPyConnection:
    c = duckdb.connect(":memory:")
    migrate(c)
    for uid, name in (("u_ann", "Ann"), ("u_bob", "Bob"), ("u_cat", "Cat"), ("u_dan", "Dan")):
        accounts.create_user(c, uid, name, "member", None, 1.0)
    accounts.change_user(c, "u_dan", None, True, None, 2.0)  # disabled
    return c


def test_policies_are_one_per_type_for_everyone_and_record_who_set_them(conn: duckdb.DuckDBPyConnection) -> None:
    assert actions.policies(conn) == {}
    actions.set_policies(conn, {"send_email": "allow", "send_text": "deny"}, "u_admin", 10.0)
    actions.set_policies(conn, {"send_email": "ask"}, "u_other_admin", 11.0)
    assert actions.policies(conn) == {"send_email": "ask", "send_text": "deny"}
    assert conn.execute("SELECT updated_by, updated_at FROM approval_policies WHERE action = 'send_email'"
                        ).fetchone() == ("u_other_admin", 11.0)


def test_delegates_by_id_or_name_replaced_as_a_whole_and_looked_up_both_ways(conn: duckdb.DuckDBPyConnection) -> None:
    added, removed = delegates.set_delegates(conn, "u_ann", ["bob", "u_cat", "BOB"], 3.0)
    assert [p.id for p in added] == ["u_bob", "u_cat"] and removed == []
    assert [(p.id, p.name) for p in delegates.named_by(conn, "u_ann")] == [("u_bob", "Bob"), ("u_cat", "Cat")]
    assert [p.id for p in delegates.naming(conn, "u_bob")] == ["u_ann"]
    assert delegates.naming(conn, "u_ann") == []

    added, removed = delegates.set_delegates(conn, "u_ann", ["Cat"], 4.0)
    assert added == [] and [p.id for p in removed] == ["u_bob"]
    assert delegates.naming(conn, "u_bob") == [] and [p.id for p in delegates.named_by(conn, "u_ann")] == ["u_cat"]
    assert delegates.set_delegates(conn, "u_ann", [], 5.0)[1][0].id == "u_cat"
    delegates.set_delegates(conn, "local", ["bob"], 6.0)  # the install's user before accounts: no users row
    assert [(p.id, p.name) for p in delegates.naming(conn, "u_bob")] == [("local", "local")]
    assert delegates.named_by(conn, "u_ann") == []


@pytest.mark.parametrize(("who", "error", "match"), [
    ("nobody", NotFound, "no enabled user 'nobody'"), ("Dan", NotFound, "no enabled user 'Dan'"),
    ("ann", Conflict, "your own actions already"), ("u_ann", Conflict, "your own actions already")])
def test_only_existing_enabled_others_are_named_and_a_refusal_changes_nothing(
        conn: duckdb.DuckDBPyConnection, who: str, error: type[Exception], match: str) -> None:
    delegates.set_delegates(conn, "u_ann", ["bob"], 3.0)
    with pytest.raises(error, match=match):
        delegates.set_delegates(conn, "u_ann", ["cat", who], 4.0)
    assert [p.id for p in delegates.named_by(conn, "u_ann")] == ["u_bob"]


def test_owners_of_actions_leave_unknown_ids_out(conn: duckdb.DuckDBPyConnection) -> None:
    conn.execute("INSERT INTO actions (id, user_id, action, status, args_hash, ciphertext, nonce, key_id, "
                 "idempotency_key, grp, created_at, expires_at, updated_at) VALUES "
                 "('act_1', 'u_ann', 'send_text', 'pending', 'h', ''::BLOB, ''::BLOB, 'k', 'key1', 'g', 1, 2, 1)")
    assert actions.owners(conn, ["act_1", "act_nope"]) == {"act_1": "u_ann"}


# --- the Workspace's rules ---------------------------------------------------------------------


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    s = Store(str(tmp_path / "maos.duckdb"))
    people: list[tuple[str, str, Role]] = [("u_ann", "ann", "member"), ("u_bob", "bob", "member"),
                                           ("u_cat", "cat", "member"), ("u_root", "root", "admin")]
    for uid, name, role in people:
        await s.create_user(uid, name, role, None)
    yield s
    s.close()


async def _refused_as_unknown(ws: Workspace, user: str, action_id: str, digest: str) -> None:
    """``user`` may not see or decide ``action_id``: it is not there for them (404s over HTTP)."""
    with pytest.raises(NotFound):
        await ws.get_action(user, action_id)
    for decide in (ws.approve(user, action_id, digest, user), ws.reject(user, action_id, "", user),
                   ws.edit(user, action_id, digest, TEXT, user)):
        with pytest.raises(ApprovalRefused) as caught:
            await decide
        assert caught.value.reason == "unknown"
    assert action_id not in [v.id for v in await ws.list_actions(user)]


async def test_a_delegate_sees_and_decides_the_owners_actions_until_removed(store: Store) -> None:
    ws = workspace(store)
    first = await ws.propose("u_ann", "r1", "r1:s1", "r1:s1:k", "send_text", TEXT)
    second = await ws.propose("u_ann", "r1", "r1:s2", "r1:s2:k", "send_text", {**TEXT, "body": "two"})
    bobs = await ws.propose("u_bob", "r2", "r2:s1", "r2:s1:k", "send_text", {**TEXT, "body": "bob's"})
    for user in ("u_bob", "u_cat", "u_root"):  # nobody named yet; an admin is no delegate either
        await _refused_as_unknown(ws, user, first.id, first.args_hash)

    named = await ws.set_delegates("u_ann", ["bob"])
    assert [p.id for p in named.delegates] == ["u_bob"] and named.delegate_for == []
    assert [p.id for p in (await ws.delegates("u_bob")).delegate_for] == ["u_ann"]
    listed = await ws.list_actions("u_bob", status="pending")
    assert {(v.id, v.user_id) for v in listed} == {(first.id, "u_ann"), (second.id, "u_ann"), (bobs.id, "u_bob")}
    assert [v.id for v in await ws.list_actions("u_ann", status="pending")] == [second.id, first.id]  # not bob's
    assert (await ws.get_action("u_bob", first.id)).user_id == "u_ann"

    approved = await ws.approve("u_bob", first.id, first.args_hash, "u_bob")
    assert approved.user_id == "u_ann" and approved.decided_by == "u_bob" and approved.status == "approved"
    entry = next(e for e in await ws.audit("u_ann", action="approval.approved") if e.subject_id == first.id)
    assert (entry.user_id, entry.actor, entry.approved_by, entry.detail) == ("u_ann", "u_bob", "u_bob",
                                                                             {"delegate_of": "u_ann"})
    own = await ws.propose("u_ann", "r1", "r1:s5", "r1:s5:k", "send_text", {**TEXT, "body": "own"})
    await ws.reject("u_ann", own.id, "", "u_ann")
    assert (await ws.get_action("u_bob", first.id)).decided_by == "u_bob"  # what the delegate decided stays in view
    with pytest.raises(NotFound):
        await ws.get_action("u_bob", own.id)  # the owner's own decisions are not the delegate's to read
    seen = [v.id for v in await ws.list_actions("u_bob")]
    assert first.id in seen and own.id not in seen and own.id in [v.id for v in await ws.list_actions("u_ann")]
    edited = await ws.edit("u_bob", second.id, second.args_hash, {**TEXT, "body": "edited"}, "u_bob")
    assert edited.user_id == "u_ann" and edited.decided_by == "u_bob" and edited.replaces == second.id
    await _refused_as_unknown(ws, "u_cat", edited.id, edited.args_hash)  # the delegate's, not everyone's

    third = await ws.propose("u_ann", "r1", "r1:s3", "r1:s3:k", "send_text", {**TEXT, "body": "three"})
    result = await ws.batch("u_bob", "reject", [BatchItem(id=third.id, args_hash=third.args_hash),
                                                BatchItem(id=bobs.id, args_hash=bobs.args_hash)], "u_bob")
    assert sorted(result.done) == sorted([third.id, bobs.id]) and result.refused == {}
    rejected = next(e for e in await ws.audit("u_ann", action="approval.rejected") if e.subject_id == third.id)
    assert (rejected.user_id, rejected.actor) == ("u_ann", "u_bob")

    fourth = await ws.propose("u_ann", "r1", "r1:s4", "r1:s4:k", "send_text", {**TEXT, "body": "four"})
    removed = await ws.set_delegates("u_ann", [])
    assert removed.delegates == [] and (await ws.delegates("u_bob")).delegate_for == []
    await _refused_as_unknown(ws, "u_bob", fourth.id, fourth.args_hash)  # at once
    refused = await ws.batch("u_bob", "approve", [BatchItem(id=fourth.id, args_hash=fourth.args_hash)], "u_bob")
    assert refused.done == [] and "no action" in refused.refused[fourth.id]
    assert (await ws.get_action("u_ann", fourth.id)).status == "pending"

    changes = [e.detail for e in await ws.audit("u_ann", action="approval.delegated")]
    assert changes == [{"added": [], "removed": ["u_bob"]}, {"added": ["u_bob"], "removed": []}]
    await ws.set_delegates("u_ann", [])  # nothing changed: nothing audited
    assert len(await ws.audit("u_ann", action="approval.delegated")) == 2


async def test_the_installs_policy_applies_to_every_members_agents_and_its_change_is_everyones_to_read(
        store: Store) -> None:
    ws = workspace(store)
    assert await ws.set_policies({"send_text": "deny"}, "u_root") == {**await ws.policies(), "send_text": "deny"}
    for user in ("u_ann", "u_bob"):
        denied = await ws.propose(user, None, None, f"{user}:k", "send_text", TEXT)
        assert denied.status == "rejected" and denied.decided_by == "policy"
    changed = await ws.audit("u_bob", action="policy.changed")  # a member's view: theirs and the install's
    assert [(e.user_id, e.actor, e.detail) for e in changed] == [(None, "u_root", {"send_text": "deny"})]


# --- the door ------------------------------------------------------------------------------------


def test_a_stranger_is_refused_the_delegates_routes(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, api_token=SecretStr("s3cret-token-value"))
    client = TestClient(build_api(settings), base_url="http://127.0.0.1:8000", raise_server_exceptions=False)
    assert client.get("/api/approvals/delegates").status_code == 401
    assert client.put("/api/approvals/delegates", json={"delegates": ["bob"]}).status_code == 401
    wrong = {"Authorization": "Bearer not-the-token"}
    assert client.put("/api/approvals/delegates", json={"delegates": []}, headers=wrong).status_code == 401


# --- the Approvals page: another person's actions say whose ---------------------------------------


def test_the_approvals_page_says_whose_actions_a_delegate_sees() -> None:
    def act(n: int, owner: str) -> dict[str, object]:
        return ActionView(id=f"act-{n:04d}", action="send_text", status="pending", summary="text", arguments=TEXT,
                          args_hash=f"h{n}", run_id=f"run-{owner}", user_id=owner, group=f"run-{owner}:send_text",
                          created_at=100.0 - n, expires_at=10**10).model_dump(mode="json")

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/approvals/delegates":
            return httpx.Response(200, json={"delegates": [], "delegate_for": [{"id": "u_ann", "name": "Ann"}]})
        return httpx.Response(200, json=[act(1, "u_bob"), act(2, "u_ann")])

    async def listing() -> list[object]:
        client = ApiClient("http://api.test", transport=httpx.MockTransport(handler))
        try:
            return await ApprovalHandlers(client, max_groups=2).listing()
        finally:
            await client.aclose()

    out = asyncio.run(listing())
    bobs, anns = str(out[2]), str(out[6])  # each group slot: column, html, approve all, reject all
    assert "for Ann" in anns and "for " not in bobs.split("</h4>")[0]
    picks = json.dumps(out[11].constructor_args["choices"])  # type: ignore[attr-defined]  # a gr.Dropdown
    assert "act-0002 \\u00b7 for Ann" in picks and "act-0001 \\u00b7 for" not in picks
