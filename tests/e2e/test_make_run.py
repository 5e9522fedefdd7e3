"""`make run` as a new user types it: a fresh data directory, no LLM server, the embedded defaults."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import time
from pathlib import Path

import httpx

from tests.e2e.conftest import free_port, interrupt

ROOT = Path(__file__).resolve().parents[2]


def test_make_run_comes_up_ready_on_a_fresh_data_directory(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MAOS_", "RAY_", "OLLAMA_"))}
    env.update({
        "MAOS_DATA_DIR": str(tmp_path / "data"), "MAOS_PORT": str(port), "MAOS_RAY_NUM_CPUS": "2",
        # Nothing answers here, whatever runs on this machine: `auto` must fall back to the embedded model.
        "MAOS_OLLAMA_URL": f"http://127.0.0.1:{free_port()}", "MAOS_LMSTUDIO_URL": f"http://127.0.0.1:{free_port()}",
    })
    log = (tmp_path / "make-run.log").open("w+")
    proc = subprocess.Popen(["make", "run"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        ready = None
        output = ""
        while time.monotonic() < deadline and proc.poll() is None:
            log.seek(0)
            output = log.read()
            try:
                ready = httpx.get(f"{base}/ready", timeout=10)
                if ready.status_code == 200 and "Ray dashboard" in output:  # ready, and the URLs printed
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        assert ready is not None and ready.status_code == 200, f"not ready: {ready and ready.text}\n{output[-4000:]}"
        assert ready.json() == {"ready": True, "reasons": []}
        assert f"{base}/" in output and f"{base}/docs" in output and f"{base}/metrics" in output
        assert "Ray dashboard" in output and "embedded" in output
        # a login always: a token printed once at this first start, kept only as a hash
        found = re.search(r"Login token \(shown once[^)]*\): (\S+)", output)
        assert found is not None, output[-4000:]
        token = found.group(1)
        data = tmp_path / "data"
        assert token not in (data / "login.sha256").read_text()
        for secret_file in ("login.sha256", "ray_token"):
            assert stat.S_IMODE((data / secret_file).stat().st_mode) == 0o600, secret_file
        assert httpx.get(f"{base}/api/status", timeout=30).status_code == 401
        assert httpx.get(f"{base}/api/status", timeout=30, headers={"Host": "rebound.example"}).status_code == 400
        status = httpx.get(f"{base}/api/status", timeout=30, headers={"Authorization": f"Bearer {token}"}).json()
        assert status["llm_provider"] == "embedded" and status["llm_reachable"] is True
        assert "ray_address" not in status
        page = httpx.get(f"{base}/", timeout=30, follow_redirects=True)
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    finally:
        interrupt(proc)
    try:  # Ctrl-C stops the whole app: nothing answers on the port any more
        httpx.get(f"{base}/health", timeout=5)
        raise AssertionError("the app still answers after make run was interrupted")
    except httpx.TransportError:
        pass
