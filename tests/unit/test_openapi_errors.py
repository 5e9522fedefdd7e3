"""The OpenAPI document describes error answers as the app sends them: a 422 is ``{"detail": "<sentence>",
"errors": [{"field", "message"}]}``, not FastAPI's default list (the fuzz test checks answers against it)."""

from __future__ import annotations

from pathlib import Path

import jsonschema
from fastapi.testclient import TestClient
from pydantic import SecretStr

from core.settings import Settings
from serve_app.api import build_api

TOKEN = "s3cret-token-value"


def test_a_422_answer_matches_the_documented_422(tmp_path: Path) -> None:
    api = build_api(Settings(data_dir=tmp_path, api_token=SecretStr(TOKEN)))
    doc = api.openapi()
    documented = doc["paths"]["/api/runs"]["post"]["responses"]["422"]["content"]["application/json"]["schema"]
    schema = {**documented, "components": doc["components"]}
    client = TestClient(api, base_url="http://127.0.0.1:8000")
    answer = client.post("/api/runs", json={"message": ""}, headers={"Authorization": f"Bearer {TOKEN}"})
    assert answer.status_code == 422
    jsonschema.validate(answer.json(), schema)  # raises on a mismatch
    assert answer.json()["detail"].startswith("message") and answer.json()["errors"][0]["field"] == "body.message"
