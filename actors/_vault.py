"""Encrypted rows: OAuth credentials (and the short-lived OAuth states) in DuckDB, sealed with
AES-256-GCM under ``ENCRYPTION_KEY``, each bound to its table, row and user; key rotation, which
also re-seals actions sealed before their type, hash and decision were bound (``_action_seal``).

Used by the Workspace actor through the Store handle (the Store owns the DuckDB file).
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any, Literal, cast

from actors._action_seal import open_args, seal_args
from actors.handles import Handle
from core.crypto import Sealed, Sealer, aad_for
from core.errors import ApprovalRefused
from integrations.google.oauth import TokenSet

CredentialStatus = Literal["connected", "reconnect"]


class Vault:
    def __init__(self, store: Handle, sealer: Sealer) -> None:
        self._store = store
        self.sealer = sealer

    # --- credentials ---------------------------------------------------------------------

    async def load(self, user_id: str, provider: str = "google") -> tuple[str, TokenSet, dict[str, Any]] | None:
        """(row id, tokens, info: status, reason, account, created_at) or None when not connected."""
        rows = await self._store.call(
            "read", "SELECT id, ciphertext, nonce, key_id, status, reason, created_at FROM oauth_credentials "
                    "WHERE user_id = ? AND provider = ? ORDER BY updated_at DESC LIMIT 1", [user_id, provider])
        if not rows:
            return None
        row_id, ct, nonce, kid, status, reason, created = rows[0]
        secret = self.sealer.open_json(Sealed(ct, nonce, kid), aad_for("oauth_credentials", row_id, user_id))
        info = {"status": status or "connected", "reason": reason, "account": secret.get("account"),
                "created_at": created}
        return row_id, cast(TokenSet, secret["tokens"]), info

    async def save(self, user_id: str, tokens: TokenSet, account: str | None, provider: str = "google") -> str:
        """Store (replace) the user's credentials for ``provider``, connected."""
        existing = await self.load_id(user_id, provider)
        row_id = existing or uuid.uuid4().hex
        sealed = self.sealer.seal_json({"tokens": tokens, "account": account},
                                       aad_for("oauth_credentials", row_id, user_id))
        now = time.time()
        if existing:
            await self._store.call(
                "write", "UPDATE oauth_credentials SET ciphertext = ?, nonce = ?, key_id = ?, scopes = ?, "
                         "status = 'connected', reason = NULL, updated_at = ? WHERE id = ?",
                [sealed.ciphertext, sealed.nonce, sealed.key_id, " ".join(tokens["scopes"]), now, row_id])
        else:
            await self._store.call(
                "write", "INSERT INTO oauth_credentials (id, user_id, provider, scopes, ciphertext, nonce, key_id, "
                         "created_at, updated_at, status) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'connected')",
                [row_id, user_id, provider, " ".join(tokens["scopes"]), sealed.ciphertext, sealed.nonce,
                 sealed.key_id, now, now])
        return row_id

    async def update_tokens(self, row_id: str, user_id: str, tokens: TokenSet, account: str | None) -> None:
        sealed = self.sealer.seal_json({"tokens": tokens, "account": account},
                                       aad_for("oauth_credentials", row_id, user_id))
        await self._store.call(
            "write", "UPDATE oauth_credentials SET ciphertext = ?, nonce = ?, key_id = ?, updated_at = ? WHERE id = ?",
            [sealed.ciphertext, sealed.nonce, sealed.key_id, time.time(), row_id])

    async def load_id(self, user_id: str, provider: str) -> str | None:
        rows = await self._store.call("read", "SELECT id FROM oauth_credentials WHERE user_id = ? AND provider = ?",
                                      [user_id, provider])
        return str(rows[0][0]) if rows else None

    async def set_status(self, row_id: str, status: CredentialStatus, reason: str | None) -> None:
        await self._store.call("write", "UPDATE oauth_credentials SET status = ?, reason = ?, updated_at = ? "
                                        "WHERE id = ?", [status, reason, time.time(), row_id])

    async def forget(self, user_id: str, provider: str = "google") -> None:
        await self._store.call("write", "DELETE FROM oauth_credentials WHERE user_id = ? AND provider = ?",
                               [user_id, provider])

    # --- OAuth states (one use, ten minutes) -----------------------------------------------

    async def put_state(self, user_id: str, features: list[str], redirect_uri: str, verifier: str,
                        ttl_s: float = 600.0) -> str:
        state = uuid.uuid4().hex + uuid.uuid4().hex
        sealed = self.sealer.seal(verifier.encode(), aad_for("oauth_states", state, user_id))
        now = time.time()
        await self._store.call(
            "write", "INSERT INTO oauth_states (state, user_id, provider, features, redirect_uri, ciphertext, nonce, "
                     "key_id, created_at, expires_at) VALUES (?, ?, 'google', ?, ?, ?, ?, ?, ?, ?)",
            [state, user_id, json.dumps(features), redirect_uri, sealed.ciphertext, sealed.nonce, sealed.key_id,
             now, now + ttl_s])
        return state

    async def take_state(self, state: str) -> tuple[str, list[str], str, str]:
        """(user, features, redirect_uri, verifier) of a state this app issued, used once, not expired."""
        now = time.time()
        rows = await self._store.call(
            "write", "UPDATE oauth_states SET used_at = ? WHERE state = ? AND used_at IS NULL AND expires_at > ? "
                     "RETURNING user_id, features, redirect_uri, ciphertext, nonce, key_id", [now, state, now])
        if not rows:
            raise ApprovalRefused("this sign-in link is unknown, already used or expired: start connecting again",
                                  "state")
        user_id, features, redirect_uri, ct, nonce, kid = rows[0]
        verifier = self.sealer.open(Sealed(ct, nonce, kid), aad_for("oauth_states", state, user_id)).decode()
        return user_id, json.loads(features), redirect_uri, verifier

    # --- key rotation --------------------------------------------------------------------

    async def rotate(self) -> dict[str, int]:
        """Re-encrypt every row not under the current key, and every action sealed the old way; counts
        per table."""
        counts: dict[str, int] = {}
        for table, key_col, user_col in (("oauth_credentials", "id", "user_id"), ("actions", "id", "user_id"),
                                         ("oauth_states", "state", "user_id")):
            if table == "actions":
                counts[table] = await self._reseal_actions()
                continue
            rows = await self._store.call(
                "read", f"SELECT {key_col}, {user_col}, ciphertext, nonce, key_id FROM {table} WHERE key_id <> ?",
                [self.sealer.key_id])
            for row_id, user_id, ct, nonce, kid in rows:
                aad = aad_for(table, row_id, user_id)
                sealed = self.sealer.seal(self.sealer.open(Sealed(ct, nonce, kid), aad), aad)
                await self._store.call(
                    "write", f"UPDATE {table} SET ciphertext = ?, nonce = ?, key_id = ? WHERE {key_col} = ? AND key_id = ?",
                    [sealed.ciphertext, sealed.nonce, sealed.key_id, row_id, kid])
            counts[table] = len(rows)
        return counts

    async def _reseal_actions(self) -> int:
        """Actions under an older key, or sealed before their type, hash and decision were bound."""
        count = 0
        rows = await self._store.call(
            "read", "SELECT id, user_id, action, status, args_hash, ciphertext, nonce, key_id FROM actions")
        for row_id, user_id, action, status, digest, ct, nonce, kid in rows:
            fields = {"action_id": row_id, "user_id": user_id, "action": action, "digest": digest, "status": status}
            args, legacy = open_args(self.sealer, **fields, sealed=Sealed(ct, nonce, kid))
            if not legacy and self.sealer.is_current(kid):
                continue
            sealed = seal_args(self.sealer, **fields, args=args)
            # The decision is bound, not the status: a status change meanwhile (approved → executing) leaves
            # this seal valid, and approving re-seals (a new nonce), which this UPDATE then leaves alone.
            done = await self._store.call(
                "write", "UPDATE actions SET ciphertext = ?, nonce = ?, key_id = ? WHERE id = ? AND nonce = ? "
                         "RETURNING id", [sealed.ciphertext, sealed.nonce, sealed.key_id, row_id, nonce])
            count += len(done)
        return count
