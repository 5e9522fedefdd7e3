"""Every command README.md shows, read out of README itself and run as a person types it on a fresh
machine: no model server, no Google, no app running. README and this test cannot drift: a command
added to README runs here (and must succeed) unless it is named below with the reason it is not.

README is followed from top to bottom in one shell (what an ``export`` line sets stays set for the
lines after it), in a fresh folder holding the files README's commands name and a link to the
checkout's ``.venv``. Commands come from the ``sh``/``bash`` blocks and from running text
(`` `.venv/bin/maos token --new` ``). ``make`` targets get a dry run (``make -n``), each with the
reason it is not run.
"""
from __future__ import annotations

import os
import re
import select
import shlex
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from core.crypto import new_key_text
from tests.e2e.conftest import free_port
from tests.unit.test_memory_text import pdf_bytes

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"

# Commands that need a running app, a model server or Google: not run here, and where they are.
NOT_RUN = {
    ".venv/bin/maos ask ": "plans and runs a request on a model server (on a fresh machine the embedded model, "
                           "minutes); tests/e2e/test_cli.py runs `maos ask --json` against the simulated LLM server",
    "curl ": "the HTTP API of a running app; tests/e2e/test_http.py, test_memory_http.py and test_google_http.py "
             "drive the same paths",
    "export AUTH=": "the login token of a running app, for the curl lines",
    "export GOOGLE_CLIENT_ID=": "your own Google Cloud OAuth client; tests/e2e/test_cli_google.py uses the fake "
                                "Google's",
    ".venv/bin/maos google connect": "a sign-in at Google; tests/e2e/test_cli_google.py runs it against the fake Google",
    ".venv/bin/maos cluster head": "starts a Ray head and the app, and serves until stopped; "
                                   "tests/cluster/test_cluster_cli.py runs it",
    ".venv/bin/maos cluster join": "joins a running head from another machine; tests/cluster/test_cluster_cli.py runs "
                                   "it, and its refusals (a wrong token, another code version)",
    "scp ": "copies the head's Ray token from the head machine over ssh",
}

# `make` targets are dry-run (`make -n`: the target exists and its recipe expands), not run: why.
MAKE_TARGETS = {
    "setup": "installs everything (about 10 minutes on a fresh clone: llama-cpp compiles); this suite runs in "
             "the venv it made",
    "run": "serves until stopped; tests/e2e/test_make_run.py runs it on a fresh data directory",
    "test": "the suite this test is part of",
    "test-fast": "the suite this test is part of, less the embedded model's test",
    "lint": "ruff and mypy over the tree, minutes",
    "bench": "the benchmarks, many minutes",
}

# What a command run here must say (in stdout or stderr), and its exit status when not 0. The
# placeholders README writes (RUN:STEP, ACTION_ID) name nothing on a fresh machine: the command says so.
SAYS: dict[str, tuple[int, str]] = {
    ".venv/bin/maos status": (0, "app: not running"),
    ".venv/bin/maos cluster status": (1, "no cluster on this machine"),
    ".venv/bin/maos retry RUN:STEP": (2, "cannot retry RUN:STEP: no such task"),
    ".venv/bin/maos memory add handbook.pdf refunds.md --sop --tags billing,refunds": (0, "refunds.md: stored"),
    ".venv/bin/maos memory stats": (0, "sops: 2"),
    ".venv/bin/maos memory rebuild": (0, "rebuilt:"),
    ".venv/bin/maos export finetune --out ft.jsonl": (0, "wrote 0 examples to ft.jsonl"),
    ".venv/bin/maos google status": (0, "Google: not_configured"),
    ".venv/bin/maos approvals list": (0, "0 pending"),
    ".venv/bin/maos approvals approve ACTION_ID": (1, "no action 'ACTION_ID'"),
    ".venv/bin/maos approvals delegates": (0, "your approval delegates: nobody"),
    ".venv/bin/maos token --new": (0, "new login token (shown once)"),
    ".venv/bin/maos tls self-signed --host 192.168.1.20 --host maos.lan": (0, "MAOS_TLS_CERT="),
}

# Placeholders README writes that must be real values to run: the new key and the old one.
FILL: dict[str, Callable[[dict[str, str]], str]] = {
    "ENCRYPTION_KEY=NEW ENCRYPTION_OLD_KEYS=OLD": lambda env: (
        f"ENCRYPTION_KEY={shlex.quote(new_key_text())} ENCRYPTION_OLD_KEYS={shlex.quote(env['ENCRYPTION_KEY'])}"),
}

# Files README's commands name, as a person would have them in the folder.
FILES = {
    "refunds.md": b"# Refunds\n\nRefunds over 500 dollars are approved by the finance lead.\n",
    "handbook.pdf": pdf_bytes("Handbook", "New hires get a laptop on their first day."),
}

SERVES = {".venv/bin/maos dev sim-llm": "sim-llm listening on http://127.0.0.1:{port}"}


@dataclass(frozen=True)
class Command:
    line: int  # README's line
    text: str  # as README shows it (a continued line joined, its comment dropped)


def _code(line: str) -> str:
    return re.sub(r"\s+#\s.*$", "", line).strip()


def readme_commands(text: str) -> list[Command]:
    """The commands of README's ``sh``/``bash`` blocks and of its running text, in README's order."""
    found: list[Command] = []
    for fence in re.finditer(r"^```(\w*)\n(.*?)^```", text, re.S | re.M):
        if fence.group(1) not in ("sh", "bash"):
            continue
        first = text[:fence.start()].count("\n") + 2
        pending = ""
        for n, raw in enumerate(fence.group(2).splitlines()):
            line = _code(f"{pending} {raw.strip()}" if pending else raw)
            pending = line[:-1].rstrip() if line.endswith("\\") else ""
            if line and not pending:
                found.append(Command(first + n, line))
    prose = re.sub(r"^```.*?^```", lambda m: "\n" * m.group(0).count("\n"), text, flags=re.S | re.M)
    for span in re.finditer(r"`([^`\n]+)`", prose):
        if re.match(r"(\w+=\S+ )*(\.venv/bin/|make )", span.group(1)):
            found.append(Command(prose[:span.start()].count("\n") + 1, span.group(1)))
    return sorted(found, key=lambda c: c.line)


COMMANDS = readme_commands(README.read_text(encoding="utf-8"))


def _not_run(command: str) -> str | None:
    return next((why for prefix, why in NOT_RUN.items() if command.startswith(prefix)), None)


def _environment(folder: Path) -> dict[str, str]:
    """A fresh machine's: none of our settings, Google or keys, and no model server answering."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("MAOS_", "RAY_", "OLLAMA_", "GOOGLE_", "ENCRYPTION_"))}
    closed = f"http://127.0.0.1:{free_port()}"
    env.update({"MAOS_OLLAMA_URL": closed, "MAOS_LMSTUDIO_URL": closed, "HOME": str(folder / "home"),
                "PYTHONUNBUFFERED": "1"})
    return env


def _make_dry_run(command: str, env: dict[str, str]) -> None:
    words = shlex.split(command)
    assigned = dict(w.split("=", 1) for w in words[:words.index("make")])
    target = words[words.index("make") + 1]
    assert target in MAKE_TARGETS, f"README shows `{command}`: say in MAKE_TARGETS why it is not run here"
    done = subprocess.run(["make", "-n", target], cwd=ROOT, env={**env, **assigned}, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip(), f"{command}: {done.stderr[-2000:]}"


def _serve(command: str, serves: str, folder: Path, env: dict[str, str]) -> None:
    """A server README starts: on a free port, it says where it listens and answers there."""
    port = free_port()
    words = shlex.split(command)
    words[words.index("--port") + 1] = str(port)
    proc = subprocess.Popen(words, cwd=folder, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 60)
        line = proc.stdout.readline().strip() if ready else ""
        assert line == serves.format(port=port), f"{command}: {line!r}"
        reply = httpx.post(f"http://127.0.0.1:{port}/v1/chat/completions", timeout=30,
                           json={"model": "m", "messages": [{"role": "user", "content": "hello there"}]})
        assert reply.status_code == 200 and reply.json()["choices"][0]["message"]["content"]
    finally:
        proc.terminate()
        assert proc.wait(10) == 0, command


def _run(command: str, folder: Path, env: dict[str, str]) -> tuple[int, str]:
    """One line in the session's shell; an ``export`` carries its variables to the lines after it."""
    dump = folder / "shell-variables"
    script = f"{command}\n__rc=$?\nenv -0 > {shlex.quote(str(dump))}\nexit $__rc\n"
    done = subprocess.run(["bash", "-c", script], cwd=folder, env=env, capture_output=True, text=True, timeout=180)
    if command.startswith("export ") and done.returncode == 0:
        after = dict(item.split("=", 1) for item in dump.read_text().split("\0") if "=" in item)
        for name in re.findall(r"(\w+)=", command.removeprefix("export ")):
            env[name] = after[name]
    return done.returncode, done.stdout + done.stderr


def test_readme_commands_run_on_a_fresh_machine(tmp_path: Path) -> None:
    """README from top to bottom in one shell, in a fresh folder: what it exports stays set."""
    (tmp_path / ".venv").symlink_to(ROOT / ".venv")
    (tmp_path / "home").mkdir()
    for name, data in FILES.items():
        (tmp_path / name).write_bytes(data)
    env = _environment(tmp_path)
    ran, failed = [], []
    for command in COMMANDS:
        text = command.text
        if _not_run(text) is not None:
            continue
        ran.append(text)
        if re.match(r"(\w+=\S+ )*make ", text):
            _make_dry_run(text, env)
            continue
        serves = next((s for prefix, s in SERVES.items() if text.startswith(prefix)), None)
        if serves is not None:
            _serve(text, serves, tmp_path, env)
            continue
        typed = text
        for placeholder, fill in FILL.items():
            if placeholder in typed:
                typed = typed.replace(placeholder, fill(env))
        started = time.monotonic()
        code, out = _run(typed, tmp_path, env)
        status, says = SAYS.get(text, (0, ""))
        if code != status or says not in out:
            failed.append(f"README line {command.line}: `{text}` exited {code} after "
                          f"{time.monotonic() - started:.1f} s (expected {status}, saying {says!r}):\n{out[-2000:]}")
    assert not failed, "\n\n".join(failed)
    assert len(ran) >= 20
    assert len(env["ENCRYPTION_KEY"]) == 44  # `export ENCRYPTION_KEY=$(.venv/bin/maos keys new)`: a 32-byte key
    assert (tmp_path / "ft.jsonl").is_file()  # `maos export finetune --out ft.jsonl` wrote it here


def test_every_exception_names_a_command_readme_shows() -> None:
    commands = [c.text for c in COMMANDS]
    assert len(commands) > 20
    for prefix in NOT_RUN:
        assert any(c.startswith(prefix) for c in commands), f"NOT_RUN names {prefix!r}, which README no longer shows"
    for table in (SAYS, FILL, SERVES):
        for key in table:
            assert any(c.startswith(key) or key in c for c in commands), f"{key!r} is no longer in README"
    targets = {m.group(1) for c in commands if (m := re.search(r"\bmake (\S+)", c))}
    assert targets == set(MAKE_TARGETS)
    run_here = [c for c in commands if _not_run(c) is None and not re.match(r"(\w+=\S+ )*make ", c)]
    assert {".venv/bin/maos status", ".venv/bin/maos dev sim-llm --port 11500",
            ".venv/bin/maos token --new"} <= set(run_here)


def test_the_readme_parser_reads_blocks_continuations_comments_and_running_text() -> None:
    text = ("Intro `.venv/bin/maos token --new` here, `maos ask` not (no path), `make lint` yes.\n\n"
            "```sh\n.venv/bin/maos status             # a comment\ncurl -s -X POST x \\\n     -d '{}'\n```\n\n"
            "```python\nprint('not a command')\n```\n")
    assert readme_commands(text) == [
        Command(1, ".venv/bin/maos token --new"), Command(1, "make lint"), Command(4, ".venv/bin/maos status"),
        Command(6, "curl -s -X POST x -d '{}'")]
