"""The install's login token: ``MAOS_API_TOKEN`` when set, else one generated at the first start,
printed once and kept only as a salted scrypt hash (``<data_dir>/login.sha256``). It is the first
admin's bearer token (:mod:`serve_app.auth`)."""

from __future__ import annotations

import hashlib
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from core.settings import Settings

_SCRYPT = {"n": 2**14, "r": 8, "p": 1}


def hash_token(token: str, salt: bytes | None = None) -> str:
    """``scrypt$<salt>$<digest>``: slow to guess even for a short token a person chose."""
    salt = salt if salt is not None else secrets.token_bytes(16)
    digest = hashlib.scrypt(token.encode(), salt=salt, dklen=32, **_SCRYPT)
    return f"scrypt${salt.hex()}${digest.hex()}"


@dataclass
class Login:
    """Checks a presented token against the stored hash (a token once verified is remembered by its
    SHA-256, so a client's every request does not pay for scrypt)."""

    stored: str
    _verified: set[bytes] = field(default_factory=set)

    def verify(self, token: str | None) -> bool:
        if not token:
            return False
        quick = hashlib.sha256(token.encode()).digest()
        if quick in self._verified:
            return True
        try:
            _, salt, _digest = self.stored.split("$")
            ok = secrets.compare_digest(hash_token(token, bytes.fromhex(salt)), self.stored)
        except ValueError:
            return False
        if ok:
            self._verified.add(quick)
        return ok


def ensure_login(settings: Settings) -> tuple[str, str | None]:
    """The stored hash of the login token, and the token itself when it was generated just now
    (to print once). ``MAOS_API_TOKEN`` wins over the stored one."""
    if settings.api_token is not None:
        return hash_token(settings.api_token.get_secret_value()), None
    path = settings.login_hash_path
    if path.exists():
        return path.read_text().strip(), None
    return new_login(path)


def new_login(path: Path) -> tuple[str, str]:
    """A fresh login token: its hash written to ``path`` (0600), replacing any earlier one."""
    token = secrets.token_urlsafe(24)
    stored = hash_token(token)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".new")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(stored + "\n")
    os.replace(partial, path)
    return stored, token
