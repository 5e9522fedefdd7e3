"""The arguments of each gated action type, checked by the model its provider declares (see
``integrations.registry``); their hash (what an approval binds to); the one-line summary a person
reads; and scrubbing of addresses out of stored error text."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from core.errors import ToolError
from integrations import registry

_ANY_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")


def check_arguments(action: str, arguments: dict[str, Any]) -> dict[str, Any]:
    """The arguments normalised (addresses listed, times in ISO with offset); ToolError names what is wrong."""
    return registry.check_arguments(action, arguments)


def args_hash(action: str, arguments: dict[str, Any]) -> str:
    canonical = json.dumps({"action": action, "arguments": arguments}, sort_keys=True, separators=(",", ":"),
                           ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def summary(action: str, a: dict[str, Any]) -> str:
    """One line a person reads before approving (built on read: it names people, so it is not stored)."""
    try:
        spec = registry.action_spec(action)
    except ToolError:
        return action
    return spec.summary(a)


def scrub(text: str) -> str:
    """Error text as it may be stored and logged: addresses replaced, length capped."""
    return _ANY_EMAIL.sub("<address>", text)[:500]
