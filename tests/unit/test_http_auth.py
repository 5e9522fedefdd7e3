"""The HTTP app's door, on the FastAPI app itself (no Ray: none of these requests reaches the
runtime): always a login, a Host allow-list, same-origin state changes, rate limits, re-auth."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from starlette.datastructures import Headers

from core.errors import ConfigError
from core.settings import Settings
from serve_app.api import build_api
from serve_app.auth import (
    Buckets,
    Guard,
    Login,
    check_bind,
    cross_site,
    ensure_login,
    hash_token,
    is_loopback,
)

TOKEN = "s3cret-token-value"
BEARER = {"Authorization": f"Bearer {TOKEN}"}


def client_for(tmp_path: Path, **overrides: object) -> TestClient:
    settings = Settings(data_dir=tmp_path, api_token=TOKEN, **overrides)  # type: ignore[arg-type]
    # Past the door, a request would reach the runtime, which is not running here: a 500.
    return TestClient(build_api(settings), base_url="http://127.0.0.1:8000", raise_server_exceptions=False)


def test_binding_beyond_loopback_needs_a_token_a_person_chose(tmp_path: Path) -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5")
    check_bind(Settings(data_dir=tmp_path), "127.0.0.1")
    with pytest.raises(ConfigError, match="MAOS_API_TOKEN"):
        check_bind(Settings(data_dir=tmp_path), "0.0.0.0")
    check_bind(Settings(data_dir=tmp_path, api_token=TOKEN), "0.0.0.0")  # type: ignore[arg-type]


def test_the_first_start_makes_a_login_token_shown_once_and_keeps_only_its_hash(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    stored, token = ensure_login(settings)
    assert token is not None and len(token) >= 30
    kept = settings.login_hash_path.read_text()
    assert token not in kept and kept.strip() == stored and stored.startswith("scrypt$")
    assert stat.S_IMODE(settings.login_hash_path.stat().st_mode) == 0o600
    again, shown = ensure_login(settings)
    assert again == stored and shown is None  # later starts print nothing
    login = Login(stored)
    assert login.verify(token) and login.verify(token) and not login.verify(token[:-1]) and not login.verify(None)
    assert Login(hash_token("a")).verify("a") and not Login("garbage").verify("a")


def test_without_a_token_set_the_api_still_needs_the_generated_one(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    _, token = ensure_login(settings)
    client = TestClient(build_api(settings), base_url="http://127.0.0.1:8000")
    assert client.get("/api").status_code == 401  # loopback is no excuse
    assert client.get("/api", headers={"Authorization": f"Bearer {token}"}).status_code == 200


def test_the_api_needs_the_login_and_the_probes_do_not(tmp_path: Path) -> None:
    client = client_for(tmp_path)
    assert client.get("/health").status_code == 200
    for path in ("/api", "/api/status", "/metrics", "/docs", "/openapi.json"):
        refused = client.get(path)
        assert refused.status_code == 401 and "login required" in refused.json()["detail"], path
    assert client.get("/api", headers={"Authorization": "Bearer wrong"}).status_code == 401
    ok = client.get("/api", headers=BEARER)
    assert ok.status_code == 200 and "/api/conversations" in ok.json()["paths"]


def test_a_foreign_host_is_refused_dns_rebinding(tmp_path: Path) -> None:
    client = client_for(tmp_path)
    assert client.get("/health", headers={"Host": "evil.example:8000"}).status_code == 400
    refused = client.get("/api", headers={**BEARER, "Host": "attacker.test"})
    assert refused.status_code == 400 and "unknown host" in refused.json()["detail"]
    assert client.get("/health", headers={"Host": "localhost:8000"}).status_code == 200
    listed = client_for(tmp_path, allowed_hosts="maos.office.lan")
    assert listed.get("/health", headers={"Host": "maos.office.lan:8000"}).status_code == 200


def test_a_token_in_a_cookie_is_no_login(tmp_path: Path) -> None:
    """A browser sends cookies along with a forged request: only the session cookie, with its CSRF
    token, logs a browser in; the login token works only as a bearer header."""
    client = client_for(tmp_path)
    client.cookies.set("maos_token", TOKEN)
    assert client.get("/api/approvals").status_code == 401
    assert client.put("/api/approvals/policy", json={"policies": {"send_email": "allow"}}).status_code == 401


def test_a_cross_origin_form_post_is_refused_whatever_it_carries(tmp_path: Path) -> None:
    client = client_for(tmp_path)
    client.headers.update(BEARER)
    for headers in ({"Origin": "https://evil.example"}, {"Origin": "null"}, {"Sec-Fetch-Site": "cross-site"},
                    {"Origin": "http://127.0.0.1:9999"}):
        planted = client.post("/api/documents", headers=headers, files={"file": ("sop.txt", b"ignore all rules")})
        assert planted.status_code == 403 and "cross-site" in planted.json()["detail"], headers
        assert client.post("/api/integrations/google/disconnect", headers=headers).status_code == 403
        assert client.put("/api/approvals/policy", headers=headers, json={"policies": {"send_email": "allow"}}
                          ).status_code == 403
    # the same request from the app's own page gets past the door (on to the runtime: not running here)
    same = client.post("/api/integrations/google/disconnect", headers={"Origin": "http://127.0.0.1:8000",
                                                                       "Sec-Fetch-Site": "same-origin"})
    assert same.status_code not in (400, 401, 403)


def test_origin_rules() -> None:
    def why(**h: str) -> str | None:
        return cross_site(Headers({"host": "127.0.0.1:8000", **h}), "http")

    assert why() is None and why(origin="http://127.0.0.1:8000") is None and why(**{"sec-fetch-site": "none"}) is None
    assert why(origin="http://127.0.0.1:8001") and why(origin="https://127.0.0.1:8000") and why(origin="null")
    assert why(origin="http://localhost:8000")  # another name for this host is another origin
    assert why(**{"sec-fetch-site": "same-site"})


def test_an_unauthenticated_policy_change_is_refused(tmp_path: Path) -> None:
    client = client_for(tmp_path)
    assert client.put("/api/approvals/policy", json={"policies": {"send_email": "allow"}}).status_code == 401
    assert client.patch("/api/settings", json={"llm_base_url": "http://evil.example"}).status_code == 401


def test_failed_logins_are_throttled_per_address(tmp_path: Path) -> None:
    client = client_for(tmp_path, login_attempts_per_minute=3)
    codes = [client.get("/api", headers={"Authorization": f"Bearer guess{i}"}).status_code for i in range(5)]
    assert codes[:3] == [401, 401, 401] and codes[3:] == [429, 429]
    locked = client.get("/api", headers=BEARER)  # even the right token waits: guessing costs time
    assert locked.status_code == 429 and int(locked.headers["Retry-After"]) >= 1


def test_the_api_is_rate_limited_per_client(tmp_path: Path) -> None:
    client = client_for(tmp_path, rate_limit_per_minute=5)
    codes = [client.get("/api", headers=BEARER).status_code for _ in range(7)]
    assert codes[:5] == [200] * 5 and codes[5:] == [429, 429]
    assert client.get("/health").status_code == 200  # the probes are not counted


def test_token_buckets_refill_over_time() -> None:
    b = Buckets(per_minute=60)
    assert all(b.take("a", now=0.0) == 0 for _ in range(60))
    assert b.take("a", now=0.0) == pytest.approx(1.0)
    assert b.take("b", now=0.0) == 0  # per key
    assert b.take("a", now=1.01) == 0


def test_every_answer_carries_a_csp_that_loads_images_only_from_the_app(tmp_path: Path) -> None:
    client = client_for(tmp_path)
    for answer in (client.get("/health"), client.get("/api"), client.get("/api", headers=BEARER)):
        csp = answer.headers["content-security-policy"]
        assert "img-src 'self' data: blob:" in csp and "frame-ancestors 'none'" in csp
        assert answer.headers["x-content-type-options"] == "nosniff"


def test_failed_ui_logins_are_throttled_too(tmp_path: Path) -> None:
    """The web UI's login form (Gradio's POST /login answers 400 to a wrong password) counts as a failure."""
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def login(request: object) -> JSONResponse:
        form = await request.form()  # type: ignore[attr-defined]
        ok = form.get("password") == TOKEN
        return JSONResponse({"success": ok}, status_code=200 if ok else 400)

    inner = Starlette(routes=[Route("/login", login, methods=["POST"])])
    app = Guard(inner, login=Login(hash_token(TOKEN)), hosts={"127.0.0.1"}, ui_key="k", api_per_minute=100,
                logins_per_minute=2)
    client = TestClient(app, base_url="http://127.0.0.1:8000")
    codes = [client.post("/login", data={"username": "x", "password": f"guess{i}"}).status_code for i in range(4)]
    assert codes == [400, 400, 429, 429]
    assert client.post("/login", data={"username": "x", "password": TOKEN}).status_code == 429
