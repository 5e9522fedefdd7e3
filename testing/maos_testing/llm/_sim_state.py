"""Knobs of the simulated LLM server and its gate of parallel slots."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections import deque
from dataclasses import dataclass
from typing import Any, Literal

from maos_testing.llm import _sim_formats as formats

Overflow = Literal["queue", "503"]


@dataclass
class SimConfig:
    """Knobs of the simulated server; all of them can change while it runs."""

    ttft_ms: float = 0.0  # time to first token
    token_ms: float = 0.0  # per output token after the first
    reply_tokens: int = 20  # words in a final answer or chat reply
    slots: int = 1000  # requests served at once
    overflow: Overflow = "queue"  # beyond slots: wait for one, or answer 503 like a busy Ollama
    fail_next: int = 0  # the next N chat requests answer fail_status
    fail_status: int = 503
    fail_rate: float = 0.0  # probability a chat request answers fail_status (seeded)
    seed: int = 0
    model: str = "sim-model"
    log_bodies: bool = False  # keep each request body and reply text in its log record ("body", "reply")
    log_max: int = 100_000  # oldest records are dropped beyond this
    timed_tokens_cap: int = 0  # >0: at most this many tokens are timed per reply (long plans stay quick)
    obey: str = "last"  # "last": calls written in the last tool result; "all": every order in every form it reads
    tool_format: str = "native"  # or a style of transcripts/ ("hermes", "llama", "mistral", ...): calls as text

    def timed_tokens(self, n: int) -> int:
        """How many of a reply's ``n`` tokens take ``token_ms`` each (the rest go at once)."""
        return min(n, self.timed_tokens_cap) if self.timed_tokens_cap > 0 else n

    def __post_init__(self) -> None:
        self.update(**dataclasses.asdict(self))  # coerce and check the values given

    def update(self, **knobs: Any) -> None:
        """Set some knobs; checks them all first, so a bad one changes nothing."""
        defaults = {f.name: f.default for f in dataclasses.fields(self)}
        values: dict[str, Any] = {}
        for name, value in knobs.items():
            if name not in defaults:
                raise ValueError(f"unknown sim knob '{name}'; known: {', '.join(sorted(defaults))}")
            values[name] = _coerce(name, defaults[name], value)
        merged = {**dataclasses.asdict(self), **values}
        if merged["obey"] not in ("last", "all"):
            raise ValueError(f"obey must be 'last' or 'all', not {merged['obey']!r}")
        formats.check(merged["tool_format"])
        if merged["overflow"] not in ("queue", "503"):
            raise ValueError(f"overflow must be 'queue' or '503', not {merged['overflow']!r}")
        if not 0.0 <= merged["fail_rate"] <= 1.0:
            raise ValueError(f"fail_rate must be within 0..1, not {merged['fail_rate']}")
        for name in ("slots", "reply_tokens", "log_max"):
            if merged[name] < 1:
                raise ValueError(f"{name} must be at least 1, not {merged[name]}")
        for name in ("ttft_ms", "token_ms", "fail_next"):
            if merged[name] < 0:
                raise ValueError(f"{name} must not be negative, not {merged[name]}")
        for name, value in values.items():
            setattr(self, name, value)


def _coerce(name: str, default: Any, value: Any) -> Any:
    """``value`` as the knob's type (JSON and the command line give numbers and strings)."""
    try:
        if isinstance(default, bool):
            if isinstance(value, str):
                return value.strip().lower() in ("1", "true", "yes", "on")
            return bool(value)
        if isinstance(default, int) and isinstance(value, float) and not value.is_integer():
            raise ValueError(value)
        return type(default)(value)
    except (TypeError, ValueError):
        raise ValueError(f"sim knob '{name}' must be of type {type(default).__name__}, not {value!r}") from None


class Slots:
    """A FIFO counting gate whose limit is read at each call, so ``slots`` can change at run time."""

    def __init__(self) -> None:
        self.in_flight = 0
        self.peak = 0
        self.waiters: deque[asyncio.Future[None]] = deque()

    def try_acquire(self, limit: int) -> bool:
        if self.in_flight < limit and not self.waiters:
            self._take()
            return True
        return False

    async def acquire(self, limit: int) -> None:
        if self.try_acquire(limit):
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.waiters.append(fut)
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():  # handed a slot just as we were cancelled
                self.release(limit)
            else:
                with contextlib.suppress(ValueError):
                    self.waiters.remove(fut)
            raise

    def release(self, limit: int) -> None:
        self.in_flight -= 1
        self.wake(limit)

    def wake(self, limit: int) -> None:
        while self.waiters and self.in_flight < limit:
            fut = self.waiters.popleft()
            if not fut.done():
                self._take()
                fut.set_result(None)

    def _take(self) -> None:
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
