"""Carrying out one approved action through the provider registered for its type, and, on any
attempt after the first, asking that provider first whether it already happened.

The outcome decides where the action goes: done (with the ids of what happened), failed (it did
not happen: no provider registered for it, arguments the provider refused, a permanent error),
needs_review (it may have happened and the provider cannot tell: a person must look), or back to
approved (the integration needs reconnecting, or a retryable error: it runs again later). The
Workspace claims the action before and records the outcome after (see ``actors.workspace``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from core.action_schemas import ActionView
from core.errors import GoogleApiError, IntegrationUnavailable, ToolError
from integrations.actions.args import scrub
from integrations.registry import NoProvider, Provider, Record

__all__ = ["NoProvider", "Outcome", "carry_out"]


@dataclass(frozen=True)
class Outcome:
    status: Literal["done", "failed", "needs_review", "released"]
    result: dict[str, Any] | None = None
    error: str | None = None  # scrubbed: no addresses


async def carry_out(provider_for: Callable[[str], Provider], view: ActionView, attempts: int,
                    staged: dict[str, Any] | None, record: Record) -> Outcome:
    """``view`` (claimed: executing, attempt number ``attempts``) carried out once. ``provider_for``:
    the provider of an action type (NoProvider when none is registered); ``staged``: what an earlier
    attempt recorded with ``record``."""
    try:
        provider = provider_for(view.action)
        result = None
        if attempts > 1:  # an earlier attempt may have happened: look before redoing
            try:
                result = await provider.already_done(view.user_id, view.action, view.arguments, view.id, staged)
            except IntegrationUnavailable:
                raise
            except Exception as exc:
                return Outcome("needs_review", error=scrub(
                    f"could not check whether it already happened ({exc}); look in {provider.name.capitalize()}, "
                    "then retry or reject"))
        if result is None:
            result = await provider.perform(view.user_id, view.action, view.arguments, view.id, staged, record)
    except IntegrationUnavailable as exc:
        return Outcome("released", error=scrub(str(exc)))  # back to approved: runs after reconnecting
    except (GoogleApiError, NoProvider, ToolError) as exc:
        retry = getattr(exc, "retryable", False) is True
        return Outcome("released" if retry else "failed", error=scrub(str(exc)))
    return Outcome("done", result=result)
