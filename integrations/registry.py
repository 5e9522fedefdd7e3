"""The provider seam: one protocol for whatever an action leaves the machine through (Google
today; texting and calling next), and the registry that the Workspace (approvals and the
executor), the integrations routes, the CLI and the Integrations page iterate over.

A provider declares its name, its label, the features a person may grant it and its actions
(each action type with its argument model, the line a person reads before approving, whether it
leaves the machine). It carries an approved action out, and, after a crash, looks whether an
earlier attempt already did it (before any retry). It connects (start → consent URL, finish with
the state and code the consent page sent back, disconnect) and says where it stands (status).

What an installation holds for a provider reaches it through a ``Host`` the Workspace gives it:
the settings, its encrypted credentials, the audit log, the tasks waiting for it. A provider
never opens the database and never imports the actors.

Built-in providers register the same way an extension does: ``register(TheProvider)`` when their
module is imported. The built-ins' modules are listed in ``BUILTIN`` and imported on the first
look-up; an extension imports its module (or calls ``register``) before the app starts.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Protocol

from pydantic import ValidationError

from core.action_args import ActionArgs, PlaceCall, SendText, call_summary, text_summary
from core.action_schemas import ACTION_LABELS, ActionType, ConnectStart, IntegrationView
from core.errors import MaosError, ToolError
from core.settings import Settings

BUILTIN: tuple[str, ...] = ("integrations.google.provider",)


class NoProvider(MaosError):
    """No registered provider carries out this action type (texting and calling until one is added)."""


@dataclass(frozen=True)
class ActionSpec:
    """One action type a provider performs."""

    name: ActionType
    arguments: type[ActionArgs]  # checked when proposed and when a person edits it
    summary: Callable[[dict[str, Any]], str]  # the line a person reads before approving (built on read)
    leaves_machine: bool = True  # sends or changes something outside (all of today's do)

    @property
    def label(self) -> str:
        return ACTION_LABELS.get(self.name, self.name.replace("_", " "))


@dataclass(frozen=True)
class StoredCredentials:
    """A provider's credentials for one user, as kept (encrypted) by the Workspace."""

    row_id: str
    tokens: dict[str, Any]
    status: Literal["connected", "reconnect"]
    reason: str | None
    account: str | None
    connected_at: float | None


class CredentialStore(Protocol):
    """The Workspace's encrypted credentials and one-use connect states, for one provider."""

    async def load(self, user_id: str) -> StoredCredentials | None: ...

    async def save(self, user_id: str, tokens: dict[str, Any], account: str | None) -> str: ...

    async def update(self, row_id: str, user_id: str, tokens: dict[str, Any], account: str | None) -> None: ...

    async def mark_reconnect(self, row_id: str, reason: str) -> None: ...

    async def forget(self, user_id: str) -> None: ...

    async def put_state(self, user_id: str, features: list[str], redirect_uri: str, verifier: str) -> str: ...

    async def take_state(self, state: str) -> tuple[str, list[str], str, str]:
        """(user, features, redirect_uri, verifier) of a state issued here; ApprovalRefused otherwise."""
        ...


class Host(Protocol):
    """What the Workspace gives one provider."""

    @property
    def settings(self) -> Settings: ...

    @property
    def credentials(self) -> CredentialStore: ...

    async def audit(self, user_id: str, what: str, *, actor: str, subject_id: str | None = None,
                    detail: dict[str, Any] | None = None) -> None: ...

    async def connected(self, user_id: str, *, subject_id: str, detail: dict[str, Any]) -> None:
        """A user connected: the audit entry, and what waited for this provider runs now."""
        ...

    async def waiting_tasks(self, user_id: str) -> int:
        """Steps of the user's waiting for this provider to be (re)connected."""
        ...


Record = Callable[[dict[str, Any]], Coroutine[Any, Any, None]]  # keeps what an attempt staged; durable when it returns


class Provider(Protocol):
    """One integration, built by the Workspace with its ``Host``."""

    name: ClassVar[str]  # "google": the routes' {provider}, the audit's prefix, a task's waiting_on
    label: ClassVar[str]  # what people call it: "Google"
    description: ClassVar[str]  # what it reaches: "Gmail, Calendar, Drive"
    features: ClassVar[Mapping[str, str]]  # what a person may grant it: name → what it lets agents do
    actions: ClassVar[Sequence[ActionSpec]]

    def __init__(self, host: Host) -> None: ...

    async def status(self, user_id: str) -> IntegrationView: ...

    async def connect_start(self, user_id: str, features: list[str] | None) -> ConnectStart:
        """Where the person grants access (``features``: None asks for the provider's default)."""
        ...

    async def connect_finish(self, state: str, code: str) -> str:
        """Keep what the consent page's ``code`` is worth; the user it connected."""
        ...

    async def disconnect(self, user_id: str) -> None: ...

    async def account(self, user_id: str) -> str | None:
        """The user's own address there (what approvals measure "external" against), when known."""
        ...

    async def ground(self, user_id: str, action: ActionType, args: dict[str, Any], by_person: bool) -> dict[str, Any]:
        """Checked arguments with what a person must see read from the real objects (never the model's)."""
        ...

    async def perform(self, user_id: str, action: ActionType, args: dict[str, Any], action_id: str,
                      staged: dict[str, Any] | None, record: Record) -> dict[str, Any]:
        """Do it once; the ids of what was done. ``staged``: what an earlier attempt recorded."""
        ...

    async def already_done(self, user_id: str, action: ActionType, args: dict[str, Any], action_id: str,
                           staged: dict[str, Any] | None) -> dict[str, Any] | None:
        """After a crash: the ids of what an earlier attempt did, or None (safe to do it now).
        Raises when it cannot tell: a person must look."""
        ...


# Action types core knows that no built-in provider performs: proposed and decided as any other,
# they fail when carried out until a provider for them is registered.
UNPROVIDED: dict[str, ActionSpec] = {
    "send_text": ActionSpec("send_text", SendText, text_summary),
    "place_call": ActionSpec("place_call", PlaceCall, call_summary),
}

_PROVIDERS: dict[str, type[Provider]] = {}
_loaded = False


def _load_builtins() -> None:
    global _loaded
    if not _loaded:
        _loaded = True
        for module in BUILTIN:
            importlib.import_module(module)


def register(provider: type[Provider]) -> type[Provider]:
    """Make ``provider`` known (usable as a class decorator). An action type has one provider."""
    for spec in provider.actions:
        owner = next((p for p in _PROVIDERS.values() if p.name != provider.name
                      and any(s.name == spec.name for s in p.actions)), None)
        if owner is not None:
            raise ValueError(f"action '{spec.name}' of provider '{provider.name}' is already "
                             f"performed by '{owner.name}'")
    _PROVIDERS[provider.name] = provider
    return provider


def unregister(name: str) -> None:
    _PROVIDERS.pop(name, None)


def registered() -> list[type[Provider]]:
    """Every registered provider, built-ins first."""
    _load_builtins()
    return list(_PROVIDERS.values())


def get(name: str) -> type[Provider]:
    _load_builtins()
    found = _PROVIDERS.get(name)
    if found is None:
        raise ToolError(f"unknown integration '{name}'; known: {', '.join(sorted(_PROVIDERS)) or 'none'}")
    return found


def provider_for(action: str) -> type[Provider]:
    """The provider that carries out ``action``; NoProvider when none is registered."""
    for provider in registered():
        if any(s.name == action for s in provider.actions):
            return provider
    raise NoProvider(f"no provider registered for {action}")


def action_spec(action: str) -> ActionSpec:
    """How ``action`` is checked and shown: its provider's declaration, else core's (texting, calling)."""
    for provider in registered():
        for spec in provider.actions:
            if spec.name == action:
                return spec
    known = UNPROVIDED.get(action)
    if known is None:
        raise ToolError(f"unknown action '{action}'")
    return known


def check_arguments(action: str, arguments: dict[str, Any]) -> dict[str, Any]:
    """The arguments normalised by the action's model (addresses listed, times in ISO with offset);
    ToolError names what is wrong, for the model to fix."""
    try:
        parsed = action_spec(action).arguments.model_validate(arguments)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'arguments'}: {e['msg']}"
                             for e in exc.errors()[:5])
        raise ToolError(f"{action}: {problems}") from None
    return parsed.checked()
