"""Backend resolution against tiny real HTTP servers on 127.0.0.1 (no Ray, no litellm)."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from structlog.testing import capture_logs

from core.errors import ConfigError
from core.settings import Settings
from integrations.llm.backend import Backend, probe, resolve

Routes = dict[str, tuple[int, object]]


class _FakeServer:
    """Answers GET paths from a table; records the Authorization header it saw."""

    def __init__(self, routes: Routes) -> None:
        self.routes = routes
        self.auth: list[str | None] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                owner.auth.append(self.headers.get("Authorization"))
                status, body = owner.routes.get(self.path, (404, {"error": "not found"}))
                raw = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        # A short poll interval only makes shutdown() return quickly at teardown.
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()


@pytest.fixture
def serve() -> Iterator[Callable[[Routes], _FakeServer]]:
    servers: list[_FakeServer] = []

    def start(routes: Routes) -> _FakeServer:
        servers.append(_FakeServer(routes))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


@pytest.fixture
def closed_url() -> str:
    """A loopback URL nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def ollama_tags(*names: str) -> Routes:
    return {"/api/tags": (200, {"models": [{"name": n, "model": n} for n in names]})}


def openai_models(*ids: str) -> Routes:
    return {
        "/v1/models": (200, {"object": "list", "data": [{"id": i, "object": "model"} for i in ids]})
    }


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    return Settings(_env_file=None, data_dir=tmp_path, **overrides)  # type: ignore[call-arg]  # pydantic-settings init-only option


# --- probe ---------------------------------------------------------------------------------


async def test_probe_ollama_lists_model_names(serve: Callable[[Routes], _FakeServer]) -> None:
    server = serve(ollama_tags("llama3.2:latest", "qwen2.5:7b"))
    assert await probe(server.url, "ollama") == ["llama3.2:latest", "qwen2.5:7b"]


async def test_probe_openai_lists_ids_with_or_without_v1(
    serve: Callable[[Routes], _FakeServer],
) -> None:
    server = serve(openai_models("qwen2.5-7b-instruct"))
    assert await probe(server.url, "lmstudio") == ["qwen2.5-7b-instruct"]
    assert await probe(server.url + "/v1/", "openai") == ["qwen2.5-7b-instruct"]


async def test_probe_sends_the_api_key_as_bearer(serve: Callable[[Routes], _FakeServer]) -> None:
    server = serve(openai_models("m"))
    await probe(server.url, "openai", api_key="sk-test")
    assert server.auth == ["Bearer sk-test"]


async def test_probe_is_none_when_nothing_answers(closed_url: str) -> None:
    assert await probe(closed_url, "ollama", timeout_s=0.5) is None
    assert await probe(closed_url, "lmstudio", timeout_s=0.5) is None


async def test_probe_is_none_on_errors_and_wrong_shapes(
    serve: Callable[[Routes], _FakeServer],
) -> None:
    server = serve(
        {
            "/api/tags": (500, {"error": "boom"}),
            "/v1/models": (200, b"not json"),
        }
    )
    assert await probe(server.url, "ollama") is None
    assert await probe(server.url, "openai") is None
    wrong = serve({"/api/tags": (200, {"data": []})})
    assert await probe(wrong.url, "ollama") is None


async def test_probe_gives_empty_list_for_a_server_without_models(
    serve: Callable[[Routes], _FakeServer],
) -> None:
    server = serve(ollama_tags())
    assert await probe(server.url, "ollama") == []


# --- auto ----------------------------------------------------------------------------------


async def test_auto_prefers_ollama(serve: Callable[[Routes], _FakeServer], tmp_path: Path) -> None:
    ollama = serve(ollama_tags("llama3.2:latest"))
    lmstudio = serve(openai_models("other"))
    settings = make_settings(tmp_path, ollama_url=ollama.url, lmstudio_url=lmstudio.url)
    backend = await resolve(settings, start_embedded=_never)
    assert backend == Backend("ollama", ollama.url, "llama3.2:latest", "llama3.2:latest", None)


async def test_auto_falls_to_lmstudio_when_ollama_is_down(
    serve: Callable[[Routes], _FakeServer], closed_url: str, tmp_path: Path
) -> None:
    lmstudio = serve(openai_models("qwen2.5-7b-instruct", "second"))
    settings = make_settings(tmp_path, ollama_url=closed_url, lmstudio_url=lmstudio.url)
    backend = await resolve(settings, start_embedded=_never)
    assert (backend.provider, backend.base_url) == ("lmstudio", lmstudio.url)
    assert backend.planner_model == backend.worker_model == "qwen2.5-7b-instruct"


async def test_auto_skips_an_ollama_without_models(
    serve: Callable[[Routes], _FakeServer], tmp_path: Path
) -> None:
    ollama = serve(ollama_tags())
    lmstudio = serve(openai_models("lm"))
    settings = make_settings(tmp_path, ollama_url=ollama.url, lmstudio_url=lmstudio.url)
    assert (await resolve(settings, start_embedded=_never)).provider == "lmstudio"


async def test_auto_falls_through_to_embedded(
    serve: Callable[[Routes], _FakeServer], closed_url: str, tmp_path: Path
) -> None:
    embedded = serve(openai_models("smollm2-135m-instruct"))
    calls: list[int] = []

    def start_embedded() -> str:
        calls.append(1)
        return embedded.url

    settings = make_settings(
        tmp_path, ollama_url=closed_url, lmstudio_url=closed_url, llm_model="llama3.2"
    )
    backend = await resolve(settings, start_embedded=start_embedded)
    assert calls == [1]
    # llm_model names an Ollama/LM Studio model; the embedded server says what it runs.
    assert backend == Backend(
        "embedded", embedded.url, "smollm2-135m-instruct", "smollm2-135m-instruct", None
    )
    assert backend.litellm_model("planner") == "openai/smollm2-135m-instruct"
    assert backend.litellm_api_base() == embedded.url + "/v1"


async def test_auto_without_embedded_starter_is_a_clear_error(
    closed_url: str, tmp_path: Path
) -> None:
    settings = make_settings(tmp_path, ollama_url=closed_url, lmstudio_url=closed_url)
    with pytest.raises(ConfigError, match="no LLM server answered"):
        await resolve(settings)


# --- explicit providers --------------------------------------------------------------------


async def test_explicit_embedded_uses_the_started_server(
    serve: Callable[[Routes], _FakeServer], tmp_path: Path
) -> None:
    embedded = serve(openai_models("smollm2-135m-instruct"))
    settings = make_settings(tmp_path, llm_provider="embedded")
    backend = await resolve(settings, start_embedded=lambda: embedded.url + "/")
    assert (backend.provider, backend.base_url) == ("embedded", embedded.url)


async def test_explicit_openai_without_url_names_the_variable(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, llm_provider="openai", llm_model="gpt-4o-mini")
    with pytest.raises(ConfigError, match="MAOS_LLM_BASE_URL"):
        await resolve(settings, start_embedded=_never)


async def test_explicit_openai_uses_url_key_and_first_listed_model(
    serve: Callable[[Routes], _FakeServer], tmp_path: Path
) -> None:
    server = serve(openai_models("served-model"))
    settings = make_settings(
        tmp_path,
        llm_provider="openai",
        llm_base_url=server.url + "/v1",
        llm_api_key=SecretStr("sk-secret"),
    )
    with capture_logs() as logs:
        backend = await resolve(settings, start_embedded=_never)
    assert backend == Backend(
        "openai", server.url + "/v1", "served-model", "served-model", "sk-secret"
    )
    chosen = [entry for entry in logs if entry["event"] == "llm_backend"]
    assert chosen and chosen[0]["provider"] == "openai"
    assert "sk-secret" not in repr(logs)
    assert backend.litellm_api_base() == server.url + "/v1"
    assert server.auth == ["Bearer sk-secret"]
    assert "sk-secret" not in repr(backend)


async def test_explicit_ollama_uses_llm_base_url_over_ollama_url(
    serve: Callable[[Routes], _FakeServer], closed_url: str, tmp_path: Path
) -> None:
    server = serve(ollama_tags("mistral:latest"))
    settings = make_settings(
        tmp_path, llm_provider="ollama", llm_base_url=server.url, ollama_url=closed_url
    )
    backend = await resolve(settings, start_embedded=_never)
    assert (backend.base_url, backend.planner_model) == (server.url, "mistral:latest")


async def test_explicit_lmstudio_defaults_to_lmstudio_url(
    serve: Callable[[Routes], _FakeServer], tmp_path: Path
) -> None:
    server = serve(openai_models("lm-model"))
    settings = make_settings(tmp_path, llm_provider="lmstudio", lmstudio_url=server.url)
    backend = await resolve(settings, start_embedded=_never)
    assert backend == Backend("lmstudio", server.url, "lm-model", "lm-model", None)


async def test_explicit_server_without_models_is_a_clear_error(
    serve: Callable[[Routes], _FakeServer], tmp_path: Path
) -> None:
    server = serve(ollama_tags())
    settings = make_settings(tmp_path, llm_provider="ollama", ollama_url=server.url)
    with pytest.raises(ConfigError, match="lists no models.*MAOS_LLM_MODEL"):
        await resolve(settings, start_embedded=_never)


async def test_explicit_unreachable_server_without_model_is_a_clear_error(
    closed_url: str, tmp_path: Path
) -> None:
    settings = make_settings(tmp_path, llm_provider="lmstudio", lmstudio_url=closed_url)
    with pytest.raises(ConfigError, match="does not answer.*MAOS_LLM_MODEL"):
        await resolve(settings, start_embedded=_never)


# --- model overlays ------------------------------------------------------------------------


async def test_llm_model_overlays_the_listed_default(
    serve: Callable[[Routes], _FakeServer], tmp_path: Path
) -> None:
    server = serve(ollama_tags("first:latest", "big:70b"))
    settings = make_settings(tmp_path, ollama_url=server.url, llm_model="big:70b")
    backend = await resolve(settings, start_embedded=_never)
    assert (backend.planner_model, backend.worker_model) == ("big:70b", "big:70b")


async def test_worker_model_overlays_separately(
    serve: Callable[[Routes], _FakeServer], tmp_path: Path
) -> None:
    server = serve(ollama_tags("first:latest", "small:1b"))
    settings = make_settings(tmp_path, ollama_url=server.url, llm_worker_model="small:1b")
    backend = await resolve(settings, start_embedded=_never)
    assert (backend.planner_model, backend.worker_model) == ("first:latest", "small:1b")
    assert backend.model_for("planner") == "first:latest"
    assert backend.model_for("worker") == "small:1b"


async def test_explicit_model_works_while_the_server_is_down(
    closed_url: str, tmp_path: Path
) -> None:
    settings = make_settings(
        tmp_path, llm_provider="ollama", ollama_url=closed_url, llm_model="llama3.2"
    )
    backend = await resolve(settings, start_embedded=_never)
    assert (backend.provider, backend.planner_model) == ("ollama", "llama3.2")


# --- litellm strings -----------------------------------------------------------------------


async def test_logged_urls_drop_credentials(
    serve: Callable[[Routes], _FakeServer], tmp_path: Path
) -> None:
    server = serve(openai_models("m"))
    url = server.url.replace("http://", "http://user:hunter2@")
    settings = make_settings(tmp_path, llm_provider="openai", llm_base_url=url)
    with capture_logs() as logs:
        await resolve(settings, start_embedded=_never)
    assert "hunter2" not in repr(logs)


def test_litellm_model_and_api_base_per_provider() -> None:
    ollama = Backend("ollama", "http://127.0.0.1:11434/", "llama3.2", "qwen2.5:0.5b", None)
    assert ollama.litellm_model("planner") == "ollama_chat/llama3.2"
    assert ollama.litellm_model("worker") == "ollama_chat/qwen2.5:0.5b"
    assert ollama.litellm_api_base() == "http://127.0.0.1:11434"
    for provider in ("lmstudio", "openai", "embedded"):
        b = Backend(provider, "http://127.0.0.1:1234", "p", "w", None)
        assert (b.litellm_model("planner"), b.litellm_model("worker")) == ("openai/p", "openai/w")
        assert b.litellm_api_base() == "http://127.0.0.1:1234/v1"
    already = Backend("openai", "https://llm.example/v1/", "m", "m", "k")
    assert already.litellm_api_base() == "https://llm.example/v1"


def _never() -> str:
    raise AssertionError("the embedded model must not start when a server answers")
