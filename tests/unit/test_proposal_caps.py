"""The caps on proposals (``integrations.actions.proposals``) through the Workspace, on a real DuckDB file (no Ray):
per step, per run, one proposal per target and step, and the same proposal again after a retry."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from actors.runtime.handles import LocalHandle
from actors.store import Store
from actors.workspace import Workspace
from core.crypto import new_key_text
from core.errors import ToolError
from core.settings import Settings
from integrations.actions.proposals import proposal_key, target
from tests._db import sql


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    s = Store(str(tmp_path / "maos.duckdb"))
    yield s
    s.close()


def workspace(store: Store, per_step: int = 3, per_run: int = 5) -> Workspace:
    settings = Settings(encryption_key=SecretStr(new_key_text()), max_proposals_per_step=per_step,
                        max_proposals_per_run=per_run)
    return Workspace(settings, LocalHandle(store, "store"), sweep=False)


def mail(to: str, body: str = "Hello", subject: str = "Hi") -> dict[str, Any]:
    return {"to": [to], "subject": subject, "body": body}


async def count(store: Store, where: str = "TRUE") -> int:
    return int(sql(store, f"SELECT count(*) FROM actions WHERE {where}")[0][0])


async def test_a_step_proposes_at_most_its_cap_and_nothing_is_recorded_past_it(store: Store) -> None:
    ws = workspace(store, per_step=3)
    for i in range(3):
        await ws.propose("alice", "run1", "run1:s1", "run1:s1", "send_email", mail(f"p{i}@example.test"))
    with pytest.raises(ToolError, match=r"this step already proposed 3 actions.*max_proposals_per_step"):
        await ws.propose("alice", "run1", "run1:s1", "run1:s1", "send_email", mail("p3@example.test"))
    assert await count(store) == 3
    other = await ws.propose("alice", "run1", "run1:s2", "run1:s2", "send_email", mail("p3@example.test"))
    assert other.status == "pending"  # another step of the run has its own cap
    again = await ws.propose("alice", "run1", "run1:s1", "run1:s1", "send_email", mail("p0@example.test"))
    assert again.task_id == "run1:s1" and await count(store) == 4  # a retried step gets its first proposal back


async def test_a_run_proposes_at_most_its_cap_even_from_steps_at_once(store: Store) -> None:
    ws = workspace(store, per_step=10, per_run=5)
    outcomes = await asyncio.gather(*(
        ws.propose("alice", "run1", f"run1:s{i}", f"run1:s{i}", "send_email", mail(f"p{i}@example.test"))
        for i in range(12)), return_exceptions=True)
    refused = [o for o in outcomes if isinstance(o, ToolError)]
    assert len(refused) == 7 and all("max_proposals_per_run" in str(r) for r in refused)
    assert await count(store, "run_id = 'run1'") == 5
    assert (await ws.propose("alice", "run2", "run2:s1", "run2:s1", "send_email", mail("x@example.test"))).run_id == "run2"


async def test_a_persons_edit_does_not_count(store: Store) -> None:
    ws = workspace(store, per_step=1)
    first = await ws.propose("alice", "run1", "run1:s1", "run1:s1", "send_email", mail("a@example.test"))
    await ws.edit("alice", first.id, first.args_hash, mail("a@example.test", "Edited"), "alice")
    with pytest.raises(ToolError, match="this step already proposed 1 actions"):  # the edit is not counted
        await ws.propose("alice", "run1", "run1:s1", "run1:s1", "send_email", mail("b@example.test"))


async def test_one_proposal_per_target_and_step_whatever_the_body(store: Store) -> None:
    ws = workspace(store, per_step=10)
    first = await ws.propose("alice", "run1", "run1:s1", "run1:s1", "send_email",
                             mail("Ann@Example.test", "Please pay the invoice.", "Invoice"))
    with pytest.raises(ToolError, match=rf"same target as action {first.id} \(pending\).*not recorded"):
        await ws.propose("alice", "run1", "run1:s1", "run1:s1", "send_email",
                         mail("ann@example.test", "Please pay the invoice now!", "Re: Invoice"))
    assert await count(store) == 1
    cc = await ws.propose("alice", "run1", "run1:s1", "run1:s1", "send_email",
                          {**mail("ann@example.test"), "cc": ["bob@example.test"]})
    assert cc.id != first.id  # other recipients: another target
    later = await ws.propose("alice", "run1", "run1:s2", "run1:s2", "send_email", mail("ann@example.test", "Again"))
    assert later.id != first.id  # another step: its own proposal
    event = {"title": "Review", "start": "2030-01-07T10:00", "end": "2030-01-07T11:00", "attendees": ["a@x.test"]}
    await ws.propose("alice", "run1", "run1:s1", "run1:s1", "create_event", event)
    await ws.propose("alice", "run1", "run1:s1", "run1:s1", "create_event", {**event, "start": "2030-01-14T10:00",
                                                                             "end": "2030-01-14T11:00"})
    with pytest.raises(ToolError, match="one create_event per target"):  # same attendees, same start
        await ws.propose("alice", "run1", "run1:s1", "run1:s1", "create_event", {**event, "title": "Review (v2)"})
    assert await count(store) == 5


def test_targets() -> None:
    assert target("send_email", {"to": ["B@x.test", "a@x.test"], "cc": [], "subject": "s", "body": "b"}) == \
        target("send_email", {"to": ["a@x.test"], "cc": ["b@x.test"], "subject": "t", "body": "c"})
    assert target("reply_email", {"thread_id": "t1", "body": "a"}) == target("reply_email", {"thread_id": "t1",
                                                                                             "body": "b"})
    assert target("delete_event", {"event_id": "e1", "title": "x"}) == target("delete_event", {"event_id": "e1"})
    assert target("send_text", {"to": "+1 555-0100", "body": "a"}) == target("send_text", {"to": "+15550100",
                                                                                          "body": "b"})
    assert target("create_drive_file", {"title": "Q3  Plan", "content": "a"}) == \
        target("create_drive_file", {"title": "q3 plan", "content": "b"})
    assert proposal_key("k", "send_email", {"to": ["a@x.test"]}).startswith("k:send_email:")
    assert proposal_key("k", "send_email", {"to": ["a@x.test"]}) != proposal_key("k", "send_email", {"to": ["b@x.test"]})
