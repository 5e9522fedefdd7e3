"""`maos google connect` (the loopback sign-in for a set-up without the web app), `maos google
status`, and `maos keys rotate`, as a person runs them, against the fake Google server."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from core.crypto import new_key_text
from maos_testing.google.fake_server import FakeGoogle
from tests.e2e.test_cli import ROOT, maos


def test_loopback_connect_status_and_key_rotation(tmp_path: Path) -> None:
    old_key, new_key = new_key_text(), new_key_text()
    with FakeGoogle(account_email="cli.owner@example.test") as fake:
        env = {**os.environ, "MAOS_DATA_DIR": str(tmp_path / "data"), "GOOGLE_CLIENT_ID": fake.client_id,
               "GOOGLE_CLIENT_SECRET": fake.client_secret, "MAOS_GOOGLE_AUTH_URI": fake.auth_uri,
               "MAOS_GOOGLE_TOKEN_URI": fake.token_uri, "MAOS_GOOGLE_REVOKE_URI": fake.revoke_uri,
               "MAOS_GOOGLE_API_ENDPOINT": fake.url, "ENCRYPTION_KEY": old_key, "PYTHONUNBUFFERED": "1"}
        env.pop("RAY_ADDRESS", None)
        connecting = subprocess.Popen(
            [sys.executable, "-m", "serve_app.cli", "google", "connect", "--no-browser",
             "--features", "gmail_read,calendar_read"],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert connecting.stdout is not None
        url = ""
        deadline = time.monotonic() + 60
        while not url.startswith("http") and time.monotonic() < deadline:
            url = connecting.stdout.readline().strip()
        assert url.startswith(fake.auth_uri), url
        assert "code_challenge=" in url and "access_type=offline" in url
        # The person signs in: Google redirects the browser to the CLI's one-shot server on 127.0.0.1.
        landed = httpx.get(url, follow_redirects=True, timeout=30)
        assert "connected" in landed.text.lower()
        out, err = connecting.communicate(timeout=60)
        assert connecting.returncode == 0, err[-3000:]
        assert "Google: connected (cli.owner@example.test)" in out
        assert "gmail_read" in out and "calendar_read" in out and "gmail_write" not in out

        status = maos(["google", "status"], env)
        assert status.returncode == 0 and "Google: connected" in status.stdout

        rotated = maos(["keys", "rotate"], {**env, "ENCRYPTION_KEY": new_key, "ENCRYPTION_OLD_KEYS": old_key})
        assert rotated.returncode == 0 and "1 oauth_credentials" in rotated.stdout, rotated.stderr[-2000:]
        after = maos(["google", "status"], {**env, "ENCRYPTION_KEY": new_key})  # the old key is no longer needed
        assert after.returncode == 0 and "cli.owner@example.test" in after.stdout, after.stderr[-2000:]
        stale = maos(["google", "status"], env)  # and no longer opens anything
        assert stale.returncode != 0 and "does not open with ENCRYPTION_KEY" in stale.stderr + stale.stdout
        data = b"".join(p.read_bytes() for p in (tmp_path / "data").glob("maos.duckdb*"))
        assert b"googleapis.com/auth" not in data  # the granted scopes, plain columns: the whole file is encrypted
