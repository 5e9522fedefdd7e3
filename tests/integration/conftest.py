"""Integration tier: apps on temp dirs in the session's Ray, against the simulated LLM server."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from actors.runtime import wiring
from actors.runtime.typed import blocking
from core.schemas import RunView
from integrations.llm.backend import resolve
from maos_testing.llm.sim_thread import SimHandle
from tests._cluster import app_settings


@pytest.fixture(autouse=True)
def _fresh_sim(fresh_sim: SimHandle) -> None:
    pass


def start_app(data_dir: Path, base_url: str, **overrides: Any) -> wiring.App:
    settings = app_settings(data_dir, base_url, **overrides)
    return wiring.start_app(settings, asyncio.run(resolve(settings)))


@pytest.fixture
def make_app(ray_session: None, sim: SimHandle, tmp_path: Path) -> Iterator[Callable[..., wiring.App]]:
    apps: list[wiring.App] = []

    def start(data_dir: Path | None = None, **overrides: Any) -> wiring.App:
        app = start_app(data_dir if data_dir is not None else tmp_path / "data", sim.base_url, **overrides)
        apps.append(app)
        return app

    yield start
    for app in apps:
        wiring.kill_app(app)


@pytest.fixture(scope="module")
def module_app(ray_session: None, sim: SimHandle, tmp_path_factory: pytest.TempPathFactory) -> Iterator[wiring.App]:
    """One app with the default settings for the tests of a module that neither kill its actors nor
    change its settings (an app start is ~15-25 s on a 2-core machine). Each test waits for its runs
    to end, so none leaves work running into the next."""
    yield from app_for_module(tmp_path_factory, "module-app", sim.base_url)


def app_for_module(tmp_path_factory: pytest.TempPathFactory, name: str, base_url: str) -> Iterator[wiring.App]:
    """The body of a module-scoped app fixture: an app with the default settings, killed at the end."""
    app = start_app(tmp_path_factory.mktemp(name) / "data", base_url)
    yield app
    wiring.kill_app(app)


def wait_run(app: wiring.App, run_id: str, timeout_s: float = 120.0,
             until: Callable[[RunView], bool] | None = None) -> RunView:
    """Poll the run until it ends (or ``until`` holds), with a deadline."""
    deadline = time.monotonic() + timeout_s
    view: RunView | None = None
    while time.monotonic() < deadline:
        if until is None:  # poll the status alone (a big run's whole view, ten times a second, is real load)
            progress = blocking(app.store.run_progress(run_id), timeout=30)
            if progress is not None and progress.status in ("done", "failed", "cancelled"):
                return blocking(app.store.get_run(run_id), timeout=30)
        else:
            view = blocking(app.store.get_run(run_id), timeout=30)
            assert view is not None
            if until(view):
                return view
        time.sleep(0.1)
    view = view or blocking(app.store.get_run(run_id), timeout=30)
    tasks = [(t.step_id, t.status, t.attempts, t.error) for t in view.tasks] if view else []
    raise AssertionError(f"run {run_id} did not finish in {timeout_s} s; last: {view.run if view else None}; tasks: {tasks}")


def ask(app: wiring.App, message: str, user: str = "u1") -> str:
    run = blocking(app.master.submit(message=message, user_id=user, conversation_id=None), timeout=60)
    return str(run.id)
