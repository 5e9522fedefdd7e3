"""The status page says whether the model can call tools: checked once as the app starts, never holding up
its readiness, reported by GET /api/status with what it means."""

from __future__ import annotations

import time
from typing import Any

from tests.e2e.conftest import Served


def test_the_status_says_whether_the_model_calls_tools_and_what_that_means(served: Served) -> None:
    deadline = time.monotonic() + 30
    with served.client() as client:
        while True:
            tools: dict[str, Any] | None = client.get("/api/status").json()["llm_tools"]
            if tools is not None and tools["state"] != "checking":
                break
            assert time.monotonic() < deadline, tools
            time.sleep(0.05)
    assert tools["state"] == "native" and tools["format"] == "native" and tools["model"] == "sim-model"
    assert tools["meaning"].startswith("sim-model calls tools") and tools["checked_at"] > 0
