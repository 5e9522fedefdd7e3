"""The registered providers (``integrations.registry``) as one Workspace holds them: each built
once with a host that gives it the settings, its encrypted credentials, the audit log and the
tasks waiting for it; connecting, disconnecting and status through the provider named; and the
review of pending actions against the user's own account at the provider that carries each out
(who they reach; outliers that a batch approval may not include: see ``core.recipients``).

The Workspace actor (``actors.workspace``) holds one :class:`Integrations` and hands its calls to it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, cast

from core.action_schemas import ActionView, BatchItem, ConnectStart, IntegrationView
from core.errors import ApprovalRefused, ToolError
from core.recipients import review_action
from core.settings import Settings
from integrations import registry
from integrations.actions import ledger
from integrations.actions.store import ActionStore
from integrations.actions.vault import Vault
from integrations.google.oauth import TokenSet
from integrations.google.provider import GoogleProvider
from integrations.registry import NoProvider, Provider, StoredCredentials


class ProviderCredentials:
    """The Vault seen by one provider (``registry.CredentialStore``)."""

    def __init__(self, owner: Integrations, provider: str) -> None:
        self._owner = owner
        self._provider = provider

    async def load(self, user_id: str) -> StoredCredentials | None:
        if not self._owner.has_vault:  # no key: nothing could have been connected
            return None
        loaded = await self._owner.vault.load(user_id, self._provider)
        if loaded is None:
            return None
        row_id, tokens, info = loaded
        return StoredCredentials(row_id=row_id, tokens=dict(tokens), status=info["status"], reason=info["reason"],
                                 account=info["account"], connected_at=info["created_at"])

    async def save(self, user_id: str, tokens: dict[str, Any], account: str | None) -> str:
        return await self._owner.vault.save(user_id, cast(TokenSet, tokens), account, self._provider)

    async def update(self, row_id: str, user_id: str, tokens: dict[str, Any], account: str | None) -> None:
        await self._owner.vault.update_tokens(row_id, user_id, cast(TokenSet, tokens), account)

    async def mark_reconnect(self, row_id: str, reason: str) -> None:
        await self._owner.vault.set_status(row_id, "reconnect", reason)

    async def forget(self, user_id: str) -> None:
        await self._owner.vault.forget(user_id, self._provider)

    async def put_state(self, user_id: str, features: list[str], redirect_uri: str, verifier: str) -> str:
        return await self._owner.vault.put_state(user_id, features, redirect_uri, verifier)

    async def take_state(self, state: str) -> tuple[str, list[str], str, str]:
        return await self._owner.vault.take_state(state)


class ProviderHost:
    """What the Workspace gives one provider (``registry.Host``)."""

    def __init__(self, owner: Integrations, provider: str) -> None:
        self._owner = owner
        self._name = provider
        self._credentials = ProviderCredentials(owner, provider)

    @property
    def settings(self) -> Settings:
        return self._owner.settings

    @property
    def credentials(self) -> ProviderCredentials:
        return self._credentials

    async def audit(self, user_id: str, what: str, *, actor: str, subject_id: str | None = None,
                    detail: dict[str, Any] | None = None) -> None:
        await ledger.audit(self._owner.store, user_id, actor, what, subject_id=subject_id, detail=detail)

    async def connected(self, user_id: str, *, subject_id: str, detail: dict[str, Any]) -> None:
        released = await self._owner.store.release_waiting(user_id=user_id, provider=self._name)
        await ledger.audit(self._owner.store, user_id, user_id, f"{self._name}.connected", subject_id=subject_id,
                           detail={**detail, "released_tasks": released})
        await self._owner.on_connected()  # what waited for this connection runs now

    async def waiting_tasks(self, user_id: str) -> int:
        waiting: int = await self._owner.store.waiting_tasks(user_id=user_id, provider=self._name)
        return waiting


class Integrations:
    """The providers of one Workspace, built on first use, and the review of its pending actions.

    ``on_connected``: called after a provider connected (the Workspace carries out what waited)."""

    def __init__(self, settings: Settings, store: ActionStore, vault: Vault | None,
                 on_connected: Callable[[], Awaitable[None]]) -> None:
        self.settings = settings
        self.store = store
        self._vault = vault
        self.on_connected = on_connected
        self._providers: dict[str, Provider] = {}
        self._known: dict[str, tuple[float | None, set[str]]] = {}  # per user: addresses known, up to that time

    @property
    def has_vault(self) -> bool:
        return self._vault is not None

    @property
    def vault(self) -> Vault:
        if self._vault is None:
            raise ToolError("outbound actions need ENCRYPTION_KEY (their content is encrypted at rest)")
        return self._vault

    # --- the providers -------------------------------------------------------------------------

    def provider(self, name: str) -> Provider:
        """The registered provider ``name``, built on first use; ToolError for an unknown one."""
        built = self._providers.get(name)
        if built is None:
            built = self._providers[name] = registry.get(name)(ProviderHost(self, name))
        return built

    def provider_for(self, action: str) -> Provider:
        """The provider that carries out ``action``; NoProvider when none is registered."""
        return self.provider(registry.provider_for(action).name)

    def google(self) -> GoogleProvider:
        return cast(GoogleProvider, self.provider(GoogleProvider.name))

    async def integrations(self, user_id: str) -> list[IntegrationView]:
        """Where each registered provider stands for the user."""
        return [await self.provider(p.name).status(user_id) for p in registry.registered()]

    async def status(self, user_id: str, provider: str) -> IntegrationView:
        return await self.provider(provider).status(user_id)

    async def connect_start(self, user_id: str, features: list[str] | None, provider: str) -> ConnectStart:
        return await self.provider(provider).connect_start(user_id, features)

    async def connect_finish(self, state: str, code: str, provider: str) -> IntegrationView:
        chosen = self.provider(provider)
        return await chosen.status(await chosen.connect_finish(state, code))

    async def connect_tokens(self, user_id: str, tokens: TokenSet) -> IntegrationView:
        """Keep Google tokens the CLI's loopback sign-in obtained; release waiting steps."""
        await self.google().connect_tokens(user_id, tokens)
        return await self.google().status(user_id)

    async def disconnect(self, user_id: str, provider: str) -> IntegrationView:
        chosen = self.provider(provider)
        await chosen.disconnect(user_id)
        return await chosen.status(user_id)

    # --- reviewing pending actions ------------------------------------------------------------

    async def _account(self, user_id: str, action: str) -> str | None:
        """The user's own address at the provider that carries ``action`` out, when known."""
        try:
            return await self.provider_for(action).account(user_id)
        except NoProvider:
            return None

    async def reviewed(self, user_id: str, views: list[ActionView]) -> list[ActionView]:
        """Pending ones with their review (recipients flagged external and new, warnings, outliers)."""
        pending = [v for v in views if v.status == "pending"]
        if not pending:
            return views
        accounts = {a: await self._account(user_id, a) for a in dict.fromkeys(v.action for v in pending)}
        since, known = self._known.get(user_id, (None, set()))
        fresh, newest = await ledger.known_recipients(self.store, self.vault.sealer, user_id, since)
        known = known | fresh
        self._known[user_id] = (newest, known)
        return [v.model_copy(update={"review": review_action(v.action, v.arguments, accounts[v.action], known)})
                if v.status == "pending" else v for v in views]

    async def refuse_outliers(self, user_id: str, items: list[BatchItem]) -> None:
        """A batch approval may not hold an outlier: each of those a person approves on its own."""
        views = await self.reviewed(user_id, await ledger.get_actions(self.store, self.vault.sealer, user_id,
                                                                      [i.id for i in items]))
        outliers = [(v.id, v.review.outliers) for v in views if v.review is not None and v.review.outliers]
        if outliers:
            named = "; ".join(f"{aid} ({', '.join(why)})" for aid, why in outliers[:10])
            more = f" and {len(outliers) - 10} more" if len(outliers) > 10 else ""
            raise ApprovalRefused(f"{len(outliers)} of these {len(items)} actions reach a new outside recipient or a "
                                  f"reply's Reply-To; approve each of those on its own, after reading it: "
                                  f"{named}{more}. Nothing was approved.", "outliers")
