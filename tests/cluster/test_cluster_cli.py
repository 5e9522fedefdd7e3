"""``maos cluster head`` / ``join`` / ``status`` as a person runs them, as subprocesses: a head on
free ports with its own data directory, one machine joining it (a second Ray node on this machine),
and the joins the head must refuse: a wrong token, another code version. No shared Ray: every
process here is started here, in a session of its own, and only those are stopped."""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from core.code_version import code_version
from maos_testing.llm.sim_thread import SimConfig, SimHandle, sim_llm_in_thread

ROOT = Path(__file__).resolve().parents[2]
MAOS = str(Path(sys.executable).with_name("maos"))
LOGIN = "cluster-test-login-0123456789abcdef"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("", 0))
        return int(s.getsockname()[1])


def environment(data_dir: Path, **more: str) -> dict[str, str]:
    """A machine's: none of the caller's Ray or maos settings; litellm offline."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MAOS_", "RAY_"))}
    env.update({"MAOS_DATA_DIR": str(data_dir), "MAOS_LOG_FORMAT": "json", "MAOS_LOG_LEVEL": "WARNING",
                "LITELLM_LOCAL_MODEL_COST_MAP": "True", "RAY_USAGE_STATS_ENABLED": "0", "PYTHONUNBUFFERED": "1",
                **more})
    return env


@dataclass
class Proc:
    process: subprocess.Popen[bytes]
    out: Path

    def text(self) -> str:
        return self.out.read_text(errors="replace")

    def wait_for(self, pattern: str, timeout_s: float) -> re.Match[str]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            found = re.search(pattern, self.text())
            if found:
                return found
            assert self.process.poll() is None, f"exited {self.process.returncode} before {pattern!r}:\n{self.text()[-3000:]}"
            time.sleep(0.5)
        raise AssertionError(f"no {pattern!r} within {timeout_s} s:\n{self.text()[-3000:]}")

    def interrupt(self, timeout_s: float) -> int:
        """Ctrl-C, as a terminal sends it to the command; then wait for it to finish stopping."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGINT)
        return self.process.wait(timeout_s)

    def kill(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(30)


def start(args: list[str], env: dict[str, str], out: Path) -> Proc:
    with open(out, "wb") as f:
        process = subprocess.Popen([MAOS, *args], cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=f,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    return Proc(process, out)


def run(args: list[str], env: dict[str, str], timeout_s: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([MAOS, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout_s,
                          start_new_session=True)


def gcs_open(address: str) -> bool:
    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=2).close()
    except OSError:
        return False
    return True


@dataclass
class Head:
    proc: Proc
    address: str
    env: dict[str, str]
    data_dir: Path
    sim: SimHandle


@pytest.fixture(scope="module")
def head(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Head]:
    data_dir = tmp_path_factory.mktemp("head")
    with sim_llm_in_thread(SimConfig()) as sim:
        env = environment(data_dir, MAOS_LLM_PROVIDER="ollama", MAOS_LLM_BASE_URL=sim.base_url,
                          MAOS_LLM_MODEL="sim-model", MAOS_API_TOKEN=LOGIN, MAOS_NAMESPACE="maos-cluster-test")
        proc = start(["cluster", "head", "--port", str(free_port()), "--ray-port", str(free_port()),
                      "--dashboard-host", "127.0.0.1", "--dashboard-port", str(free_port()), "--num-cpus", "1",
                      f"--ray-arg=--ray-client-server-port={free_port()}",
                      f"--ray-arg=--dashboard-agent-listen-port={free_port()}"], env, data_dir / "head.out")
        try:
            join = proc.wait_for(r"\.venv/bin/maos cluster join (\S+) --token-file data/ray_token", 420)
            yield Head(proc, join.group(1), env, data_dir, sim)
            code = proc.interrupt(120)
            assert code == 0, proc.text()[-3000:]
            # Ctrl-C stopped the Ray head it started, too
            deadline = time.monotonic() + 60
            while gcs_open(join.group(1)) and time.monotonic() < deadline:
                time.sleep(0.5)
            assert not gcs_open(join.group(1)), "the Ray head outlived `maos cluster head`"
        finally:
            proc.kill()


def test_the_head_says_how_to_join_without_showing_the_token(head: Head) -> None:
    out = head.proc.text()
    token = (head.data_dir / "ray_token").read_text().strip()
    assert token not in out
    assert str((head.data_dir / "ray_token").resolve()) in out and "copy this file" in out
    assert re.search(r"Ray dashboard  http://127\.0\.0\.1:\d+", out)
    assert f"maos {code_version()}" in out
    assert (head.data_dir / "ray_token").stat().st_mode & 0o077 == 0


def test_a_join_with_a_wrong_token_is_refused(head: Head, tmp_path: Path) -> None:
    wrong = tmp_path / "ray_token"
    wrong.write_text(secrets.token_hex(32))
    done = run(["cluster", "join", head.address, "--token-file", str(wrong)], environment(tmp_path / "data"))
    assert done.returncode == 3, done.stdout + done.stderr
    assert f"the head at {head.address} refused this machine's token" in done.stderr


def test_join_adds_a_node_and_status_lists_both(head: Head, tmp_path: Path) -> None:
    env = environment(tmp_path / "data")
    joined = start(["cluster", "join", head.address, "--token-file", str(head.data_dir / "ray_token"), "--num-cpus", "1",
                    f"--ray-arg=--dashboard-agent-listen-port={free_port()}"], env, tmp_path / "join.out")
    try:
        joined.wait_for(rf"joined {re.escape(head.address)}", 240)
        deadline = time.monotonic() + 120
        while True:
            done = run(["cluster", "status", "--json"], head.env)
            assert done.returncode == 0, done.stdout + done.stderr
            view = json.loads(done.stdout)
            alive = [n for n in view["nodes"] if n["alive"]]
            if len(alive) == 2 or time.monotonic() > deadline:
                break
        assert len(alive) == 2, view
        main = next(n for n in alive if n["head"])
        assert {"store", "memory", "master", "dispatcher", "gateway-0"} <= set(main["actors"]), main
        assert view["app_running"] and view["head_version"] == code_version()
        assert [(e["url"], e["up"]) for e in view["endpoints"]] == [(head.sim.base_url, True)], view["endpoints"]
        text = run(["cluster", "status"], head.env)
        assert "2 node(s) alive" in text.stdout and "(head)" in text.stdout, text.stdout + text.stderr
        assert f"llm endpoint {head.sim.base_url} · up" in text.stdout, text.stdout
        assert joined.interrupt(90) == 0, joined.text()[-3000:]
    finally:
        joined.kill()


def publish(head: Head, version: str, env: dict[str, str]) -> None:
    """Overwrite the version the head published (as a head running other code would have)."""
    code = ("import sys; from pathlib import Path; from actors.runtime.cluster_info import publish_version; "
            "publish_version(sys.argv[1], sys.argv[2], Path(sys.argv[3]))")
    subprocess.run([sys.executable, "-c", code, head.address, version, str(head.data_dir / "ray_token")], cwd=ROOT,
                   check=True, env=env, timeout=60, capture_output=True)


def test_a_join_running_another_code_version_is_refused(head: Head, tmp_path: Path) -> None:
    other = "0.0.1+0123456789ab"
    publish(head, other, environment(tmp_path / "kv"))
    try:
        done = run(["cluster", "join", head.address, "--token-file", str(head.data_dir / "ray_token")],
                   environment(tmp_path / "data"))
    finally:
        publish(head, code_version(), environment(tmp_path / "kv"))
    assert done.returncode == 4, done.stdout + done.stderr
    assert f"this machine runs maos {code_version()}, the head runs {other}: install the same version" in done.stderr
