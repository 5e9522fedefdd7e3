"""Per-user rate limits (issue 23 item 5): a token bucket per person and kind, sized from the
settings at each request; 429 with Retry-After and a sentence the UI shows. No Ray: the limit is
counted before a route reaches the runtime."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi import HTTPException
from fastapi.testclient import TestClient
from pydantic import SecretStr
from starlette.middleware import Middleware

from core.settings import Settings
from serve_app.api import build_api
from serve_app.callers import Caller
from serve_app.user_limits import UserLimits
from tests._callers import AsCaller

TOKEN = "s3cret-token-value"
BEARER = {"Authorization": f"Bearer {TOKEN}"}


def test_each_person_has_their_own_bucket_refilled_over_the_minute(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, user_uploads_per_minute=2)
    limits = UserLimits(lambda: settings)
    limits.take("uploads", "alice", now=100.0)
    limits.take("uploads", "alice", now=100.0)
    with pytest.raises(HTTPException) as refused:
        limits.take("uploads", "alice", now=100.0)
    assert refused.value.status_code == 429 and refused.value.headers == {"Retry-After": "30"}
    assert "too many uploads" in str(refused.value.detail) and "2 a minute" in str(refused.value.detail)
    limits.take("uploads", "bob", now=100.0)  # bob's own bucket
    limits.take("approvals", "alice", now=100.0)  # another kind
    limits.take("uploads", "alice", now=130.0)  # one back after 30 s


def test_a_new_figure_in_the_settings_applies_at_the_next_request(tmp_path: Path) -> None:
    current = {"settings": Settings(data_dir=tmp_path, user_messages_per_minute=1)}
    limits = UserLimits(lambda: current["settings"])
    limits.take("messages", "alice", now=0.0)
    with pytest.raises(HTTPException):
        limits.take("messages", "alice", now=0.0)
    current["settings"] = Settings(data_dir=tmp_path, user_messages_per_minute=5)
    limits.take("messages", "alice", now=0.0)


def test_past_the_limit_a_chat_message_is_429_with_retry_after_per_person(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, api_token=SecretStr(TOKEN), user_messages_per_minute=2)
    apps = {}
    shared = None
    for name in ("alice", "bob"):
        api = build_api(settings)
        api.user_middleware.append(Middleware(AsCaller, who=Caller(user_id=name, role="member", via="token")))
        shared = shared if shared is not None else api.state.user_limits
        api.state.user_limits = shared  # one replica's limits, reached by both people
        apps[name] = TestClient(api, base_url="http://127.0.0.1:8000", raise_server_exceptions=False)
    # An empty body is refused (422) after the limit counted it: the runtime is never reached.
    assert [apps["alice"].post("/api/runs", json={}, headers=BEARER).status_code for _ in range(2)] == [422, 422]
    refused = apps["alice"].post("/api/runs", json={}, headers=BEARER)
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
    assert "too many chat messages" in refused.json()["detail"]
    assert apps["bob"].post("/api/runs", json={}, headers=BEARER).status_code == 422  # bob's own bucket
