"""The Workspace actor's Google accounts: a user's session (credentials and API clients), and
connecting (web flow, loopback tokens), disconnecting, and the state the Integrations page shows.

A mixin of :class:`actors.workspace.Workspace`.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any, cast

import structlog

from actors._vault import Vault
from actors.handles import Handle
from core.action_schemas import ConnectStart, FeatureInfo, GoogleFeature, IntegrationView
from core.errors import ApprovalRefused, ToolError
from core.settings import Settings
from integrations.google import gmail, oauth
from integrations.google.api import build_service
from integrations.google.ops import FEATURE_LABELS, features_granted, scopes_for

_log = structlog.get_logger("maos.workspace")


class NoServices:
    """What texting and calling run with: no Google clients (they have no provider yet)."""

    def get(self, name: str) -> Any:
        raise ToolError(f"no {name} client for this action")


class Session:
    """One user's Google credentials and built API clients (built once, on first use). The clients'
    httplib2 connections are not thread-safe: ``serial`` runs one of the user's calls at a time."""

    def __init__(self, row_id: str, creds: Any, account: str | None, api_endpoint: str | None) -> None:
        self.serial = threading.Lock()
        self.row_id = row_id
        self.creds = creds
        self.account = account
        self._endpoint = api_endpoint
        self._built: dict[str, Any] = {}

    def get(self, name: str) -> Any:
        if name not in self._built:
            self._built[name] = build_service(name, self.creds, self._endpoint)  # type: ignore[arg-type]
        return self._built[name]


class GoogleAccounts:
    _settings: Settings
    _store: Handle
    _vault: Vault | None
    _sessions: dict[str, Session]

    @property
    def vault(self) -> Vault:
        raise NotImplementedError

    async def _audit(self, user_id: str | None, actor: str, what: str, *, run_id: str | None = None,
                     task_id: str | None = None, subject_id: str | None = None, approved_by: str | None = None,
                     detail: dict[str, Any] | None = None) -> None:
        raise NotImplementedError  # the Workspace's audit log

    async def _kick_due(self, include_executing: bool = False) -> None:
        raise NotImplementedError

    async def connect_start(self, user_id: str, features: list[GoogleFeature]) -> ConnectStart:
        missing = oauth.configured(self._settings)
        if missing is not None:
            raise ToolError(f"Google cannot be connected yet: {missing}")
        wanted: list[GoogleFeature] = sorted(set(features) | set(await self._granted(user_id)))
        redirect = self._settings.base_url + oauth.CALLBACK_PATH
        verifier = oauth.new_verifier()
        state = await self.vault.put_state(user_id, list(wanted), redirect, verifier)
        url = oauth.authorization_url(self._settings, scopes_for(wanted), redirect, state, verifier)
        return ConnectStart(authorization_url=url)

    async def connect_finish(self, state: str, code: str) -> IntegrationView:
        user_id, names, redirect, verifier = await self.vault.take_state(state)
        features = cast(list[GoogleFeature], names)
        try:
            tokens = await asyncio.to_thread(oauth.exchange_code, self._settings, code, scopes_for(features),
                                             redirect, verifier)
        except Exception as exc:  # Google refused the code (replayed, wrong verifier, client changed)
            _log.warning("google.exchange_failed", user_id=user_id, error_type=type(exc).__name__)
            raise ApprovalRefused("Google did not accept the sign-in; connect again", "exchange") from None
        return await self.connect_tokens(user_id, tokens)

    async def connect_tokens(self, user_id: str, tokens: oauth.TokenSet) -> IntegrationView:
        """Keep tokens a flow obtained (web callback or the CLI's loopback flow); release waiting steps."""
        account = None
        if "gmail_read" in features_granted(tokens["scopes"]):
            creds = oauth.credentials(self._settings, tokens)
            probe = Session("", creds, None, self._settings.google_api_endpoint)
            try:
                account = (await asyncio.to_thread(lambda: gmail.profile(probe.get("gmail"))))["emailAddress"]
            except Exception as exc:  # the address is a nicety on the Integrations page
                _log.warning("google.profile_failed", error_type=type(exc).__name__)
        row_id = await self.vault.save(user_id, tokens, account)
        self._sessions.pop(user_id, None)
        released = await self._store.call("release_waiting", user_id, "google")
        await self._audit(user_id, user_id, "google.connected", subject_id=row_id,
                          detail={"scopes": len(tokens["scopes"]), "released_tasks": released})
        await self._kick_due()  # what waited for this connection runs now
        return await self.status(user_id)

    async def disconnect(self, user_id: str) -> IntegrationView:
        loaded = await self.vault.load(user_id) if self._vault is not None else None
        if loaded is not None:
            row_id, tokens, _ = loaded
            token = tokens["refresh_token"] or tokens["access_token"]
            revoked = await asyncio.to_thread(oauth.revoke, self._settings, token)
            await self.vault.forget(user_id)
            self._sessions.pop(user_id, None)
            await self._audit(user_id, user_id, "google.disconnected", subject_id=row_id, detail={"revoked": revoked})
        return await self.status(user_id)

    async def _granted(self, user_id: str) -> list[GoogleFeature]:
        loaded = await self.vault.load(user_id) if self._vault is not None else None
        return sorted(features_granted(loaded[1]["scopes"])) if loaded else []

    async def status(self, user_id: str) -> IntegrationView:
        missing = oauth.configured(self._settings)
        loaded = await self.vault.load(user_id) if self._vault is not None and missing is None else None
        granted = features_granted(loaded[1]["scopes"]) if loaded else set()
        features = [FeatureInfo(name=f, label=FEATURE_LABELS[f], scopes=scopes_for([f]), enabled=f in granted)
                    for f in FEATURE_LABELS]
        waiting = await self._store.call(
            "read", "SELECT count(*) FROM tasks WHERE status = 'waiting' AND waiting_on = 'google' "
                    "AND run_id IN (SELECT id FROM runs WHERE user_id = ?)", [user_id])
        n = int(waiting[0][0]) if waiting else 0
        if missing is not None:
            return IntegrationView(status="not_configured", reason=missing, features=features, waiting_tasks=n)
        if loaded is None:
            return IntegrationView(status="disconnected", features=features, waiting_tasks=n)
        info = loaded[2]
        return IntegrationView(status=info["status"], reason=info["reason"], account=info["account"],
                               features=features, connected_at=info["created_at"], waiting_tasks=n)
