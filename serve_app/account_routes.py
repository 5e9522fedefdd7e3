"""Accounts over HTTP: log in and out, setup and invite links, users (admin), API tokens (own).

Open (no login): ``POST /api/auth/login`` (a session cookie), ``POST /api/auth/token`` (an API
token, for ``maos login``) and ``POST /api/auth/accept`` (a setup or invite link's token and a new
password). Every password check passes :class:`serve_app.lockout.Lockout` first: a name or an
address with too many wrong passwords is refused without the password being looked at.
"""

from __future__ import annotations

import uuid

import structlog
from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.responses import JSONResponse

from core.account_schemas import (
    AcceptRequest,
    ApiTokenCreate,
    ApiTokenCreated,
    ApiTokenView,
    InviteRequest,
    InviteView,
    LoginRequest,
    LoginResult,
    TokenLoginRequest,
    UserChange,
    UserView,
)
from serve_app.auth import Login, client_address
from serve_app.callers import PUBLIC, Admin, Member
from serve_app.lockout import Lockout
from serve_app.passwords import (
    csrf_of,
    hash_password_async,
    new_api_token,
    secret_hash,
    verify_password_async,
)
from serve_app.sessions import CSRF_COOKIE, SESSION_COOKIE, Accounts, cookie_headers

_log = structlog.get_logger("maos.accounts")
OPEN_PATHS = frozenset({"/api/auth/login", "/api/auth/token", "/api/auth/accept"})


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


def _with_session(body: LoginResult, session_id: str, secure: bool) -> JSONResponse:
    response = JSONResponse(body.model_dump())
    for name, value in cookie_headers(session_id, body.csrf_token, secure):
        response.headers.append(name, value)
    return response


def build_account_routes(accounts: Accounts, login: Login, lockout: Lockout) -> APIRouter:
    r = APIRouter(prefix="/api")
    store = accounts.store

    async def check_password(request: Request, name: str, password: str) -> UserView:
        """The account ``name`` when ``password`` is its password (or the install's login token, which
        is the first admin's); else 401, or 429 without any check while the name or address is locked."""
        address = client_address(request.scope)
        wait = lockout.wait(name, address)
        record = await store.login_record(name=name)
        if wait > 0:  # the account's own audit shows it (an unknown name's: only an admin's view)
            await accounts.audit("login.refused", record.user.id if record is not None else None, "system",
                                 subject_id=name, reason="locked", retry_after_s=int(wait))
            raise HTTPException(429, "too many wrong passwords: try again later",
                                headers={"Retry-After": str(max(1, int(wait + 0.999)))})
        ok = record is not None and not record.user.disabled and await verify_password_async(record.password_hash, password)
        if ok and record is not None:
            lockout.succeeded(name)
            return record.user
        if login.verify(password) and not await accounts.admin_disabled():  # the login token: the first admin's
            await accounts.ensure_admin()
            admin = next(u for u in await store.users() if u.id == accounts.admin_id)
            lockout.succeeded(name)
            return admin
        lockout.failed(name, address)
        await accounts.audit("login.failed", record.user.id if record is not None else None, "system", subject_id=name,
                             reason="disabled" if record is not None and record.user.disabled else "wrong password")
        raise HTTPException(401, "wrong name or password")

    @r.post("/auth/login", response_model=LoginResult, tags=["accounts"], dependencies=[PUBLIC])
    async def log_in(body: LoginRequest, request: Request) -> JSONResponse:
        """Log in with a name and password: a session cookie (and the CSRF token to send with changes)."""
        user = await check_password(request, body.name, body.password)
        session_id, csrf = await accounts.start_session(user.id)
        await accounts.audit("login.succeeded", user.id, user.name, subject_id=user.id, via="session")
        return _with_session(LoginResult(user=user, csrf_token=csrf), session_id, _secure(request))

    @r.post("/auth/token", response_model=ApiTokenCreated, tags=["accounts"], dependencies=[PUBLIC])
    async def token_login(body: TokenLoginRequest, request: Request) -> ApiTokenCreated:
        """Log in with a name and password for a new API token (``maos login``); shown once."""
        user = await check_password(request, body.name, body.password)
        await accounts.audit("login.succeeded", user.id, user.name, subject_id=user.id, via="token")
        return await _new_token(user.id, user.name, body.token_name)

    @r.post("/auth/accept", response_model=LoginResult, tags=["accounts"], dependencies=[PUBLIC])
    async def accept(body: AcceptRequest, request: Request) -> JSONResponse:
        """Use a setup or invite link: set the password, and be logged in."""
        user = await store.redeem_invite(secret_hash=secret_hash(body.token),
                                         password_hash=await hash_password_async(body.password))
        await accounts.audit("user.password_set", user.id, user.name, subject_id=user.id)
        session_id, csrf = await accounts.start_session(user.id)
        return _with_session(LoginResult(user=user, csrf_token=csrf), session_id, _secure(request))

    @r.get("/auth/me", response_model=LoginResult, tags=["accounts"])
    async def me(caller: Member, request: Request) -> LoginResult:
        """Who this request is (and, with a session, its CSRF token)."""
        user = next((u for u in await store.users() if u.id == caller.user_id), None)
        if user is None:  # the login token before any account exists
            user = UserView(id=caller.user_id, name=caller.user_id, role=caller.role, disabled=False,
                            has_password=False, created_at=0.0)
        session_id = request.cookies.get(SESSION_COOKIE)
        return LoginResult(user=user, csrf_token=csrf_of(session_id) if session_id and caller.via == "session" else "")

    @r.post("/auth/logout", tags=["accounts"])
    async def log_out(caller: Member, request: Request, everywhere: bool = False) -> Response:
        """End this session (``everywhere``: every session of this user, on every device)."""
        session_id = request.cookies.get(SESSION_COOKIE)
        if not everywhere and (caller.via != "session" or session_id is None):
            raise HTTPException(409, "this request has no session to end: use everywhere=true")
        ended = await store.end_credentials(kind="session", user_id=caller.user_id,
                                            secret_hash=None if everywhere else secret_hash(session_id or ""),
                                            credential_id=None)
        accounts.forget()
        await accounts.audit("logout", caller.user_id, caller.user_id, subject_id=caller.user_id,
                             everywhere=everywhere, sessions=ended)
        response = JSONResponse({"ended": ended})
        for name in (SESSION_COOKIE, CSRF_COOKIE):
            response.headers.append("set-cookie", f"{name}=; Path=/; Max-Age=0; SameSite=Lax")
        return response

    # --- users (admin) -------------------------------------------------------------------------

    @r.get("/users", response_model=list[UserView], tags=["accounts"])
    async def users(caller: Admin) -> list[UserView]:
        """Every account (admin)."""
        return await store.users()

    @r.post("/users", response_model=InviteView, status_code=201, tags=["accounts"])
    async def invite(body: InviteRequest, caller: Admin) -> InviteView:
        """Invite a person (admin): a new account and a one-time link, valid 72 h, to set its password."""
        user = await store.create_user(user_id=uuid.uuid4().hex[:12], name=body.name, role=body.role, password_hash=None)
        link, expires_at = await accounts.invite(user.id, "invite")
        await accounts.audit("user.invited", caller.user_id, caller.user_id, subject_id=user.id, role=user.role)
        return InviteView(user=user, link=link, expires_at=expires_at)

    @r.post("/users/{user_id}/invite", response_model=InviteView, tags=["accounts"])
    async def reinvite(user_id: str, caller: Admin) -> InviteView:
        """A new one-time link for an account (admin): to set a forgotten password; earlier links stop."""
        user = next((u for u in await store.users() if u.id == user_id), None)
        if user is None:
            raise HTTPException(404, f"no user '{user_id}'")
        link, expires_at = await accounts.invite(user.id, "invite")
        await accounts.audit("user.reinvited", caller.user_id, caller.user_id, subject_id=user.id)
        return InviteView(user=user, link=link, expires_at=expires_at)

    @r.patch("/users/{user_id}", response_model=UserView, tags=["accounts"])
    async def change(user_id: str, body: UserChange, caller: Admin) -> UserView:
        """Disable or enable an account, or change its role (admin). Disabling ends its sessions and
        revokes its API tokens. An admin cannot disable or demote themselves."""
        if user_id == caller.user_id and (body.disabled or body.role == "member"):
            raise HTTPException(409, "you cannot disable or demote yourself: another admin can")
        user = await store.change_user(user_id=user_id, role=body.role, disabled=body.disabled, password_hash=None)
        accounts.forget()
        if body.disabled is not None:
            await accounts.audit("user.disabled" if body.disabled else "user.enabled", caller.user_id, caller.user_id,
                                 subject_id=user_id)
        if body.role is not None:
            await accounts.audit("user.role_changed", caller.user_id, caller.user_id, subject_id=user_id, role=body.role)
        return user

    # --- API tokens (own) ----------------------------------------------------------------------

    async def _new_token(user_id: str, actor: str, name: str) -> ApiTokenCreated:
        secret = new_api_token()
        token_id = await store.add_credential(kind="api_token", user_id=user_id, secret_hash=secret_hash(secret),
                                              name=name, expires_at=None)
        await accounts.audit("token.created", user_id, actor, subject_id=token_id)
        view = next(t for t in await store.api_tokens(user_id=user_id) if t.id == token_id)
        return ApiTokenCreated(token=view, secret=secret)

    @r.get("/tokens", response_model=list[ApiTokenView], tags=["accounts"])
    async def tokens(caller: Member) -> list[ApiTokenView]:
        """Your API tokens (never the tokens themselves)."""
        return await store.api_tokens(user_id=caller.user_id)

    @r.post("/tokens", response_model=ApiTokenCreated, status_code=201, tags=["accounts"])
    async def create_token(body: ApiTokenCreate, caller: Member) -> ApiTokenCreated:
        """A new API token for scripts and the CLI (``Authorization: Bearer maos_…``); shown once."""
        return await _new_token(caller.user_id, caller.user_id, body.name)

    @r.delete("/tokens/{token_id}", tags=["accounts"])
    async def revoke_token(token_id: str, caller: Member) -> dict[str, str]:
        """Revoke one of your API tokens: it stops working at once."""
        ended = await store.end_credentials(kind="api_token", user_id=caller.user_id, secret_hash=None,
                                            credential_id=token_id)
        if not ended:
            raise HTTPException(404, f"no token '{token_id}'")
        accounts.forget()
        await accounts.audit("token.revoked", caller.user_id, caller.user_id, subject_id=token_id)
        return {"revoked": token_id}

    return r
