"""E2E tier: the product as people reach it — the Serve HTTP app (API and web UI) on a free port,
in the session's Ray, against the simulated LLM server."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect, sync_playwright
from pydantic import SecretStr

from actors.runtime import wiring
from core.crypto import new_key_text
from integrations.llm.backend import resolve
from maos_testing.google.fake_server import FakeGoogle
from maos_testing.llm.sim_thread import SimHandle
from serve_app.server import serve_http
from tests._cluster import LOGIN_TOKEN, app_settings


def interrupt(proc: subprocess.Popen[str] | subprocess.Popen[bytes], timeout_s: float = 90) -> None:
    """Ctrl-C to the command's process group (started with ``start_new_session``), as a terminal sends
    it; killed, and the wait's error raised, if it has not stopped within ``timeout_s``."""
    os.killpg(proc.pid, signal.SIGINT)
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        raise


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Served:
    base_url: str
    app: wiring.App
    google: FakeGoogle

    def client(self, timeout: float = 60) -> httpx.Client:
        """An API client logged in with the app's login token."""
        return httpx.Client(base_url=self.base_url, timeout=timeout, headers=LOGIN)


LOGIN = {"Authorization": f"Bearer {LOGIN_TOKEN}"}


# Package scope: torn down after the last end-to-end test, not left running (Serve's replica, proxy
# and controller cost CPU while idle) under the integration and unit tiers that follow.
@pytest.fixture(scope="package")
def fake_google() -> Iterator[FakeGoogle]:
    """Google, faked on 127.0.0.1 (built on the discovery documents; records every side effect)."""
    server = FakeGoogle(account_email="owner@example.test").start()
    yield server
    server.stop()


@pytest.fixture(scope="package")
def served(ray_session: None, sim: SimHandle, fake_google: FakeGoogle,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """The whole product on one app: runtime actors plus the Serve deployment with API and UI,
    with Google set up against the fake (OAuth client, endpoints, an encryption key)."""
    port = free_port()
    fake = fake_google
    settings = app_settings(tmp_path_factory.mktemp("served") / "data", sim.base_url, retry_base_s=0.05,
                            max_attempts=2, port=port, google_client_id=fake.client_id,
                            google_client_secret=SecretStr(fake.client_secret), google_auth_uri=fake.auth_uri,
                            google_token_uri=fake.token_uri, google_revoke_uri=fake.revoke_uri,
                            google_api_endpoint=fake.url, encryption_key=SecretStr(new_key_text()))
    backend = asyncio.run(resolve(settings))
    app = wiring.start_app(settings, backend)
    serve_http(settings, "127.0.0.1", port)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/ready", timeout=10).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    else:
        raise AssertionError(f"the Serve app at {base} never became ready")
    yield Served(base, app, fake)
    from ray import serve

    serve.shutdown()
    wiring.kill_app(app)


@pytest.fixture
def bodies(sim: SimHandle) -> Iterator[SimHandle]:
    """The simulated LLM server, keeping each request's body (``sim.log()``) while the test runs."""
    sim.update(log_bodies=True)
    yield sim
    sim.update(log_bodies=False)


@pytest.fixture(autouse=True)
def _fresh_sim(fresh_sim: SimHandle) -> None:
    pass


@pytest.fixture(scope="session")
def artifacts() -> Path:
    path = Path(__file__).resolve().parents[1] / "artifacts"
    path.mkdir(exist_ok=True)
    return path


# --- the web UI in headless Chromium (Debian's; a browser download does not work offline) --------

WAIT_MS = 60_000
PAGE_KEYS = ("chat", "history", "memory", "agents", "approvals", "integrations", "settings")
expect.set_options(timeout=WAIT_MS)


@contextmanager
def browser_page() -> Iterator[Page]:
    """A fresh headless Chromium page, logged in to nothing."""
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=[
            "--no-sandbox", "--disable-background-networking", "--disable-component-update"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1100})
            page.set_default_timeout(WAIT_MS)
            yield page
        finally:
            browser.close()


@pytest.fixture
def page(served: Served) -> Iterator[Page]:
    """The UI, loaded and ready for input."""
    with browser_page() as page:
        log_in(page, served.base_url)  # it lands on the UI, ready for input (a second goto raced the
        # login's own navigation to it: net::ERR_ABORTED)
        yield page


def log_in(page: Page, base_url: str, name: str = "owner", password: str = LOGIN_TOKEN) -> None:
    """Through the UI's login form, as a person does (the cookie it sets stays with the page); the
    admin with the login token unless a name and password are given."""
    page.goto(f"{base_url}/")
    page.locator("input[type=password]").fill(password)
    page.locator("input[type=text]").first.fill(name)
    page.get_by_role("button", name="Login").click()
    expect(page.locator("#chat-input textarea")).to_be_visible(timeout=30_000)


def go(page: Page, name: str) -> None:
    """Open a page from the sidebar; it alone is shown."""
    page.locator(f"#nav-{name}").click()
    expect(page.locator(f"#page-{name}")).to_be_visible()
    for other in PAGE_KEYS:
        if other != name:
            expect(page.locator(f"#page-{other}")).to_be_hidden()
