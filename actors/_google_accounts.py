"""The Workspace actor's Google accounts: a user's session (credentials and API clients), and
connecting (web flow, loopback tokens), disconnecting, and the state the Integrations page shows;
and, against the account, the review of pending actions (who they reach; outliers that a batch
approval may not include: see ``core.recipients``).

A mixin of :class:`actors.workspace.Workspace`.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any, cast

import structlog

from actors import _actions_sql as sql
from actors._vault import Vault
from actors.handles import Handle
from core.action_schemas import (
    ActionView,
    BatchItem,
    ConnectStart,
    FeatureInfo,
    GoogleFeature,
    IntegrationView,
)
from core.errors import ApprovalRefused, ToolError
from core.recipients import review_action
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
    _known: dict[str, tuple[float | None, set[str]]]  # per user: addresses known, up to that decision time

    @property
    def vault(self) -> Vault:
        raise NotImplementedError

    async def _audit(self, user_id: str | None, actor: str, what: str, *, run_id: str | None = None,
                     task_id: str | None = None, subject_id: str | None = None, approved_by: str | None = None,
                     detail: dict[str, Any] | None = None) -> None:
        raise NotImplementedError  # the Workspace's audit log

    async def _kick_due(self, include_executing: bool = False) -> None:
        raise NotImplementedError

    async def _session(self, user_id: str) -> Session:
        raise NotImplementedError

    async def _call(self, user_id: str, session: Session, fn: Any) -> Any:
        raise NotImplementedError

    async def _read_google(self, user_id: str, fn: Callable[[Any], Any]) -> Any:
        """``fn(the user's Google clients)`` in a worker thread: what an action's review reads."""
        return await self._call(user_id, await self._session(user_id), fn)

    async def _account(self, user_id: str) -> str | None:
        """The user's Google account address, when known (connected with mail access)."""
        session = self._sessions.get(user_id)
        if session is not None and session.account:
            return session.account
        loaded = await self.vault.load(user_id) if self._vault is not None else None
        return cast(str | None, loaded[2]["account"]) if loaded else None

    async def _reviewed(self, user_id: str, views: list[ActionView]) -> list[ActionView]:
        """Pending ones with their review (recipients flagged external and new, warnings, outliers)."""
        if not any(v.status == "pending" for v in views):
            return views
        account = await self._account(user_id)
        since, known = self._known.get(user_id, (None, set()))
        fresh, newest = await sql.known_recipients(self._store, self.vault.sealer, user_id, since)
        known = known | fresh
        self._known[user_id] = (newest, known)
        return [v.model_copy(update={"review": review_action(v.action, v.arguments, account, known)})
                if v.status == "pending" else v for v in views]

    async def _refuse_outliers(self, user_id: str, items: list[BatchItem]) -> None:
        """A batch approval may not hold an outlier: each of those a person approves on its own."""
        views = await self._reviewed(user_id, await sql.get_actions(self._store, self.vault.sealer, user_id,
                                                                    [i.id for i in items]))
        outliers = [(v.id, v.review.outliers) for v in views if v.review is not None and v.review.outliers]
        if outliers:
            named = "; ".join(f"{aid} ({', '.join(why)})" for aid, why in outliers[:10])
            more = f" and {len(outliers) - 10} more" if len(outliers) > 10 else ""
            raise ApprovalRefused(f"{len(outliers)} of these {len(items)} actions reach a new outside recipient or a "
                                  f"reply's Reply-To; approve each of those on its own, after reading it: "
                                  f"{named}{more}. Nothing was approved.", "outliers")

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
