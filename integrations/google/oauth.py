"""OAuth2 with Google through google-auth-oauthlib: the web flow (state and PKCE, through the app's
callback) and the loopback flow for a CLI-only set-up; refresh and revoke.

The client id and secret come from the settings (the environment, or a client-secrets file);
nothing here stores a token: the Workspace actor encrypts what these functions return.
"""

from __future__ import annotations

import json
import secrets
from datetime import UTC, datetime
from typing import Any, TypedDict

import httpx
from google.auth.exceptions import RefreshError
from google.auth.transport.requests import Request
from google.oauth2.credentials import Credentials
from google_auth_oauthlib.flow import Flow, InstalledAppFlow

from core.errors import ConfigError, IntegrationUnavailable
from core.settings import Settings, apply_oauth_environment

CALLBACK_PATH = "/api/integrations/google/callback"


class TokenSet(TypedDict):
    """What is kept (encrypted) for one connected account."""

    access_token: str
    refresh_token: str | None
    expiry: float | None
    scopes: list[str]


def configured(settings: Settings) -> str | None:
    """None when Google can be connected; else what is missing, in words a person can act on."""
    if settings.google_client_secrets_file is None and (
            settings.google_client_id is None or settings.google_client_secret is None):
        return "set GOOGLE_CLIENT_ID and GOOGLE_CLIENT_SECRET (or GOOGLE_CLIENT_SECRETS_FILE) and restart"
    if settings.encryption_key is None:
        return "set ENCRYPTION_KEY (32 bytes, base64) so tokens can be encrypted at rest"
    return None


def client_config(settings: Settings) -> dict[str, Any]:
    """The client in google-auth-oauthlib's "web" shape, endpoints from the settings."""
    if settings.google_client_secrets_file is not None:
        try:
            loaded = json.loads(settings.google_client_secrets_file.read_text())
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read GOOGLE_CLIENT_SECRETS_FILE {settings.google_client_secrets_file}: {exc}") from None
        section = loaded.get("web") or loaded.get("installed")
        if not isinstance(section, dict) or "client_id" not in section:
            raise ConfigError(f"{settings.google_client_secrets_file} is not a Google client-secrets file")
        client_id, client_secret = section["client_id"], section.get("client_secret", "")
    elif settings.google_client_id is not None and settings.google_client_secret is not None:
        client_id, client_secret = settings.google_client_id, settings.google_client_secret.get_secret_value()
    else:
        raise ConfigError("Google is not configured: set GOOGLE_CLIENT_ID and GOOGLE_CLIENT_SECRET")
    apply_oauth_environment(settings.google_token_uri)
    return {"web": {"client_id": client_id, "client_secret": client_secret, "auth_uri": settings.google_auth_uri,
                    "token_uri": settings.google_token_uri, "redirect_uris": []}}


def new_verifier() -> str:
    """A PKCE code verifier: 64 URL-safe characters (43–128 allowed)."""
    return secrets.token_urlsafe(48)[:64]


def _flow(settings: Settings, scopes: list[str], redirect_uri: str, verifier: str) -> Flow:
    return Flow.from_client_config(client_config(settings), scopes=scopes, redirect_uri=redirect_uri,
                                   code_verifier=verifier, autogenerate_code_verifier=False)


def authorization_url(settings: Settings, scopes: list[str], redirect_uri: str, state: str, verifier: str) -> str:
    """Google's consent page for these scopes: offline access (a refresh token), PKCE S256, incremental."""
    url, _ = _flow(settings, scopes, redirect_uri, verifier).authorization_url(
        access_type="offline", prompt="consent", include_granted_scopes="true", state=state)
    return str(url)


def exchange_code(settings: Settings, code: str, scopes: list[str], redirect_uri: str, verifier: str) -> TokenSet:
    """The callback's code for tokens (the verifier proves this app started the flow)."""
    flow = _flow(settings, scopes, redirect_uri, verifier)
    flow.fetch_token(code=code)
    return token_set(flow.credentials)


def loopback_connect(settings: Settings, scopes: list[str], open_browser: bool = True) -> TokenSet:
    """The CLI flow: a one-shot server on 127.0.0.1 receives the code (Google's "installed app" flow)."""
    config = client_config(settings)
    flow = InstalledAppFlow.from_client_config({"installed": config["web"]}, scopes=scopes)
    creds = flow.run_local_server(
        host="127.0.0.1", port=0, open_browser=open_browser, access_type="offline", prompt="consent",
        authorization_prompt_message="Open this address to connect Google:\n{url}",
        success_message="Google is connected to Master Agent OS. You can close this tab.")
    return token_set(creds)


def token_set(creds: Any) -> TokenSet:
    expiry = creds.expiry.replace(tzinfo=UTC).timestamp() if creds.expiry is not None else None
    return TokenSet(access_token=creds.token, refresh_token=creds.refresh_token, expiry=expiry,
                    scopes=sorted(creds.granted_scopes or creds.scopes or []))


def credentials(settings: Settings, tokens: TokenSet) -> Credentials:
    config = client_config(settings)["web"]
    creds = Credentials(token=tokens["access_token"], refresh_token=tokens["refresh_token"],
                        token_uri=config["token_uri"], client_id=config["client_id"],
                        client_secret=config["client_secret"], scopes=tokens["scopes"])
    if tokens["expiry"] is not None:
        creds.expiry = datetime.fromtimestamp(tokens["expiry"], UTC).replace(tzinfo=None)
    return creds


def refresh(creds: Credentials) -> None:
    """A new access token; IntegrationUnavailable when Google refuses (revoked, expired, client changed)."""
    if not creds.refresh_token:
        raise IntegrationUnavailable("Google needs reconnecting: no refresh token was granted")
    try:
        creds.refresh(Request())
    except RefreshError as exc:
        reason = "access was revoked or the refresh token expired"
        if "invalid_client" in str(exc):
            reason = "the OAuth client was changed or deleted"
        raise IntegrationUnavailable(f"Google needs reconnecting: {reason}") from None


def revoke(settings: Settings, token: str) -> bool:
    """Tell Google to revoke ``token`` (and its family); False if Google did not accept it."""
    try:
        r = httpx.post(settings.google_revoke_uri, data={"token": token}, timeout=15.0)
    except httpx.HTTPError:
        return False
    return r.status_code == 200
