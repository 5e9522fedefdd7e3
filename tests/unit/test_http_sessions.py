"""The door's identification (no Ray): session cookies with CSRF, API tokens, the login token and
the UI's own calls each give the request its caller; strangers and forged changes are refused."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.testclient import TestClient

from core.account_schemas import UserView
from serve_app.auth import Guard, Login, hash_token
from serve_app.passwords import csrf_of
from serve_app.sessions import Accounts

TOKEN = "the-login-token-0123456789"
MEMBER = UserView(id="u-mia", name="mia", role="member", disabled=False, has_password=True, created_at=0.0)
SESSION = "s" * 43
API_TOKEN = "maos_" + "t" * 43


class FakeAccounts(Accounts):
    """The Store's answers, in memory."""

    def __init__(self) -> None:
        self.admin_id = "local"

    async def session_user(self, session_id: str) -> UserView | None:
        return MEMBER if session_id == SESSION else None

    async def token_user(self, token: str) -> UserView | None:
        return MEMBER if token == API_TOKEN else None

    async def admin_disabled(self) -> bool:
        return False


def client() -> TestClient:
    app = FastAPI()

    def who(request: Request) -> dict[str, Any]:
        caller = request.scope.get("maos.caller")
        return {"caller": caller.model_dump() if caller is not None else None}

    app.add_api_route("/api/who", who, methods=["GET", "POST"])
    app.add_api_route("/gradio_api/queue/join", who, methods=["POST"])  # the UI's own posts
    app.add_api_route("/", who, methods=["GET"])
    guarded = Guard(app, login=Login(hash_token(TOKEN)), hosts={"127.0.0.1"}, ui_key="ui-key", api_per_minute=1000,
                    logins_per_minute=1000, accounts=FakeAccounts(), admin_id="local")
    return TestClient(guarded, base_url="http://127.0.0.1:8000")


def caller(answer: Any) -> dict[str, Any]:
    assert answer.status_code == 200, answer.text
    return dict(answer.json()["caller"])


def test_each_way_in_gives_its_caller() -> None:
    c = client()
    assert caller(c.get("/api/who", headers={"Authorization": f"Bearer {TOKEN}"})) == {
        "user_id": "local", "role": "admin", "via": "login_token"}
    assert caller(c.get("/api/who", headers={"Authorization": f"Bearer {API_TOKEN}"})) == {
        "user_id": "u-mia", "role": "member", "via": "token"}
    assert caller(c.get("/api/who", cookies={"maos_session": SESSION})) == {
        "user_id": "u-mia", "role": "member", "via": "session"}
    ui = {"Authorization": "Bearer ui-key"}
    assert caller(c.get("/api/who", headers={**ui, "X-Maos-Session": SESSION}))["user_id"] == "u-mia"
    for headers in ({"Authorization": "Bearer maos_made-up"}, {"Authorization": "Bearer wrong"}, {}, ui,
                    {**ui, "X-Maos-Session": "made-up"}):  # the UI acts for a person with a session, or for nobody
        assert c.get("/api/who", headers=headers).status_code == 401
    assert c.get("/api/who", cookies={"maos_session": "made-up"}).status_code == 401


def test_a_change_by_cookie_needs_the_sessions_csrf_token_and_a_bearer_does_not() -> None:
    c = client()
    cookie = {"maos_session": SESSION}
    for path in ("/api/who", "/gradio_api/queue/join"):
        refused = c.post(path, cookies=cookie)
        assert refused.status_code == 403 and "CSRF" in refused.json()["detail"], path
        assert c.post(path, cookies=cookie, headers={"X-CSRF-Token": csrf_of("another session")}).status_code == 403
        assert caller(c.post(path, cookies=cookie, headers={"X-CSRF-Token": csrf_of(SESSION)}))["via"] == "session"
    assert caller(c.post("/api/who", headers={"Authorization": f"Bearer {API_TOKEN}"}))["via"] == "token"
    assert caller(c.get("/api/who", cookies=cookie))["via"] == "session"  # reading needs none


def test_the_ui_page_sends_a_stranger_to_the_login_page() -> None:
    c = client()
    home = c.get("/", follow_redirects=False)
    assert home.status_code == 302 and home.headers["location"] == "/login"
    assert caller(c.get("/", cookies={"maos_session": SESSION}))["user_id"] == "u-mia"
