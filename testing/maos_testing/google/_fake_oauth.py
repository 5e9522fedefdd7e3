"""OAuth 2.0 of the fake Google server: consent (auto-granted), code exchange with PKCE, refresh, revoke."""

from __future__ import annotations

import base64
import hashlib
import html
import secrets
import time
from dataclasses import dataclass, field
from urllib.parse import unquote, urlencode

from maos_testing.google._fake_wire import Json, Reply

_REVOKED = {"error": "invalid_grant", "error_description": "Token has been expired or revoked."}


@dataclass
class _Code:
    client_id: str
    redirect_uri: str
    scopes: frozenset[str]
    challenge: str | None
    challenge_method: str
    offline: bool


@dataclass
class _Family:
    """One grant: a refresh token (when offline) and the access tokens issued from it."""

    client_id: str
    scopes: frozenset[str]
    refresh_token: str | None
    access_tokens: set[str] = field(default_factory=set)
    revoked: bool = False


@dataclass
class _Access:
    family: _Family
    scopes: frozenset[str]
    expires_at: float


def _page(status: int, title: str, detail: str) -> Reply:
    body = f"<html><body><h1>{html.escape(title)}</h1><p>{html.escape(detail)}</p></body></html>"
    return Reply(status, body=body.encode(), content_type="text/html; charset=utf-8")


def _first(form: dict[str, list[str]], name: str) -> str | None:
    values = form.get(name)
    return values[0] if values else None


class OAuthState:
    """Clients, codes and tokens. Not locked itself: the server calls it under its own lock."""

    def __init__(self, clients: dict[str, str], account_email: str, token_ttl_s: float) -> None:
        self.clients = clients
        self.account_email = account_email
        self.token_ttl_s = token_ttl_s
        self.token_requests: list[Json] = []
        self._codes: dict[str, _Code] = {}
        self._refresh: dict[str, _Family] = {}
        self._access: dict[str, _Access] = {}
        self._granted: dict[str, frozenset[str]] = {}  # client id -> scopes the user consented to

    def authorize(self, query: dict[str, list[str]]) -> Reply:
        """``GET /o/oauth2/auth``: the user always consents; 302 back to the redirect URI."""
        client_id = _first(query, "client_id") or ""
        redirect_uri = _first(query, "redirect_uri")
        scopes = frozenset((_first(query, "scope") or "").split())
        if client_id not in self.clients:
            return _page(400, "Error 401: invalid_client", f"The OAuth client was not found: {client_id!r}")
        if not redirect_uri:
            return _page(400, "Error 400: invalid_request", "Missing required parameter: redirect_uri")
        if _first(query, "response_type") != "code":
            return _page(400, "Error 400: unsupported_response_type", "Only response_type=code is supported")
        if not scopes:
            return _page(400, "Error 400: invalid_request", "Missing required parameter: scope")
        if (_first(query, "include_granted_scopes") or "").lower() == "true":
            scopes |= self._granted.get(client_id, frozenset())
        self._granted[client_id] = self._granted.get(client_id, frozenset()) | scopes
        challenge = _first(query, "code_challenge")
        code = "4/fake-" + secrets.token_urlsafe(24)
        self._codes[code] = _Code(client_id, redirect_uri, scopes, challenge,
                                  _first(query, "code_challenge_method") or "plain",
                                  _first(query, "access_type") == "offline")
        params = {"code": code, "scope": " ".join(sorted(scopes))}
        state = _first(query, "state")
        if state is not None:
            params = {"state": state, **params}
        location = redirect_uri + ("&" if "?" in redirect_uri else "?") + urlencode(params)
        return Reply(302, body=b"", content_type="text/html", headers={"Location": location})

    def token(self, form: dict[str, list[str]], authorization: str) -> Reply:
        """``POST /token``: client auth in the form or HTTP Basic; authorization_code or refresh_token."""
        client_id, secret = _first(form, "client_id"), _first(form, "client_secret")
        if authorization.lower().startswith("basic "):
            decoded = base64.b64decode(authorization[6:].strip()).decode()
            user, _, password = decoded.partition(":")
            client_id, secret = unquote(user), unquote(password)
        grant_type = _first(form, "grant_type")
        record: Json = {key: values[0] for key, values in form.items() if key != "client_secret"}
        self.token_requests.append({**record, "grant_type": grant_type, "client_id": client_id, "at": time.time()})
        if client_id not in self.clients or self.clients[client_id] != secret:
            return Reply(401, {"error": "invalid_client", "error_description": "The OAuth client was not found."})
        if grant_type == "authorization_code":
            return self._exchange(client_id, form)
        if grant_type == "refresh_token":
            return self._refresh_grant(client_id, form)
        return Reply(400, {"error": "unsupported_grant_type", "error_description": f"Invalid grant_type: {grant_type}"})

    def _exchange(self, client_id: str, form: dict[str, list[str]]) -> Reply:
        code = self._codes.pop(_first(form, "code") or "", None)
        if code is None or code.client_id != client_id:
            return Reply(400, {"error": "invalid_grant", "error_description": "Malformed auth code."})
        if _first(form, "redirect_uri") != code.redirect_uri:
            return Reply(400, {"error": "redirect_uri_mismatch", "error_description": "Bad Request"})
        if code.challenge is not None:
            verifier = _first(form, "code_verifier") or ""
            if code.challenge_method == "S256":
                digest = hashlib.sha256(verifier.encode()).digest()
                verifier = base64.urlsafe_b64encode(digest).decode().rstrip("=")
            if not secrets.compare_digest(verifier, code.challenge):
                return Reply(400, {"error": "invalid_grant", "error_description": "Invalid code verifier."})
        refresh = "1//fake-" + secrets.token_urlsafe(32) if code.offline else None
        family = _Family(client_id, code.scopes, refresh)
        if refresh is not None:
            self._refresh[refresh] = family
        answer = self._issue(family, code.scopes)
        if refresh is not None:
            answer["refresh_token"] = refresh
        return Reply(200, answer)

    def _refresh_grant(self, client_id: str, form: dict[str, list[str]]) -> Reply:
        family = self._refresh.get(_first(form, "refresh_token") or "")
        if family is None or family.revoked:
            return Reply(400, dict(_REVOKED))
        if family.client_id != client_id:
            return Reply(400, {"error": "unauthorized_client", "error_description": "Unauthorized"})
        wanted = frozenset((_first(form, "scope") or "").split()) or family.scopes
        if not wanted <= family.scopes:
            return Reply(400, {"error": "invalid_scope",
                               "error_description": "Some requested scopes were invalid."})
        return Reply(200, self._issue(family, wanted))

    def _issue(self, family: _Family, scopes: frozenset[str]) -> Json:
        token = "ya29.fake-" + secrets.token_urlsafe(32)
        self._access[token] = _Access(family, scopes, time.time() + self.token_ttl_s)
        family.access_tokens.add(token)
        return {"access_token": token, "expires_in": int(self.token_ttl_s), "scope": " ".join(sorted(scopes)),
                "token_type": "Bearer"}

    def revoke(self, token: str) -> Reply:
        """``POST /revoke``: a refresh or access token; the whole grant goes with it."""
        family = self._refresh.get(token)
        if family is None and token in self._access:
            family = self._access[token].family
        if family is None or family.revoked or self._expired(token):
            return Reply(400, {"error": "invalid_token", "error_description": "Token expired or revoked"})
        self._revoke_family(family)
        return Reply(200, {})

    def _expired(self, token: str) -> bool:
        access = self._access.get(token)
        return access is not None and access.expires_at <= time.time()

    def _revoke_family(self, family: _Family) -> None:
        family.revoked = True
        for token in family.access_tokens:
            self._access.pop(token, None)
        self._granted.pop(family.client_id, None)

    def revoke_all(self) -> None:
        for family in [*self._refresh.values(), *(access.family for access in self._access.values())]:
            self._revoke_family(family)
        self._codes.clear()

    def expire_access_tokens(self) -> None:
        for access in self._access.values():
            access.expires_at = 0.0

    def scopes_for(self, authorization: str) -> frozenset[str] | None:
        """The scopes a ``Bearer`` header grants; None when it is missing, unknown, expired or revoked."""
        if not authorization.lower().startswith("bearer "):
            return None
        access = self._access.get(authorization[7:].strip())
        if access is None or access.family.revoked or access.expires_at <= time.time():
            return None
        return access.scopes

    def userinfo(self) -> Json:
        return {"id": "100000000000000000001", "email": self.account_email, "verified_email": True,
                "sub": "100000000000000000001", "email_verified": True}
