"""Test wiring for the HTTP app without a Store: who the request is, set inside the door."""

from __future__ import annotations

from typing import Any

from serve_app.callers import SCOPE_KEY, Caller


class AsCaller:
    """ASGI middleware, added innermost (after the door, which checks the login token first): the
    request's caller replaced by ``who``, as the door sets it for a person's session or API token."""

    def __init__(self, app: Any, who: Caller) -> None:
        self.app, self.who = app, who

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        scope[SCOPE_KEY] = self.who
        await self.app(scope, receive, send)
