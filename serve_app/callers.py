"""Who is asking: the signed-in person (:class:`Caller`) as the routes see them, and what each route needs.

The door (:class:`serve_app.auth.Guard`) authenticates a request and leaves its caller in
``request.scope["maos.caller"]``; routes take it through a dependency that also says which role
they need, so that every route declares it (a test walks the app and fails on one that does not):

- ``who: Member`` — any signed-in person (a member or an admin), on their own records;
- ``who: Admin`` — an admin (users, global settings, LLM endpoints, approval policies, everyone's audit);
- ``dependencies=[PUBLIC]`` — open to anyone (the probes, a provider's OAuth redirect).

Until the door names a caller (one shared login token), a request runs as ``settings.user_id``,
an admin, as it always has.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import Depends, HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field

Role = Literal["admin", "member"]
SCOPE_KEY = "maos.caller"
_RANK: dict[str, int] = {"member": 0, "admin": 1}


class Caller(BaseModel):
    """The person a request runs for."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    user_id: str = Field(min_length=1, description="Whose records the request reads and writes.")
    role: Role = Field(description="admin: users, global settings, LLM endpoints, policies, everyone's audit; "
                                   "member: their own conversations, runs, documents, accounts, approvals.")
    via: Literal["session", "token", "login_token"] = Field(
        description="How they signed in: a session cookie, a personal API token, or the install's login token.")

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


def caller(request: Request) -> Caller:
    """The request's caller, as the door left it; before accounts, the install's one user, an admin."""
    found: Any = request.scope.get(SCOPE_KEY)
    if isinstance(found, Caller):
        return found
    if isinstance(found, dict):
        return Caller.model_validate(found)
    return Caller(user_id=request.app.state.default_user_id, role="admin", via="login_token")


class _Needs:
    """A route dependency: refuses (403) a caller below ``role`` and gives the route its :class:`Caller`."""

    def __init__(self, role: Role) -> None:
        self.maos_role: str = role  # read by the route-declaration test (:func:`declared_role`)

    def __call__(self, request: Request) -> Caller:
        who = caller(request)
        if _RANK[who.role] < _RANK[self.maos_role]:
            raise HTTPException(403, f"this needs the {self.maos_role} role; you are signed in as a {who.role}")
        return who


class _Public:
    """A route dependency that lets anyone through (the door decides what reaches the route)."""

    maos_role = "public"

    def __call__(self) -> None:
        return None


def requires(role: Role) -> _Needs:
    """``Depends(requires("admin"))``: the route needs this role, and gets the :class:`Caller`."""
    return _Needs(role)


Member = Annotated[Caller, Depends(requires("member"))]
Admin = Annotated[Caller, Depends(requires("admin"))]
PUBLIC = Depends(_Public())


def declared_role(dependant: Any) -> str | None:
    """The role a FastAPI route's dependencies declare (``public``, ``member``, ``admin``), the highest
    when several do; None when none does."""
    found: list[str] = []

    def walk(d: Any) -> None:
        role = getattr(d.call, "maos_role", None)
        if role is not None:
            found.append(role)
        for sub in d.dependencies:
            walk(sub)

    walk(dependant)
    if not found:
        return None
    roles = [r for r in found if r != "public"]
    return max(roles, key=lambda r: _RANK[r]) if roles else "public"
