"""The DuckDB file under ENCRYPTION_KEY: a plain file is encrypted on opening, a file under an
older key is re-keyed, and a missing or wrong key is a clear error, never a silent plain file.
An action's sealed arguments are bound to its type, hash and decision: changed in the file, it does
not open and is never carried out; rows sealed before still open and are re-sealed."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from actors.runtime.apis import StoreApi
from actors.runtime.handles import LocalHandle
from actors.runtime.typed import typed
from actors.storage.database import database_keys, open_database
from actors.store import Store
from core.crypto import DecryptError, Sealed, Sealer, aad_for, new_key_text
from core.errors import ConfigError
from core.settings import Settings
from core.storage_schemas import AddLeads, FindLeads, NewLead
from integrations.actions import ledger as actions
from integrations.actions.args import args_hash
from integrations.actions.vault import Vault
from tests._db import sql


def _bytes(folder: Path) -> bytes:
    return b"".join(p.read_bytes() for p in folder.glob("maos.duckdb*"))


def test_plain_file_is_encrypted_then_rekeyed_and_wrong_keys_are_refused(tmp_path: Path) -> None:
    path = str(tmp_path / "maos.duckdb")
    store = Store(path)
    asyncio.run(store.create_conversation("u1", "CanaryName5521"))
    store.close()
    assert b"CanaryName5521" in _bytes(tmp_path)  # the check below can fail

    old, new = new_key_text(), new_key_text()
    store = Store(path, keys=Sealer.from_text(old).derived("duckdb"))
    assert [c.title for c in asyncio.run(store.list_conversations())] == ["CanaryName5521"]
    lead = NewLead(id="l2", name="CanaryName5522")
    assert asyncio.run(store.tool_ops([AddLeads(user_id="u1", leads=[lead], source="csv")])) == [["l2"]]
    [found] = asyncio.run(store.tool_ops([FindLeads(user_id="u1", limit=5)]))
    assert [x.name for x in found] == ["CanaryName5522"]  # type: ignore[union-attr]  # tools' reader sees the commit
    store.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["maos.duckdb"]
    assert b"CanaryName552" not in _bytes(tmp_path)

    rotated = Sealer.from_text(new, old).derived("duckdb")
    store = Store(path, keys=rotated)
    assert len(asyncio.run(store.list_conversations())) == 1
    store.close()
    with pytest.raises(ConfigError, match="does not open with ENCRYPTION_KEY"):
        Store(path, keys=Sealer.from_text(old).derived("duckdb"))  # the file is under the new key now
    with pytest.raises(ConfigError, match="is encrypted: set ENCRYPTION_KEY"):
        Store(path)
    reader = open_database(path, rotated[:1], read_only=True)
    assert reader.execute("SELECT count(*) FROM schema_migrations").fetchone()[0] >= 5  # type: ignore[index]
    reader.close()


def test_keys_come_from_the_settings_and_differ_from_the_token_key(tmp_path: Path) -> None:
    assert database_keys(Settings(data_dir=tmp_path)) == []
    key = new_key_text()
    keys = database_keys(Settings(data_dir=tmp_path, encryption_key=key, encryption_old_keys=new_key_text()))
    assert len(keys) == 2 and keys[0] == Sealer.from_text(key).derived("duckdb")[0]
    assert bytes.fromhex(keys[0]) != Sealer.from_text(key)._raw[0]  # one secret never keys two ciphers


# --- an action's arguments are sealed under its type, hash and decision ---------------------------

ARGS = {"to": ["dana@example.test"], "cc": [], "subject": "Invoice", "body": "Attached."}


async def _propose(handle: StoreApi, sealer: Sealer, key: str, status: str = "pending") -> str:
    row = await actions.insert_action(handle, sealer, user_id="alice", run_id="r1", task_id="r1:s1", key=key,
                                  action="send_email", args=ARGS, digest=args_hash("send_email", ARGS),
                                  status=status, ttl_s=3600, decided_by=None)
    return row.view.id


async def _status(store: Store, action_id: str) -> tuple[str, str | None]:
    rows = sql(store, "SELECT status, error FROM actions WHERE id = ?", [action_id])
    return rows[0][0], rows[0][1]


async def test_an_action_changed_in_the_database_does_not_open_and_is_never_carried_out(tmp_path: Path) -> None:
    store = Store(str(tmp_path / "maos.duckdb"))
    handle, sealer = typed(LocalHandle(store, "store"), StoreApi), Sealer.from_text(new_key_text())
    try:
        # Marked approved behind the app's back: the executor refuses it (today's code would send it).
        flipped = await _propose(handle, sealer, "k1")
        sql(store, "UPDATE actions SET status = 'approved', decided_by = 'alice' WHERE id = ?", [flipped])
        assert await actions.claim(handle, sealer, flipped) is None
        status, error = await _status(store, flipped)
        assert status == "failed" and error is not None and error.startswith("refused")
        # Retyped, or given another action's hash: it does not open, so it can be neither shown nor approved.
        other = await _propose(handle, sealer, "k2")
        retyped = await _propose(handle, sealer, "k3")
        sql(store, "UPDATE actions SET action = 'create_drive_file' WHERE id = ?", [retyped])
        rehashed = await _propose(handle, sealer, "k4")
        sql(store, "UPDATE actions SET args_hash = ? WHERE id = ?", ["0" * 64, rehashed])
        for changed in (retyped, rehashed):
            with pytest.raises(DecryptError, match="type, hash or status was changed"):
                await actions.get_action(handle, sealer, "alice", changed)
            with pytest.raises(DecryptError):
                digest = sql(store, "SELECT args_hash FROM actions WHERE id = ?", [changed])[0][0]
                await actions.decide(handle, sealer, "alice", changed, digest, "approved", "alice")
            assert (await _status(store, changed))[0] == "pending"
        # Approved the proper way, it opens and is claimed for execution.
        approved = await actions.decide(handle, sealer, "alice", other, args_hash("send_email", ARGS), "approved", "alice")
        assert approved.status == "approved" and approved.arguments == ARGS
        claimed = await actions.claim(handle, sealer, other)
        assert claimed is not None and claimed.view.arguments == ARGS
        # Set back to pending after approval, it does not open either.
        sql(store, "UPDATE actions SET status = 'pending' WHERE id = ?", [other])
        with pytest.raises(DecryptError):
            await actions.get_action(handle, sealer, "alice", other)
    finally:
        store.close()


async def test_actions_sealed_before_are_read_and_re_sealed_on_approval_or_rotation(tmp_path: Path) -> None:
    store = Store(str(tmp_path / "maos.duckdb"))
    handle, sealer = typed(LocalHandle(store, "store"), StoreApi), Sealer.from_text(new_key_text())

    async def seal_the_old_way(action_id: str) -> None:  # row and user only, as rows were written before
        old = sealer.seal_json(ARGS, aad_for("actions", action_id, "alice"))
        sql(store, "UPDATE actions SET ciphertext = ?, nonce = ? WHERE id = ?", [old.ciphertext, old.nonce, action_id])

    async def sealed_the_old_way(action_id: str) -> bool:
        ct, nonce, kid = sql(store, "SELECT ciphertext, nonce, key_id FROM actions WHERE id = ?", [action_id])[0]
        try:
            sealer.open(Sealed(ct, nonce, kid), aad_for("actions", action_id, "alice"))
        except DecryptError:
            return False
        return True

    try:
        pending, executing, current = [await _propose(handle, sealer, f"k{i}") for i in range(3)]
        for action_id in (pending, executing):
            await seal_the_old_way(action_id)
        sql(store, "UPDATE actions SET status = 'executing' WHERE id = ?", [executing])
        assert (await actions.get_action(handle, sealer, "alice", pending)).arguments == ARGS  # still readable
        approved = await actions.decide(handle, sealer, "alice", pending, args_hash("send_email", ARGS), "approved",
                                    "alice")
        assert approved.arguments == ARGS and not await sealed_the_old_way(pending)  # approving re-sealed it
        assert await Vault(handle, sealer).rotate() == {"oauth_credentials": 0, "actions": 1, "oauth_states": 0}
        assert not await sealed_the_old_way(executing)
        assert (await actions.get_action(handle, sealer, "alice", executing)).arguments == ARGS
        assert (await actions.get_action(handle, sealer, "alice", current)).status == "pending"
        assert await Vault(handle, sealer).rotate() == {"oauth_credentials": 0, "actions": 0, "oauth_states": 0}
    finally:
        store.close()
