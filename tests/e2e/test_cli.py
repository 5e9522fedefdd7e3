"""`maos` as a person runs it: a subprocess against the simulated LLM server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from maos_testing.llm.sim_thread import sim_llm_in_thread

ROOT = Path(__file__).resolve().parents[2]


def maos(args: list[str], env: dict[str, str], timeout: float = 240,
         stdin: str = "") -> subprocess.CompletedProcess[str]:
    """`maos ARGS` as a subprocess of this checkout (``stdin`` typed into it)."""
    return subprocess.run([sys.executable, "-m", "serve_app.cli", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout, input=stdin)


def cli_env(data_dir: Path, llm_url: str) -> dict[str, str]:
    """The environment of a `maos` run on ``data_dir`` against the simulated LLM server at ``llm_url``."""
    env = {**os.environ, "MAOS_DATA_DIR": str(data_dir), "MAOS_LLM_PROVIDER": "ollama",
           "MAOS_LLM_BASE_URL": llm_url, "MAOS_LLM_MODEL": "sim-model", "OLLAMA_API_BASE": llm_url,
           "MAOS_RAY_NUM_CPUS": "2", "MAOS_RETRY_BASE_S": "0.05", "MAOS_MAX_ATTEMPTS": "2"}
    env.pop("RAY_ADDRESS", None)
    return env


def test_maos_ask_json_then_inspect_the_queue(tmp_path: Path) -> None:
    with sim_llm_in_thread() as sim:
        env = cli_env(tmp_path / "data", sim.base_url)
        done = maos(["ask", "--json", "follow up with every lead tagged webinar and draft a summary for the team"], env)
        assert done.returncode == 0, done.stderr[-3000:]
        run = json.loads(done.stdout)
        assert run["status"] == "done" and run["summary"]
        assert len(run["plan"]) == len(run["steps"]) >= 2
        assert {s["agent"] for s in run["steps"]} >= {"leads", "email", "writing"}
        assert all(s["status"] == "done" and s["attempts"] == 1 and s["result"] for s in run["steps"])
        assert "Plan" in done.stderr  # the plan and progress are shown while it runs

        failed = maos(["ask", "--json", "[fail-step] email the new leads"], env)
        assert failed.returncode == 1
        dead_step = next(s for s in json.loads(failed.stdout)["steps"] if s["status"] == "dead")
        dead = maos(["dead", "--json"], env)
        assert dead.returncode == 0 and dead_step["task_id"] in {t["id"] for t in json.loads(dead.stdout)}
        retry = maos(["retry", dead_step["task_id"]], env)
        assert retry.returncode == 0 and "requeued" in retry.stdout
        again = maos(["tasks", "--json", "--status", "ready"], env)
        assert dead_step["task_id"] in {t["id"] for t in json.loads(again.stdout)}
        missing = maos(["retry", "nope:s1"], env)
        assert missing.returncode == 2 and "no such task" in missing.stderr
