"""Google as a provider (see ``integrations.registry``): a user's session (credentials and built
API clients, the access token refreshed as needed; when refresh fails the integration shows
"reconnect" and what needs Google waits), the reads and drafts sub-agents run by name, the gated
actions carried out once, and connecting (web flow, the CLI's loopback tokens), disconnecting and
status. Registered when this module is imported, as an extension would be.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, TypeVar, cast

import structlog
from google.auth.exceptions import RefreshError

from core.action_schemas import (
    READ_FEATURES,
    ActionType,
    ConnectStart,
    FeatureInfo,
    GoogleFeature,
    IntegrationView,
)
from core.errors import ApprovalRefused, GoogleApiError, IntegrationUnavailable, ToolError
from core.settings import Settings
from integrations.google import execution, gmail, oauth
from integrations.google.actions import ACTIONS
from integrations.google.api import RetryPolicy, build_service, retry_policy
from integrations.google.ops import FEATURE_LABELS, OPS, features_granted, scopes_for
from integrations.registry import ActionSpec, Host, Record, register

_log = structlog.get_logger("maos.workspace")
T = TypeVar("T")


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


def _serially(fn: Callable[[Session], T], session: Session, policy: RetryPolicy) -> T:
    """``fn(session)`` in this worker thread: one call of the user's at a time, retrying rate limits
    and server errors under ``policy``."""
    with session.serial, retry_policy(policy):
        return fn(session)


def features_of(names: Sequence[str] | None) -> list[GoogleFeature]:
    """The features named (None: the read-only ones); ToolError names an unknown one."""
    if names is None:
        return list(READ_FEATURES)
    unknown = [n for n in names if n not in FEATURE_LABELS]
    if unknown:
        raise ToolError(f"unknown Google feature '{unknown[0]}'; known: {', '.join(FEATURE_LABELS)}")
    return [cast(GoogleFeature, n) for n in dict.fromkeys(names)]


def loopback_tokens(settings: Settings, features: Sequence[str], open_browser: bool = True) -> oauth.TokenSet:
    """The CLI's sign-in (a one-shot server on 127.0.0.1), for a set-up without the web app."""
    return oauth.loopback_connect(settings, scopes_for(features_of(features)), open_browser=open_browser)


class GoogleProvider:
    name: ClassVar[str] = "google"
    label: ClassVar[str] = "Google"
    description: ClassVar[str] = "Gmail, Calendar, Drive"
    features: ClassVar[Mapping[str, str]] = {str(k): v for k, v in FEATURE_LABELS.items()}
    actions: ClassVar[Sequence[ActionSpec]] = ACTIONS

    def __init__(self, host: Host) -> None:
        self._host = host
        self._settings = host.settings
        self._retry = RetryPolicy(self._settings.google_retries, self._settings.google_backoff_s)
        self._sessions: dict[str, Session] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    # --- reads and drafts for sub-agents ---------------------------------------------------

    async def run_op(self, user_id: str, op: str, args: dict[str, Any]) -> Any:
        spec = OPS.get(op)
        if spec is None:
            raise ToolError(f"unknown Google operation '{op}'; known: {', '.join(sorted(OPS))}")
        session = await self._session(user_id)
        if spec.feature not in features_granted(session.creds.scopes or []):
            raise ToolError(f"the Google grant does not include '{FEATURE_LABELS[spec.feature]}': ask the user to "
                            "turn it on in Integrations and reconnect")
        return await self._call(user_id, session, lambda s: spec.fn(s.get(spec.service), **args))

    async def fetch(self, user_id: str, fn: Callable[[Session], Any]) -> Any:
        """``fn(the user's Google clients)`` in a worker thread: what an action's review reads."""
        return await self._call(user_id, await self._session(user_id), fn)

    async def _call(self, user_id: str, session: Session, fn: Callable[[Session], Any]) -> Any:
        """``fn(session)`` in a thread; one refresh and retry on 401; Google's errors for the model."""
        for attempt in (1, 2):
            try:
                return await asyncio.to_thread(_serially, fn, session, self._retry)
            except GoogleApiError as exc:
                if exc.status == 401 and attempt == 1:
                    await self._refresh(user_id, session, force=True)
                    continue
                raise ToolError(str(exc)) from None
            except RefreshError:
                await self._refresh(user_id, session, force=True)
            except TypeError as exc:
                raise ToolError(f"bad arguments: {exc}") from None
        raise IntegrationUnavailable("Google keeps refusing the credentials: reconnect it")

    async def _session(self, user_id: str) -> Session:
        lock = self._locks.setdefault(user_id, asyncio.Lock())
        async with lock:
            session = self._sessions.get(user_id)
            if session is None:
                missing = oauth.configured(self._settings)
                if missing is not None:
                    raise IntegrationUnavailable(f"Google is not set up on this installation: {missing}")
                stored = await self._host.credentials.load(user_id)
                if stored is None:
                    raise IntegrationUnavailable("Google is not connected: connect it on the Integrations page")
                if stored.status == "reconnect":
                    raise IntegrationUnavailable(stored.reason or "Google needs reconnecting")
                tokens = cast(oauth.TokenSet, stored.tokens)
                session = Session(stored.row_id, oauth.credentials(self._settings, tokens), stored.account,
                                  self._settings.google_api_endpoint)
                self._sessions[user_id] = session
            if not session.creds.valid:
                await self._refresh(user_id, session)
            return session

    async def _refresh(self, user_id: str, session: Session, force: bool = False) -> None:
        if not force and session.creds.valid:
            return
        try:
            await asyncio.to_thread(oauth.refresh, session.creds)
        except IntegrationUnavailable as exc:
            self._sessions.pop(user_id, None)
            await self._host.credentials.mark_reconnect(session.row_id, str(exc))
            await self._host.audit(user_id, "google.reconnect_needed", actor="system", subject_id=session.row_id)
            _log.warning("google.refresh_failed", user_id=user_id)
            raise
        await self._host.credentials.update(session.row_id, user_id, dict(oauth.token_set(session.creds)),
                                            session.account)

    # --- gated actions ---------------------------------------------------------------------

    async def account(self, user_id: str) -> str | None:
        session = self._sessions.get(user_id)
        if session is not None and session.account:
            return session.account
        stored = await self._host.credentials.load(user_id)
        return stored.account if stored else None

    async def ground(self, user_id: str, action: ActionType, args: dict[str, Any], by_person: bool) -> dict[str, Any]:
        return await execution.ground(action, args, lambda fn: self.fetch(user_id, fn), by_person)

    async def perform(self, user_id: str, action: ActionType, args: dict[str, Any], action_id: str,
                      staged: dict[str, Any] | None, record: Record) -> dict[str, Any]:
        session = await self._session(user_id)
        loop = asyncio.get_running_loop()

        def record_now(what: dict[str, Any]) -> None:  # from the worker thread; committed when it returns
            asyncio.run_coroutine_threadsafe(record(what), loop).result(60)

        return await asyncio.to_thread(_serially, lambda s: execution.perform(
            action, args, action_id, s, staged, record_now), session, self._retry)

    async def already_done(self, user_id: str, action: ActionType, args: dict[str, Any], action_id: str,
                           staged: dict[str, Any] | None) -> dict[str, Any] | None:
        session = await self._session(user_id)
        return await asyncio.to_thread(_serially, lambda s: execution.already_done(
            action, args, action_id, s, staged), session, self._retry)

    # --- connecting ------------------------------------------------------------------------

    async def connect_start(self, user_id: str, features: list[str] | None) -> ConnectStart:
        missing = oauth.configured(self._settings)
        if missing is not None:
            raise ToolError(f"Google cannot be connected yet: {missing}")
        wanted: list[GoogleFeature] = sorted(set(features_of(features)) | set(await self._granted(user_id)))
        redirect = self._settings.base_url + oauth.CALLBACK_PATH
        verifier = oauth.new_verifier()
        state = await self._host.credentials.put_state(user_id, list(wanted), redirect, verifier)
        url = oauth.authorization_url(self._settings, scopes_for(wanted), redirect, state, verifier)
        return ConnectStart(authorization_url=url)

    async def connect_finish(self, state: str, code: str) -> str:
        user_id, names, redirect, verifier = await self._host.credentials.take_state(state)
        features = cast(list[GoogleFeature], names)
        try:
            tokens = await asyncio.to_thread(oauth.exchange_code, self._settings, code, scopes_for(features),
                                             redirect, verifier)
        except Exception as exc:  # Google refused the code (replayed, wrong verifier, client changed)
            _log.warning("google.exchange_failed", user_id=user_id, error_type=type(exc).__name__)
            raise ApprovalRefused("Google did not accept the sign-in; connect again", "exchange") from None
        await self.connect_tokens(user_id, tokens)
        return user_id

    async def connect_tokens(self, user_id: str, tokens: oauth.TokenSet) -> None:
        """Keep tokens a flow obtained (web callback or the CLI's loopback flow); release waiting steps."""
        account = None
        if "gmail_read" in features_granted(tokens["scopes"]):
            creds = oauth.credentials(self._settings, tokens)
            probe = Session("", creds, None, self._settings.google_api_endpoint)
            try:
                account = (await asyncio.to_thread(lambda: gmail.profile(probe.get("gmail"))))["emailAddress"]
            except Exception as exc:  # the address is a nicety on the Integrations page
                _log.warning("google.profile_failed", error_type=type(exc).__name__)
        row_id = await self._host.credentials.save(user_id, dict(tokens), account)
        self._sessions.pop(user_id, None)
        await self._host.connected(user_id, subject_id=row_id, detail={"scopes": len(tokens["scopes"])})

    async def disconnect(self, user_id: str) -> None:
        stored = await self._host.credentials.load(user_id)
        if stored is not None:
            token = stored.tokens["refresh_token"] or stored.tokens["access_token"]
            revoked = await asyncio.to_thread(oauth.revoke, self._settings, token)
            await self._host.credentials.forget(user_id)
            self._sessions.pop(user_id, None)
            await self._host.audit(user_id, "google.disconnected", actor=user_id, subject_id=stored.row_id,
                                   detail={"revoked": revoked})

    async def _granted(self, user_id: str) -> list[GoogleFeature]:
        stored = await self._host.credentials.load(user_id)
        return sorted(features_granted(stored.tokens["scopes"])) if stored else []

    async def status(self, user_id: str) -> IntegrationView:
        missing = oauth.configured(self._settings)
        stored = await self._host.credentials.load(user_id) if missing is None else None
        granted = features_granted(stored.tokens["scopes"]) if stored else set()
        features = [FeatureInfo(name=f, label=label, scopes=scopes_for([f]), enabled=f in granted)
                    for f, label in FEATURE_LABELS.items()]
        n = await self._host.waiting_tasks(user_id)
        if missing is not None:
            return IntegrationView(provider=self.name, label=self.label, status="not_configured", reason=missing,
                                   features=features, waiting_tasks=n)
        if stored is None:
            return IntegrationView(provider=self.name, label=self.label, status="disconnected", features=features,
                                   waiting_tasks=n)
        return IntegrationView(provider=self.name, label=self.label, status=stored.status, reason=stored.reason,
                               account=stored.account, features=features, connected_at=stored.connected_at,
                               waiting_tasks=n)


register(GoogleProvider)
