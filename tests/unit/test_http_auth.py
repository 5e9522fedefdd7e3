"""Login rules of the HTTP app, on the FastAPI app itself (no Ray: these paths never reach the runtime)."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from core.errors import ConfigError
from core.settings import Settings
from serve_app.api import build_api
from serve_app.auth import check_bind, is_loopback


def test_binding_beyond_loopback_needs_a_token(tmp_path: Path) -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5")
    check_bind(Settings(data_dir=tmp_path), "127.0.0.1")
    with pytest.raises(ConfigError, match="MAOS_API_TOKEN"):
        check_bind(Settings(data_dir=tmp_path), "0.0.0.0")
    check_bind(Settings(data_dir=tmp_path, api_token="s3cret-token-value"), "0.0.0.0")


def test_with_a_token_the_api_needs_it_and_the_probes_do_not(tmp_path: Path) -> None:
    client = TestClient(build_api(Settings(data_dir=tmp_path, api_token="s3cret-token-value")))
    assert client.get("/health").status_code == 200
    for path in ("/api", "/metrics", "/docs", "/openapi.json"):
        refused = client.get(path)
        assert refused.status_code == 401 and "login required" in refused.json()["detail"], path
    assert client.get("/api", headers={"Authorization": "Bearer wrong"}).status_code == 401
    ok = client.get("/api", headers={"Authorization": "Bearer s3cret-token-value"})
    assert ok.status_code == 200 and "/api/conversations" in ok.json()["paths"]
    client.cookies.set("maos_token", "s3cret-token-value")
    assert client.get("/openapi.json").status_code == 200


def test_without_a_token_on_loopback_no_login_is_asked(tmp_path: Path) -> None:
    client = TestClient(build_api(Settings(data_dir=tmp_path)))
    assert client.get("/api").status_code == 200
    assert client.get("/", follow_redirects=False).headers["location"] == "/docs"
