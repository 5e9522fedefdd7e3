"""Accounts, sessions and API tokens: the models the HTTP API, the CLI and the Store exchange.

Secrets (passwords, session ids, API tokens, invite links) cross a boundary only as the request a
person makes or as the one answer that shows a new secret once; stored, they are hashes.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Role = Literal["admin", "member"]
CredentialKind = Literal["session", "api_token", "invite"]
API_TOKEN_PREFIX = "maos_"  # an API token says what it is (and the door looks up only these)
SESSION_COOKIE = "maos_session"  # the session id (HttpOnly)
UI_SESSION_HEADER = "X-Maos-Session"  # the web UI's own calls: the session of the person they act for


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class UserView(_Model):
    id: str = Field(description="User id (the owner of their records).")
    name: str = Field(description="Login name.")
    role: Role = Field(description="admin: users and global settings; member: their own work.")
    disabled: bool = Field(description="A disabled user cannot log in; their sessions and tokens stop working.")
    has_password: bool = Field(description="False until the setup or invite link was used.")
    created_at: float = Field(description="When the account was made (epoch seconds).")


class UserLogin(_Model):
    """What a password check needs (inside the app only: the Store to the HTTP replica)."""

    user: UserView = Field(description="The account.")
    password_hash: str | None = Field(description="Argon2id hash; None before the account was set up.")


class LoginRequest(_Model):
    name: str = Field(min_length=1, max_length=100, description="Login name.")
    password: str = Field(min_length=1, max_length=1000, description="Password.")


class TokenLoginRequest(_Model):
    """``maos login``: a name and password in, a new API token out."""

    name: str = Field(min_length=1, max_length=100, description="Login name.")
    password: str = Field(min_length=1, max_length=1000, description="Password.")
    token_name: str = Field("cli", min_length=1, max_length=100, description="What the token is for.")


class AcceptRequest(_Model):
    """Using a setup or invite link: its token and the password the person chooses."""

    token: str = Field(min_length=10, max_length=200, description="The token from the link.")
    password: str = Field(min_length=8, max_length=1000, description="The new password (8 characters or more).")


class LoginResult(_Model):
    user: UserView = Field(description="Who is logged in.")
    csrf_token: str = Field(description="Send as X-CSRF-Token with state-changing requests that use the cookie.")


class InviteRequest(_Model):
    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9._@-]+$",
                      description="Login name of the person invited (letters, digits, . _ @ -).")
    role: Role = Field("member", description="Their role.")


class InviteView(_Model):
    user: UserView = Field(description="The account, without a password until the link is used.")
    link: str = Field(description="The one-time link (path and token) to send them; shown once.")
    expires_at: float = Field(description="When the link stops working (epoch seconds).")


class UserChange(_Model):
    disabled: bool | None = Field(None, description="Disable (true) or enable (false) the account.")
    role: Role | None = Field(None, description="A new role.")


class ApiTokenCreate(_Model):
    name: str = Field(min_length=1, max_length=100, description="What the token is for (e.g. 'laptop cli').")


class ApiTokenView(_Model):
    id: str = Field(description="Token id (not the token).")
    name: str = Field(description="What it is for.")
    created_at: float = Field(description="When it was made.")
    last_used_at: float | None = Field(None, description="When it was last used.")


class ApiTokenCreated(_Model):
    token: ApiTokenView = Field(description="The token's record.")
    secret: str = Field(description="The token itself: shown once, only its hash is kept.")
