"""HTTPS served directly: `maos tls self-signed`, then `maos serve` with MAOS_TLS_CERT/MAOS_TLS_KEY (an app
of its own, in a Ray of its own: Serve's HTTP options are fixed per cluster, and the session's is plain)."""

from __future__ import annotations

import os
import re
import ssl
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import expect, sync_playwright

from maos_testing.llm.sim_thread import SimHandle
from serve_app.sessions import CSRF_COOKIE, SESSION_COOKIE
from tests._cluster import LOGIN_TOKEN
from tests.e2e.conftest import WAIT_MS, free_port, interrupt, log_in
from tests.e2e.test_cli import cli_env, maos

ROOT = Path(__file__).resolve().parents[2]


def _setting(output: str, name: str) -> str:
    found = re.search(rf"^{name}=(\S+)$", output, re.M)
    assert found is not None, output
    return found.group(1)


def test_the_app_serves_https_with_a_self_signed_certificate(tmp_path: Path, sim: SimHandle) -> None:
    made = maos(["tls", "self-signed", "--out", str(tmp_path / "tls"), "--host", "maos.lan.test"],
                {**os.environ, "MAOS_DATA_DIR": str(tmp_path / "data")})
    assert made.returncode == 0, made.stderr
    cert, key = _setting(made.stdout, "MAOS_TLS_CERT"), _setting(made.stdout, "MAOS_TLS_KEY")
    port = free_port()
    env = {**cli_env(tmp_path / "data", sim.base_url), "MAOS_PORT": str(port), "MAOS_API_TOKEN": LOGIN_TOKEN,
           "MAOS_TLS_CERT": cert, "MAOS_TLS_KEY": key}
    log = (tmp_path / "serve.log").open("w+")
    proc = subprocess.Popen([sys.executable, "-m", "serve_app.cli", "serve"], cwd=ROOT, env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    base = f"https://127.0.0.1:{port}"
    trust = ssl.create_default_context(cafile=cert)  # the certificate as a CA, names checked
    try:
        output = ""
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None:
            log.seek(0)
            output = log.read()
            try:
                if httpx.get(f"{base}/ready", verify=trust, timeout=10).status_code == 200 and "Metrics" in output:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        else:
            raise AssertionError(f"the app never served HTTPS:\n{output[-4000:]}")
        for line in ("Master Agent OS is running: ", "  API        ", "  Metrics    "):  # (Ray Serve's own
            assert f"\n{line}{base}/" in output, line  # "ready at http://..." line is not ours to change)
        assert "WARNING: serving plain HTTP" not in output

        with pytest.raises(httpx.TransportError):  # the same port refuses plain HTTP
            httpx.get(f"http://127.0.0.1:{port}/health", timeout=10)
        with pytest.raises(httpx.ConnectError):  # and no public CA vouches for it
            httpx.get(f"{base}/health", timeout=10)

        with httpx.Client(base_url=base, verify=trust, timeout=60,
                          headers={"Origin": base, "Sec-Fetch-Site": "same-origin"}) as browser:
            login = browser.post("/api/auth/login", json={"name": "owner", "password": LOGIN_TOKEN})
            assert login.status_code == 200, login.text
            cookies = {c.split("=", 1)[0]: c for c in login.headers.get_list("set-cookie")}
            assert set(cookies) >= {SESSION_COOKIE, CSRF_COOKIE}
            assert all("; secure" in c.lower() for c in cookies.values()), cookies
            assert "httponly" in cookies[SESSION_COOKIE].lower()
            assert browser.get("/api/auth/me").status_code == 200  # the Secure cookie comes back over HTTPS
            # a change by cookie passes the same-origin check: the app sees its own scheme as https
            ended = browser.post("/api/auth/logout", headers={"X-CSRF-Token": login.json()["csrf_token"]})
            assert ended.status_code == 200, ended.text

        cli = {**env, "MAOS_DATA_DIR": str(tmp_path / "cli")}  # its default URL: https, trusting the cert
        logged = maos(["login", "--name", "owner", "--password-stdin"], cli, stdin=f"{LOGIN_TOKEN}\n")
        assert logged.returncode == 0, logged.stderr[-2000:]
        assert f'"url": "{base}"' in (tmp_path / "cli" / "cli_token.json").read_text()
        assert maos(["whoami"], cli).returncode == 0

        with sync_playwright() as p:  # the web UI: its own API calls go over HTTPS, trusting the cert
            chromium = p.chromium.launch(executable_path="/usr/bin/chromium", args=[
                "--no-sandbox", "--disable-background-networking", "--disable-component-update"])
            try:
                context = chromium.new_context(ignore_https_errors=True, viewport={"width": 1400, "height": 1100})
                page = context.new_page()
                page.set_default_timeout(WAIT_MS)
                log_in(page, base)
                expect(page.locator("#sidebar-llm")).to_contain_text("sim-model")
                session = next(c for c in context.cookies() if c["name"] == SESSION_COOKIE)
                assert session["secure"] and session["httpOnly"]
            finally:
                chromium.close()
    finally:
        interrupt(proc)
