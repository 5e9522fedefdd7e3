"""Password guessing, limited per account and per address, with back-off.

Each wrong password is counted under the account's name and under the client's address. Once a
key has ``limit`` failures within ``window_s``, it is locked: every login under it is refused
*before* the password is looked at (no Argon2 work), until the lock ends. Each further lock of the
same key lasts twice as long (``window_s``, 2×, 4×, … up to ``max_lock_s``); a successful login
clears the account's count.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field


@dataclass
class _Key:
    failures: list[float] = field(default_factory=list)
    locked_until: float = 0.0
    strikes: int = 0


class Lockout:
    def __init__(self, per_account: int = 5, per_address: int = 10, window_s: float = 60.0,
                 max_lock_s: float = 3600.0, max_keys: int = 10_000) -> None:
        self.per_account = per_account
        self.per_address = per_address
        self.window_s = window_s
        self.max_lock_s = max_lock_s
        self._keys: dict[str, _Key] = {}
        self._max_keys = max_keys

    @staticmethod
    def keys(name: str, address: str) -> tuple[str, str]:
        return f"account:{name.strip().lower()}", f"address:{address}"

    def wait(self, name: str, address: str, now: float | None = None) -> float:
        """Seconds until a login for ``name`` from ``address`` may be checked; 0 when it may now."""
        now = time.monotonic() if now is None else now
        return max([0.0, *(self._keys[k].locked_until - now for k in self.keys(name, address) if k in self._keys)])

    def failed(self, name: str, address: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        for key, limit in zip(self.keys(name, address), (self.per_account, self.per_address), strict=True):
            state = self._state(key)
            state.failures = [t for t in state.failures if now - t < self.window_s] + [now]
            if len(state.failures) >= limit:
                state.locked_until = now + min(self.max_lock_s, self.window_s * 2 ** state.strikes)
                state.strikes += 1
                state.failures = []

    def succeeded(self, name: str) -> None:
        self._keys.pop(self.keys(name, "")[0], None)

    def _state(self, key: str) -> _Key:
        if key not in self._keys and len(self._keys) >= self._max_keys:
            self._keys.pop(next(iter(self._keys)))
        return self._keys.setdefault(key, _Key())
