"""`maos cancel` and `maos ask --max-tokens/--deadline` as a person runs them: subprocesses against a
running app (started by a long `maos ask`), then against the database file once the app is gone."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from maos_testing.llm.sim_thread import sim_llm_in_thread
from tests.e2e.test_cli import ROOT, cli_env, maos


def _running_run(env: dict[str, str], asking: subprocess.Popen[str], timeout_s: float = 240) -> str:
    """The run of the one `maos ask` under way, once one of its steps runs (asked through the running app)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if asking.poll() is not None:
            out, err = asking.communicate()
            raise AssertionError(f"the long run ended before it was cancelled: {out[-2000:]}\n{err[-3000:]}")
        listed = maos(["tasks", "--json", "--status", "running", "--limit", "5"], env)
        if listed.returncode == 0 and (tasks := json.loads(listed.stdout)):
            return str(tasks[0]["run_id"])
        time.sleep(0.5)
    raise AssertionError(f"no step of the long run was running within {timeout_s} s")


def test_cancel_and_per_request_budgets_from_the_command_line(tmp_path: Path) -> None:
    with sim_llm_in_thread() as sim:
        env = cli_env(tmp_path / "data", sim.base_url)
        long = subprocess.Popen([sys.executable, "-m", "serve_app.cli", "ask", "--json",
                                 "[fanout 200 writing] [slow 3] write a note for each venue"],
                                cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            run_id = _running_run(env, long)

            # Budgets per request, on the running app: each run stops with its reason, shown and in --json.
            tokens = maos(["ask", "--json", "--max-tokens", "40", "[fanout 6 writing] [slow 1] write six notes"], env)
            assert tokens.returncode == 1, tokens.stderr[-3000:]
            stopped = json.loads(tokens.stdout)
            assert stopped["status"] == "cancelled" and stopped["error"].startswith("token budget of 40 reached")
            assert "token budget of 40 reached" in tokens.stderr  # what the person reads
            late = maos(["ask", "--json", "--deadline", "2", "[fanout 6 writing] [slow 4] write six slow notes"], env)
            assert late.returncode == 1, late.stderr[-3000:]
            assert json.loads(late.stdout)["error"] == "wall-clock budget of 2 s reached"
            assert "wall-clock budget of 2 s reached" in late.stderr

            # A run that has ended: cancelling it changes nothing (through the running app).
            ended_run = stopped["run_id"]
            again = maos(["cancel", ended_run], env)
            assert again.returncode == 0, again.stderr[-3000:]
            assert again.stdout.strip().splitlines()[-1] == f"{ended_run} had already ended: cancelled"

            first = maos(["cancel", run_id], env)
            assert first.returncode == 0, first.stderr[-3000:]
            assert f"cancelled {run_id}: " in first.stdout and "running step(s) stopped" in first.stdout
            # The long `maos ask` sees its run end and stops its app (and its Ray) with it.
            out, err = long.communicate(timeout=240)
            assert long.returncode == 1, err[-3000:]
            ended = json.loads(out)
            assert ended["run_id"] == run_id and ended["status"] == "cancelled"
            assert ended["error"].startswith("cancelled by ")
            assert {s["status"] for s in ended["steps"]} <= {"done", "cancelled"}
        finally:
            if long.poll() is None:
                long.kill()
                long.communicate()

        # The app is gone: a second cancel of the run reads the database file, and changes nothing.
        offline = maos(["cancel", "--json", run_id], env)
        assert offline.returncode == 0, offline.stderr[-3000:]
        assert json.loads(offline.stdout) == {"kind": "run_cancel", "run_id": run_id, "status": "cancelled",
                                              "cancelled": False, "stopped_steps": [], "withdrawn": []}
        missing = maos(["cancel", "nope"], env)
        assert missing.returncode == 2 and "nope" in missing.stderr
