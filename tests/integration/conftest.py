"""Integration tier: one local Ray for the whole session, a simulated LLM server, apps on temp dirs."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import ray

from actors import runtime
from core.schemas import RunView
from core.settings import Settings
from integrations.llm.backend import resolve
from integrations.llm.sim_server import SimConfig, SimHandle, sim_llm_in_thread


@pytest.fixture(scope="session")
def ray_session() -> Iterator[None]:
    ray.init(num_cpus=2, namespace="maos-test", include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"LITELLM_LOCAL_MODEL_COST_MAP": "True"}})
    yield
    ray.shutdown()


@pytest.fixture(scope="session")
def sim() -> Iterator[SimHandle]:
    with sim_llm_in_thread(SimConfig()) as handle:
        yield handle


@pytest.fixture(autouse=True)
def _fresh_sim(sim: SimHandle, monkeypatch: pytest.MonkeyPatch) -> None:
    sim.update(ttft_ms=0, token_ms=0, reply_tokens=20, slots=1000, overflow="queue", fail_next=0, fail_rate=0)
    sim.clear()
    monkeypatch.setenv("OLLAMA_API_BASE", sim.base_url)


def app_settings(data_dir: Path, base_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = dict(
        data_dir=data_dir, llm_provider="ollama", llm_base_url=base_url, llm_model="sim-model",
        llm_slots=1000, llm_retries=2, llm_retry_backoff_s=0.05, retry_base_s=0.05, retry_max_s=0.2,
        lease_s=30.0, namespace=f"t{uuid.uuid4().hex[:8]}", log_format="json", log_level="WARNING",
    )
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def make_app(ray_session: None, sim: SimHandle, tmp_path: Path) -> Iterator[Callable[..., runtime.App]]:
    apps: list[runtime.App] = []

    def start(data_dir: Path | None = None, **overrides: Any) -> runtime.App:
        settings = app_settings(data_dir if data_dir is not None else tmp_path / "data", sim.base_url, **overrides)
        backend = asyncio.run(resolve(settings))
        app = runtime.start_app(settings, backend)
        apps.append(app)
        return app

    yield start
    for app in apps:
        runtime.kill_app(app)


def wait_run(app: runtime.App, run_id: str, timeout_s: float = 120.0,
             until: Callable[[RunView], bool] | None = None) -> RunView:
    """Poll the run until it ends (or ``until`` holds), with a deadline."""
    deadline = time.monotonic() + timeout_s
    view: RunView | None = None
    while time.monotonic() < deadline:
        view = app.store.get("get_run", run_id, timeout=30)
        assert view is not None
        if until is not None and until(view):
            return view
        if until is None and view.run.status in ("done", "failed"):
            return view
        time.sleep(0.1)
    tasks = [(t.step_id, t.status, t.attempts, t.error) for t in view.tasks] if view else []
    raise AssertionError(f"run {run_id} did not finish in {timeout_s} s; last: {view.run if view else None}; tasks: {tasks}")


def ask(app: runtime.App, message: str) -> str:
    run = app.master.get("submit", message, "u1", None, timeout=60)
    return str(run.id)
