"""Accounts over HTTP, end to end through Serve: the admin's setup link, invites, sessions with
CSRF, API tokens, disabling, the login lockout and its audit, and strangers refused."""

from __future__ import annotations

import asyncio
import uuid

import httpx

from actors.runtime.typed import blocking
from core.action_schemas import AuditEntry
from serve_app.sessions import CSRF_COOKIE, first_setup_link
from tests._cluster import LOGIN_TOKEN
from tests.e2e.conftest import Served
from tests.e2e.people import PASSWORD, invited, signed_in
from tests.e2e.test_google_http import wait_for


def _accept(base: str, link: str, password: str = PASSWORD) -> httpx.Client:
    """Use a one-time link (``/setup#TOKEN``) as the setup page does; a client holding the session."""
    client = httpx.Client(base_url=base, timeout=60)
    answer = client.post("/api/auth/accept", json={"token": link.split("#", 1)[1], "password": password})
    assert answer.status_code == 200, answer.text
    assert client.cookies.get(CSRF_COOKIE) == answer.json()["csrf_token"]
    return client


def _audit(served: Served, user_id: str) -> list[AuditEntry]:
    """The user's audit rows and the system's, read from the Store (whoever the audit route shows)."""
    return blocking(served.app.store.audit_entries(user_id=user_id, run_id=None, action=None, limit=2000), timeout=60)


def _csrf(client: httpx.Client) -> dict[str, str]:
    return {"X-CSRF-Token": client.cookies.get(CSRF_COOKIE) or ""}


def _invite(admin: httpx.Client, name: str) -> tuple[str, str]:
    made = admin.post("/api/users", json={"name": name}, headers=_csrf(admin))
    assert made.status_code == 201, made.text
    return made.json()["user"]["id"], made.json()["link"]


def test_setup_invite_login_csrf_tokens_and_disable(served: Served) -> None:
    base = served.base_url
    with served.client() as root:
        admin_id = root.get("/api/auth/me").json()["user"]["id"]  # the login token is the first admin
    link = asyncio.run(first_setup_link(served.app.store, admin_id))
    assert link is not None and link.startswith("/setup#")
    admin = _accept(base, link)
    me = admin.get("/api/auth/me").json()["user"]
    assert me["id"] == admin_id and me["role"] == "admin" and me["has_password"]
    assert asyncio.run(first_setup_link(served.app.store, admin_id)) is None  # set up: no more links
    assert httpx.post(f"{base}/api/auth/accept", json={"token": link.split("#")[1], "password": "x" * 10},
                      timeout=30).status_code == 404  # used once

    # a change by cookie needs the CSRF token
    name = f"mia-{uuid.uuid4().hex[:6]}"
    refused = admin.post("/api/users", json={"name": name})
    assert refused.status_code == 403 and "CSRF" in refused.json()["detail"]
    mia_id, mia_link = _invite(admin, name)
    _accept(base, mia_link, "mia's password").close()
    mia = httpx.Client(base_url=base, timeout=60)
    logged = mia.post("/api/auth/login", json={"name": name, "password": "mia's password"})
    assert logged.status_code == 200 and logged.json()["user"]["role"] == "member"
    set_cookie = logged.headers.get_list("set-cookie")
    assert any("maos_session=" in c and "HttpOnly" in c and "SameSite=Lax" in c for c in set_cookie)
    assert mia.get("/api/auth/me").json()["user"]["id"] == mia_id
    assert mia.get("/api/users").status_code == 403  # a member is not an admin

    # a cross-site form post with mia's cookie changes nothing: by Origin, and without it by the CSRF token
    forged = mia.post("/api/tokens", json={"name": "evil"}, headers={"Origin": "https://evil.example"})
    assert forged.status_code == 403
    no_token = mia.post("/api/tokens", json={"name": "evil"}, headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert no_token.status_code == 403 and "CSRF" in no_token.json()["detail"]
    wrong = mia.post("/api/tokens", json={"name": "evil"}, headers={"X-CSRF-Token": "0" * 64})
    assert wrong.status_code == 403
    assert mia.get("/api/tokens").json() == []

    # API tokens: created (shown once), listed, used as a bearer, revoked
    created = mia.post("/api/tokens", json={"name": "script"}, headers=_csrf(mia))
    assert created.status_code == 201
    secret, token_id = created.json()["secret"], created.json()["token"]["id"]
    assert secret.startswith("maos_")
    bearer = {"Authorization": f"Bearer {secret}"}
    listed = httpx.get(f"{base}/api/tokens", headers=bearer, timeout=30)
    assert listed.status_code == 200 and [t["name"] for t in listed.json()] == ["script"] and secret not in listed.text
    assert httpx.get(f"{base}/api/auth/me", headers=bearer, timeout=30).json()["user"]["id"] == mia_id
    # a bearer request needs no CSRF token; another user's token id is a 404
    assert admin.delete(f"/api/tokens/{token_id}", headers=_csrf(admin)).status_code == 404
    assert httpx.delete(f"{base}/api/tokens/{token_id}", headers=bearer, timeout=30).status_code == 200
    assert httpx.get(f"{base}/api/tokens", headers=bearer, timeout=30).status_code == 401

    # log out everywhere ends every session of the user
    other_device = httpx.Client(base_url=base, timeout=60)
    assert other_device.post("/api/auth/login", json={"name": name, "password": "mia's password"}).status_code == 200
    ended = mia.post("/api/auth/logout", params={"everywhere": "true"}, headers=_csrf(mia))
    assert ended.status_code == 200 and ended.json()["ended"] == 3  # the link's session, this one, the other device
    assert other_device.get("/api/auth/me").status_code == 401
    assert mia.post("/api/auth/login", json={"name": name, "password": "mia's password"}).status_code == 200

    # disabled: the session stops at once, and the password no longer logs in
    assert admin.patch(f"/api/users/{mia_id}", json={"disabled": True}, headers=_csrf(admin)).json()["disabled"]
    assert mia.get("/api/auth/me").status_code == 401
    assert httpx.post(f"{base}/api/auth/login", json={"name": name, "password": "mia's password"},
                      timeout=30).status_code == 401
    assert admin.patch(f"/api/users/{admin_id}", json={"disabled": True}, headers=_csrf(admin)).status_code == 409
    by_admin = {(e.action, e.subject_id) for e in _audit(served, admin_id)}
    assert ("user.invited", mia_id) in by_admin and ("user.disabled", mia_id) in by_admin
    mias = _audit(served, mia_id)
    assert {("token.created", token_id), ("token.revoked", token_id)} <= {(e.action, e.subject_id) for e in mias}
    assert any(e.action == "login.succeeded" and e.user_id == mia_id for e in mias)
    assert any(e.action == "login.failed" and e.subject_id == name and e.detail.get("reason") == "disabled"
               for e in mias)
    for client in (admin, mia, other_device):
        client.close()


def test_the_sixth_wrong_password_in_a_minute_is_refused_unchecked_and_audited(served: Served) -> None:
    base = served.base_url
    name = f"bruno-{uuid.uuid4().hex[:6]}"
    with served.client() as root:
        made = root.post("/api/users", json={"name": name})  # bearer: no CSRF token needed
        assert made.status_code == 201
        _accept(base, made.json()["link"], "the right one").close()
        for i in range(5):
            wrong = httpx.post(f"{base}/api/auth/login", json={"name": name, "password": f"guess {i}"}, timeout=30)
            assert wrong.status_code == 401
        # the 6th, even with the right password, is refused before the password is looked at
        sixth = httpx.post(f"{base}/api/auth/login", json={"name": name, "password": "the right one"}, timeout=30)
        assert sixth.status_code == 429 and int(sixth.headers["Retry-After"]) >= 1
    mine = [e for e in _audit(served, made.json()["user"]["id"]) if e.subject_id == name]
    assert sum(e.action == "login.failed" for e in mine) == 5
    assert any(e.action == "login.refused" and e.detail["reason"] == "locked" for e in mine)
    assert not any(e.action == "login.succeeded" for e in mine)
    # a name nobody has (what was typed is kept): in the admin's audit, in no member's
    typed = f"nobody-{uuid.uuid4().hex[:6]}"
    assert httpx.post(f"{base}/api/auth/login", json={"name": typed, "password": "x"}, timeout=30).status_code == 401
    mo = f"mo-{uuid.uuid4().hex[:6]}"
    mo_id = invited(base, mo)
    with served.client() as root, signed_in(base, mo, PASSWORD) as member:
        assert any(e["subject_id"] == typed for e in root.get("/api/audit", params={"action": "login.failed"}).json())
        theirs = member.get("/api/audit", params={"limit": 1000}).json()
        assert theirs and all(e["user_id"] == mo_id for e in theirs)


def test_a_stranger_is_refused_on_every_account_route(served: Served) -> None:
    base = served.base_url
    for method, path in [("GET", "/api/users"), ("POST", "/api/users"), ("PATCH", "/api/users/x"),
                         ("POST", "/api/users/x/invite"), ("GET", "/api/tokens"), ("POST", "/api/tokens"),
                         ("DELETE", "/api/tokens/x"), ("GET", "/api/auth/me"), ("POST", "/api/auth/logout")]:
        answer = httpx.request(method, f"{base}{path}", json={"name": "x"}, timeout=30)
        assert answer.status_code == 401, (method, path)
    for method, path in [("GET", "/api/tokens"), ("POST", "/api/tokens")]:  # a made-up session is no one
        forged = httpx.request(method, f"{base}{path}", json={"name": "x"}, timeout=30,
                               cookies={"maos_session": "made-up"}, headers={"X-CSRF-Token": "x"})
        assert forged.status_code == 401, (method, path)
    # the login page is open; a visit to the UI without a session goes there
    assert httpx.get(f"{base}/login", timeout=30).status_code == 200
    home = httpx.get(f"{base}/", timeout=30)
    assert home.status_code == 302 and home.headers["location"] == "/login"


def test_the_login_token_stops_with_the_first_admin_disabled(served: Served) -> None:
    """The login token acts as the first admin: disabled by another admin, it opens nothing, not
    even the login form; enabled again, it works again."""
    base, name = served.base_url, f"ops{uuid.uuid4().hex[:6]}"
    invited(base, name, role="admin")
    with served.client() as root, signed_in(base, name, PASSWORD) as ops:
        first = root.get("/api/auth/me").json()["user"]["id"]
        try:
            assert ops.patch(f"/api/users/{first}", json={"disabled": True}).status_code == 200
            wait_for(lambda: root.get("/api/status").status_code == 401, what="the login token refused")
            by_form = httpx.post(f"{base}/api/auth/login", json={"name": "admin", "password": LOGIN_TOKEN}, timeout=30)
            assert by_form.status_code == 401
        finally:
            assert ops.patch(f"/api/users/{first}", json={"disabled": False}).status_code == 200
        wait_for(lambda: root.get("/api/status").status_code == 200, what="the login token working again")
