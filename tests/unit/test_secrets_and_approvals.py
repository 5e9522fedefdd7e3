"""Secrets at rest and the approval rules, on a real DuckDB file (no Ray): AES-GCM bound to its
row, key rotation, and every way an approval is refused."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from actors.runtime.apis import StoreApi
from actors.runtime.handles import LocalHandle
from actors.runtime.typed import typed
from actors.store import Store
from actors.workspace import Workspace
from core.crypto import DecryptError, Sealer, aad_for, new_key_text, parse_key
from core.errors import ApprovalRefused, ConfigError, ToolError
from core.settings import Settings
from integrations.actions.args import args_hash, check_arguments, scrub
from integrations.actions.vault import Vault
from integrations.google.oauth import TokenSet
from tests._db import sql


def test_seal_binds_row_and_user_and_never_reuses_a_nonce() -> None:
    sealer = Sealer.from_text(new_key_text())
    a = sealer.seal(b"refresh-token-canary", aad_for("oauth_credentials", "row1", "alice"))
    b = sealer.seal(b"refresh-token-canary", aad_for("oauth_credentials", "row1", "alice"))
    assert a.nonce != b.nonce and len(a.nonce) == 12 and a.ciphertext != b.ciphertext
    assert b"canary" not in a.ciphertext
    assert sealer.open(a, aad_for("oauth_credentials", "row1", "alice")) == b"refresh-token-canary"
    with pytest.raises(DecryptError, match="moved or tampered"):
        sealer.open(a, aad_for("oauth_credentials", "row2", "alice"))  # copied to another row
    with pytest.raises(DecryptError, match="moved or tampered"):
        sealer.open(a, aad_for("oauth_credentials", "row1", "mallory"))  # or to another user
    with pytest.raises(DecryptError, match="not configured"):
        Sealer.from_text(new_key_text()).open(a, aad_for("oauth_credentials", "row1", "alice"))


def test_keys_are_checked() -> None:
    assert len(parse_key("00" * 32)) == 32 and len(parse_key(new_key_text())) == 32
    with pytest.raises(ConfigError, match="32 bytes"):
        parse_key("c2hvcnQ=")
    with pytest.raises(ConfigError, match="base64"):
        parse_key("not a key!")


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    s = Store(str(tmp_path / "maos.duckdb"))
    yield s
    s.close()


TOKENS = TokenSet(access_token="ya29.access-canary", refresh_token="1//refresh-canary", expiry=None,
                  scopes=["https://www.googleapis.com/auth/gmail.readonly"])


async def test_rotation_re_encrypts_under_the_new_key(store: Store, tmp_path: Path) -> None:
    old, new = new_key_text(), new_key_text()
    handle = typed(LocalHandle(store, "store"), StoreApi)
    first = Vault(handle, Sealer.from_text(old))
    row_id = await first.save("alice", TOKENS, "alice@example.test")
    await first.put_state("alice", ["gmail_read"], "http://127.0.0.1/cb", "verifier-canary")
    rotated = Vault(handle, Sealer.from_text(new, old))
    assert await rotated.rotate() == {"oauth_credentials": 1, "actions": 0, "oauth_states": 1}
    only_new = Vault(handle, Sealer.from_text(new))
    loaded = await only_new.load("alice")
    assert loaded is not None and loaded[0] == row_id and loaded[1] == TOKENS and loaded[2]["account"] == "alice@example.test"
    with pytest.raises(DecryptError):
        await Vault(handle, Sealer.from_text(old)).load("alice")
    await store.flush()
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("maos.duckdb*"))
    assert not [c for c in (b"access-canary", b"refresh-canary", b"alice@example.test", b"verifier-canary") if c in raw]


async def test_a_ciphertext_moved_to_another_row_does_not_open(store: Store) -> None:
    handle = typed(LocalHandle(store, "store"), StoreApi)
    vault = Vault(handle, Sealer.from_text(new_key_text()))
    await vault.save("alice", TOKENS, None)
    await vault.save("bob", {**TOKENS, "refresh_token": "bobs"}, None)
    sql(store, "UPDATE oauth_credentials SET ciphertext = (SELECT ciphertext FROM oauth_credentials "
               "WHERE user_id = 'alice'), nonce = (SELECT nonce FROM oauth_credentials WHERE user_id = 'alice') "
               "WHERE user_id = 'bob'")
    with pytest.raises(DecryptError):
        await vault.load("bob")


def workspace(store: Store, **overrides: object) -> Workspace:
    settings = Settings(encryption_key=SecretStr(new_key_text()), **overrides)  # type: ignore[arg-type]
    return Workspace(settings, LocalHandle(store, "store"), sweep=False)


async def test_every_refusal_names_its_reason(store: Store) -> None:
    ws = workspace(store)
    args = {"to": ["a@example.test"], "subject": "Hi", "body": "Hello"}
    first = await ws.propose("alice", "run1", "run1:s1", "run1:s1:k", "send_email", args)
    assert first.status == "pending" and first.args_hash == args_hash("send_email", {**args, "cc": []})
    again = await ws.propose("alice", "run1", "run1:s1", "run1:s1:k", "send_email", args)
    assert again.id == first.id  # a retried step proposes nothing new
    cases = [("bob", first.args_hash, "unknown"), ("alice", "0" * 64, "mismatch")]
    for user, digest, reason in cases:
        with pytest.raises(ApprovalRefused) as caught:
            await ws.approve(user, first.id, digest, user)
        assert caught.value.reason == reason
    approved = await ws.approve("alice", first.id, first.args_hash, "alice")
    assert approved.status == "approved" and approved.decided_by == "alice"
    with pytest.raises(ApprovalRefused) as used:
        await ws.approve("alice", first.id, first.args_hash, "alice")
    assert used.value.reason == "used"
    late = await ws.propose("alice", "run1", "run1:s2", "run1:s2:k", "send_email", args)
    sql(store, "UPDATE actions SET expires_at = ? WHERE id = ?", [time.time() - 1, late.id])
    assert (await ws.get_action("alice", late.id)).status == "expired"
    with pytest.raises(ApprovalRefused) as expired:
        await ws.approve("alice", late.id, late.args_hash, "alice")
    assert expired.value.reason == "expired"


async def test_policies_allow_deny_and_ask(store: Store) -> None:
    ws = workspace(store)
    assert set((await ws.policies()).values()) == {"ask"}  # the default, for every action type
    await ws.set_policies({"send_text": "deny", "create_drive_file": "allow"}, "admin")
    denied = await ws.propose("alice", None, None, "k1", "send_text", {"to": "+15550100", "body": "hi"})
    assert denied.status == "rejected" and denied.decided_by == "policy"
    allowed = await ws.propose("alice", None, None, "k2", "create_drive_file", {"title": "Notes", "content": "x"})
    assert allowed.status == "approved" and allowed.decided_by == "policy"
    bobs = await ws.propose("bob", None, None, "k3", "send_text", {"to": "+15550100", "body": "hi"})
    assert bobs.status == "rejected" and bobs.decided_by == "policy"  # the install's policy: everyone's agents


def test_arguments_are_checked_and_errors_scrubbed() -> None:
    with pytest.raises(ToolError, match="not an email address"):
        check_arguments("send_email", {"to": ["nobody"], "subject": "s", "body": "b"})
    with pytest.raises(ToolError, match="end must be after start"):
        check_arguments("create_event", {"title": "t", "start": "2030-01-01T10:00", "end": "2030-01-01T09:00"})
    with pytest.raises(ToolError, match="Extra inputs"):
        check_arguments("send_email", {"to": ["a@b.co"], "subject": "s", "body": "b", "approved": True})
    assert scrub("invalid To: dana@example.test") == "invalid To: <address>"



def test_google_client_from_the_environment_or_a_client_secrets_file(tmp_path: Path) -> None:
    from integrations.google import oauth

    assert "GOOGLE_CLIENT_ID" in (oauth.configured(Settings()) or "")
    with_env = Settings(google_client_id="id-1", google_client_secret=SecretStr("s-1"))  # type: ignore[call-arg]
    assert "ENCRYPTION_KEY" in (oauth.configured(with_env) or "")
    assert oauth.client_config(with_env)["web"]["client_id"] == "id-1"
    secrets = tmp_path / "client_secret.json"
    secrets.write_text('{"installed": {"client_id": "id-2", "client_secret": "s-2"}}')
    from_file = Settings(google_client_secrets_file=secrets, encryption_key=SecretStr(new_key_text()))  # type: ignore[call-arg]
    assert oauth.configured(from_file) is None
    config = oauth.client_config(from_file)["web"]
    assert (config["client_id"], config["client_secret"]) == ("id-2", "s-2")
    assert config["token_uri"] == "https://oauth2.googleapis.com/token"
    secrets.write_text("{}")
    with pytest.raises(ConfigError, match="not a Google client-secrets file"):
        oauth.client_config(from_file)
