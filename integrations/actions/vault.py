"""Encrypted rows: OAuth credentials (and the short-lived OAuth states) in DuckDB, sealed with
AES-256-GCM under ``ENCRYPTION_KEY``, each bound to its table, row and user; key rotation, which
also re-seals actions sealed before their type, hash and decision were bound (``integrations.actions.seal``).

Used by the Workspace actor; the rows stay sealed in the Store (``actors.storage.credentials``).
"""

from __future__ import annotations

import uuid
from typing import Any, Literal, cast

from core.crypto import Sealed, Sealer, aad_for
from core.errors import ApprovalRefused
from core.storage_schemas import OAuthState, SealedRow, SealedTable, StoredAction, StoredCredential
from integrations.actions.seal import open_args, seal_args
from integrations.actions.store import ActionStore
from integrations.google.oauth import TokenSet

CredentialStatus = Literal["connected", "reconnect"]


class Vault:
    def __init__(self, store: ActionStore, sealer: Sealer) -> None:
        self._store = store
        self.sealer = sealer

    # --- credentials ---------------------------------------------------------------------

    async def load(self, user_id: str, provider: str = "google") -> tuple[str, TokenSet, dict[str, Any]] | None:
        """(row id, tokens, info: status, reason, account, created_at) or None when not connected."""
        row: StoredCredential | None = await self._store.load_credential(user_id=user_id, provider=provider)
        if row is None:
            return None
        secret = self.sealer.open_json(Sealed(row.ciphertext, row.nonce, row.key_id),
                                       aad_for("oauth_credentials", row.id, user_id))
        info = {"status": row.status, "reason": row.reason, "account": secret.get("account"),
                "created_at": row.created_at}
        return row.id, cast(TokenSet, secret["tokens"]), info

    async def save(self, user_id: str, tokens: TokenSet, account: str | None, provider: str = "google") -> str:
        """Store (replace) the user's credentials for ``provider``, connected."""
        existing = await self.load_id(user_id, provider)
        row_id = existing or uuid.uuid4().hex
        sealed = self.sealer.seal_json({"tokens": tokens, "account": account},
                                       aad_for("oauth_credentials", row_id, user_id))
        await self._store.save_credential(row_id=row_id, user_id=user_id, provider=provider, scopes=list(tokens["scopes"]), sealed=sealed)
        return row_id

    async def update_tokens(self, row_id: str, user_id: str, tokens: TokenSet, account: str | None) -> None:
        sealed = self.sealer.seal_json({"tokens": tokens, "account": account},
                                       aad_for("oauth_credentials", row_id, user_id))
        await self._store.update_credential_tokens(row_id=row_id, sealed=sealed)

    async def load_id(self, user_id: str, provider: str) -> str | None:
        found: str | None = await self._store.credential_id(user_id=user_id, provider=provider)
        return found

    async def set_status(self, row_id: str, status: CredentialStatus, reason: str | None) -> None:
        await self._store.set_credential_status(row_id=row_id, status=status, reason=reason)

    async def forget(self, user_id: str, provider: str = "google") -> None:
        await self._store.forget_credential(user_id=user_id, provider=provider)

    # --- OAuth states (one use, ten minutes) -----------------------------------------------

    async def put_state(self, user_id: str, features: list[str], redirect_uri: str, verifier: str,
                        ttl_s: float = 600.0) -> str:
        state = uuid.uuid4().hex + uuid.uuid4().hex
        sealed = self.sealer.seal(verifier.encode(), aad_for("oauth_states", state, user_id))
        await self._store.put_oauth_state(state=state, user_id=user_id, provider="google", features=features, redirect_uri=redirect_uri, sealed=sealed, ttl_s=ttl_s)
        return state

    async def take_state(self, state: str) -> tuple[str, list[str], str, str]:
        """(user, features, redirect_uri, verifier) of a state this app issued, used once, not expired."""
        row: OAuthState | None = await self._store.take_oauth_state(state)
        if row is None:
            raise ApprovalRefused("this sign-in link is unknown, already used or expired: start connecting again",
                                  "state")
        verifier = self.sealer.open(Sealed(row.ciphertext, row.nonce, row.key_id),
                                    aad_for("oauth_states", state, row.user_id)).decode()
        return row.user_id, row.features, row.redirect_uri, verifier

    # --- key rotation --------------------------------------------------------------------

    async def rotate(self) -> dict[str, int]:
        """Re-encrypt every row not under the current key, and every action sealed the old way; counts
        per table."""
        counts: dict[str, int] = {}
        tables: tuple[SealedTable, ...] = ("oauth_credentials", "oauth_states")
        for table in tables:
            rows: list[SealedRow] = await self._store.sealed_rows(table=table, key_id=self.sealer.key_id)
            for row in rows:
                aad = aad_for(table, row.row_id, row.user_id)
                sealed = self.sealer.seal(self.sealer.open(Sealed(row.ciphertext, row.nonce, row.key_id), aad), aad)
                await self._store.reseal_row(table=table, row_id=row.row_id, sealed=sealed, old_key_id=row.key_id)
            counts[table] = len(rows)
        counts["actions"] = await self._reseal_actions()
        return counts

    async def _reseal_actions(self) -> int:
        """Actions under an older key, or sealed before their type, hash and decision were bound."""
        count = 0
        rows: list[StoredAction] = await self._store.every_action()
        for row in rows:
            fields = {"action_id": row.id, "user_id": row.user_id, "action": row.action, "digest": row.args_hash,
                      "status": row.status}
            args, legacy = open_args(self.sealer, **fields, sealed=Sealed(row.ciphertext, row.nonce, row.key_id))
            if not legacy and self.sealer.is_current(row.key_id):
                continue
            sealed = seal_args(self.sealer, **fields, args=args)
            # The decision is bound, not the status: a status change meanwhile (approved → executing) leaves
            # this seal valid, and approving re-seals (a new nonce), which this reseal then leaves alone.
            count += bool(await self._store.reseal_action(action_id=row.id, sealed=sealed, nonce=row.nonce))
        return count
