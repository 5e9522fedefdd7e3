"""Secrets of the accounts: Argon2id password hashes, random session ids and API tokens (kept as
their SHA-256), and the CSRF token derived from a session id.

Hashing a password costs ~64 MiB and tens of milliseconds (argon2-cffi's recommended RFC 9106
parameters): callers in an event loop run it in a thread (:func:`verify_password_async`).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from core.account_schemas import API_TOKEN_PREFIX

_HASHER = PasswordHasher()  # Argon2id, the library's recommended parameters
# A hash of nothing anyone knows: a login naming no account pays the same Argon2 work as one that does.
_DUMMY = _HASHER.hash(secrets.token_urlsafe(16))


def hash_password(password: str) -> str:
    return _HASHER.hash(password)


def verify_password(stored: str | None, password: str) -> bool:
    """True when ``password`` matches ``stored`` (an account without a password matches nothing,
    after the same work)."""
    try:
        return _HASHER.verify(stored if stored is not None else _DUMMY, password) and stored is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


async def verify_password_async(stored: str | None, password: str) -> bool:
    return await asyncio.to_thread(verify_password, stored, password)


async def hash_password_async(password: str) -> str:
    return await asyncio.to_thread(hash_password, password)


def new_secret() -> str:
    """A session id or a link's token: 256 random bits."""
    return secrets.token_urlsafe(32)


def new_api_token() -> str:
    return API_TOKEN_PREFIX + secrets.token_urlsafe(32)


def secret_hash(secret: str) -> str:
    """How a random secret is stored and looked up (it has too much entropy to need a slow hash)."""
    return hashlib.sha256(secret.encode()).hexdigest()


def csrf_of(session_id: str) -> str:
    """The CSRF token that goes with a session: derived from its id, so only a page that was given
    it (the login answer, the readable ``maos_csrf`` cookie) can send it."""
    return hmac.new(session_id.encode(), b"maos-csrf", hashlib.sha256).hexdigest()


def csrf_matches(session_id: str, presented: str | None) -> bool:
    return presented is not None and hmac.compare_digest(csrf_of(session_id), presented)
