"""Per-user rate limits: chat messages, runs started, uploads and approval decisions.

A token bucket per person and kind (:class:`serve_app.auth.Buckets`): ``N`` a minute with bursts
up to ``N``, the figures from the settings' Caps (admins change them in Settings; a new figure
takes effect at the next request). Past it: 429 with ``Retry-After`` and a sentence the UI shows.
The door's own limit (per client address, every request) still applies beside these.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

from fastapi import Depends, HTTPException, Request, params

from core.settings import Settings
from serve_app.auth import Buckets
from serve_app.callers import Member

Kind = Literal["messages", "runs", "uploads", "approvals"]
_WHAT: dict[Kind, tuple[str, str]] = {
    "messages": ("user_messages_per_minute", "chat messages"),
    "runs": ("user_runs_per_minute", "runs started"),
    "uploads": ("user_uploads_per_minute", "uploads"),
    "approvals": ("user_approvals_per_minute", "approval decisions"),
}


class UserLimits:
    """The buckets of one API replica, sized from the current settings at each request."""

    def __init__(self, settings: Callable[[], Settings]) -> None:
        self._settings = settings
        self._buckets: dict[Kind, tuple[int, Buckets]] = {}

    def take(self, kind: Kind, user_id: str, now: float | None = None) -> None:
        """Count one; raise 429 (with Retry-After) when the user has none left."""
        field, what = _WHAT[kind]
        per_minute = int(getattr(self._settings(), field))
        held = self._buckets.get(kind)
        if held is None or held[0] != per_minute:
            held = (per_minute, Buckets(per_minute))
            self._buckets[kind] = held
        wait = held[1].take(user_id, now)
        if wait > 0:
            seconds = max(1, math.ceil(wait))
            raise HTTPException(429, f"too many {what}: at most {per_minute} a minute each; try again in {seconds} s",
                                headers={"Retry-After": str(seconds)})


class _Limited:
    def __init__(self, kind: Kind) -> None:
        self.kind: Kind = kind

    def __call__(self, request: Request, who: Member) -> None:
        limits: UserLimits = request.app.state.user_limits
        limits.take(self.kind, who.user_id)


def limited(*kinds: Kind) -> list[params.Depends]:
    """Route dependencies that count the request against the caller's limits of these kinds."""
    return [Depends(_Limited(kind)) for kind in kinds]
