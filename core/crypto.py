"""Secrets at rest: AES-256-GCM with a key from the environment.

Every encryption takes a fresh random 96-bit nonce and binds associated data (the row's id and
user; for an action also its type, argument hash and decision), so a ciphertext copied to another
row, or left under a changed row, does not decrypt. Each ciphertext carries the id of
its key (the first 8 hex digits of the key's SHA-256), so ``maos keys rotate`` can re-encrypt
what older keys wrote while those keys are still listed in ``ENCRYPTION_OLD_KEYS``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from core.errors import ConfigError, MaosError

if TYPE_CHECKING:
    from core.settings import Settings

NONCE_BYTES = 12


class DecryptError(MaosError):
    """A ciphertext that does not open: wrong key, another row's data, or tampered with."""


def parse_key(text: str) -> bytes:
    """32 bytes from base64 (standard or url-safe) or 64 hex digits."""
    raw = text.strip()
    if len(raw) == 64:
        try:
            return bytes.fromhex(raw)
        except ValueError:
            pass
    try:
        key = base64.b64decode(raw + "=" * (-len(raw) % 4), altchars=b"-_" if ("-" in raw or "_" in raw) else None,
                               validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError("ENCRYPTION_KEY must be 32 bytes as base64 or 64 hex digits "
                          "(make one with: python -c 'import os,base64;print(base64.b64encode(os.urandom(32)).decode())')") from None
    if len(key) != 32:
        raise ConfigError(f"ENCRYPTION_KEY must be 32 bytes (AES-256); this one is {len(key)} bytes")
    return key


def key_id(key: bytes) -> str:
    return hashlib.sha256(key).hexdigest()[:8]


def new_key_text() -> str:
    return base64.b64encode(os.urandom(32)).decode()


@dataclass(frozen=True)
class Sealed:
    ciphertext: bytes
    nonce: bytes
    key_id: str


class Sealer:
    """Encrypts with the current key; decrypts with it or any older key still configured."""

    def __init__(self, current: bytes, older: list[bytes] | None = None) -> None:
        self.key_id = key_id(current)
        self._current = AESGCM(current)
        self._keys = {key_id(k): AESGCM(k) for k in (older or [])}
        self._keys[self.key_id] = self._current
        self._raw = [current, *(older or [])]

    @classmethod
    def from_text(cls, current: str, older: str | None = None) -> Sealer:
        return cls(parse_key(current), [parse_key(k) for k in (older or "").split(",") if k.strip()])

    @classmethod
    def from_settings(cls, settings: Settings) -> Sealer | None:
        """The sealer of ``ENCRYPTION_KEY`` (and ``ENCRYPTION_OLD_KEYS``); none when no key is set."""
        if settings.encryption_key is None:
            return None
        older = settings.encryption_old_keys
        return cls.from_text(settings.encryption_key.get_secret_value(), older.get_secret_value() if older else None)

    def derived(self, purpose: str) -> list[str]:
        """Keys for another cipher (hex; the current key's first, then the older ones'), derived with
        HKDF-SHA256 so that one secret never keys two ciphers."""
        return [HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=f"maos:{purpose}".encode())
                .derive(k).hex() for k in self._raw]

    def seal(self, plaintext: bytes, aad: str) -> Sealed:
        nonce = os.urandom(NONCE_BYTES)
        return Sealed(self._current.encrypt(nonce, plaintext, aad.encode()), nonce, self.key_id)

    def open(self, sealed: Sealed, aad: str) -> bytes:
        aead = self._keys.get(sealed.key_id)
        if aead is None:
            raise DecryptError(f"data was encrypted with key {sealed.key_id}, which is not configured "
                               "(add it to ENCRYPTION_OLD_KEYS, then run `maos keys rotate`)")
        try:
            return aead.decrypt(sealed.nonce, sealed.ciphertext, aad.encode())
        except InvalidTag:
            raise DecryptError("encrypted data does not open under its key and row (moved or tampered with)") from None

    def seal_json(self, value: Any, aad: str) -> Sealed:
        return self.seal(json.dumps(value, separators=(",", ":")).encode(), aad)

    def open_json(self, sealed: Sealed, aad: str) -> Any:
        return json.loads(self.open(sealed, aad))

    def is_current(self, sealed_key_id: str) -> bool:
        return sealed_key_id == self.key_id

    def knows(self, sealed_key_id: str) -> bool:
        """Whether a key with this id (current or older) is configured."""
        return sealed_key_id in self._keys


def aad_for(table: str, row_id: str, user_id: str) -> str:
    """Associated data binding a ciphertext to its table, row and user."""
    return f"{table}:{row_id}:{user_id}"


# Statuses of an action that was let go ahead (by a person or an "allow" policy); the others are
# "proposed" (pending, rejected, expired, superseded).
LET_THROUGH = frozenset({"approved", "executing", "done", "failed", "needs_review"})


def action_aad(action_id: str, user_id: str, action: str, args_hash: str, status: str) -> str:
    """Associated data of an action's sealed arguments: its row and user, its type, the hash a person
    approves, and its decision (``proposed`` or ``approved``, from the status). Changing any of them
    in the database makes the arguments fail to open, so an action cannot be retyped, re-hashed or
    marked approved behind the app's back. The decision, not the exact status, is bound: the
    executor's own steps (approved → executing → done) need no re-sealing; approving does."""
    decision = "approved" if status in LET_THROUGH else "proposed"
    return f"actions:v2:{action_id}:{user_id}:{action}:{args_hash}:{decision}"
