"""Fixtures shared by the integration and e2e tiers: one local Ray per test session, one
simulated LLM server, and settings for apps on temporary directories."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import ray
from pydantic import SecretStr

from actors.runtime import wiring
from core.settings import Settings, ensure_ray_token
from maos_testing.llm.sim_thread import SimConfig, SimHandle, sim_llm_in_thread

# The login token of every app the tests start (the product generates one at first start).
LOGIN_TOKEN = "test-login-token-0123456789abcdef"


@pytest.fixture(scope="session")
def ray_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """One local Ray for the session, closed to strangers as the product's is (token auth on)."""
    token_path = tmp_path_factory.mktemp("ray") / "ray_token"
    ensure_ray_token(token_path)
    wiring.use_token_auth(token_path)
    ray.init(address="local", num_cpus=2, namespace="maos-test", include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"LITELLM_LOCAL_MODEL_COST_MAP": "True"}})
    yield
    from ray import serve

    serve.shutdown()
    ray.shutdown()


@pytest.fixture(scope="session")
def sim() -> Iterator[SimHandle]:
    with sim_llm_in_thread(SimConfig()) as handle:
        yield handle


@pytest.fixture
def fresh_sim(sim: SimHandle, monkeypatch: pytest.MonkeyPatch) -> SimHandle:
    """The shared simulated server with default knobs, and litellm pointed at it."""
    sim.update(ttft_ms=0, token_ms=0, reply_tokens=20, slots=1000, overflow="queue", fail_next=0, fail_rate=0,
               timed_tokens_cap=0, obey="last", tool_format="native")
    sim.clear()
    monkeypatch.setenv("OLLAMA_API_BASE", sim.base_url)
    return sim


def app_settings(data_dir: Path, base_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = dict(
        data_dir=data_dir, llm_provider="ollama", llm_base_url=base_url, llm_model="sim-model",
        llm_slots=1000, llm_retries=2, llm_retry_backoff_s=0.05, retry_base_s=0.05, retry_max_s=0.2,
        lease_s=30.0, namespace=f"t{uuid.uuid4().hex[:8]}", log_format="json", log_level="WARNING",
        api_token=SecretStr(LOGIN_TOKEN),
    )
    values.update(overrides)
    return Settings(**values)


def wait_for(what: str, check: Callable[[], bool], timeout_s: float = 120.0) -> None:
    """Poll ``check`` until it holds, with a deadline."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
