"""Limits of the HTTP layer, on the routes themselves (no Ray; a stand-in for the runtime): an upload
past max_upload_mb is refused while it streams in; test-connection reaches only the configured LLM
hosts and this machine; the LLM URL goes out redacted; tracebacks in the log show no locals."""

from __future__ import annotations

import io
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog
from fastapi import FastAPI

from core.errors import ConfigError
from core.memory_schemas import DocumentInfo, UploadResult
from core.schemas import ConnectionTest, EditableSettings
from core.settings import Settings
from integrations.llm.backend import redact_url
from serve_app import live_settings
from serve_app.api import install_error_handlers
from serve_app.live_settings import LiveSettings, check_probe_target
from serve_app.memory_routes import build_memory_routes
from serve_app.user_limits import UserLimits


class _Memory:
    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    async def ingest(self, user_id: str, filename: str, data: bytes, kind: Any = "doc", tags: Any = ()) -> UploadResult:
        self.calls.append(("ingest", (user_id, filename, data, kind, tags)))
        info = DocumentInfo(id="d1", title=filename, filename=filename, kind=kind, tags=tags, status="indexing",
                            chunks=1, chunks_done=0, bytes=len(data), created_at=0.0)
        return UploadResult(document=info, duplicate=False)


class _App:
    def __init__(self) -> None:
        self.memory = _Memory()


class _Runtime:
    """What the memory routes use of RuntimeAccess."""

    def __init__(self, settings: Settings) -> None:
        self.live = LiveSettings(settings)
        self.the_app = _App()
        self.memory = self.the_app.memory

    async def app(self) -> _App:
        return self.the_app


def _client(tmp_path: Path, max_upload_mb: float) -> tuple[httpx.AsyncClient, _Runtime]:
    rt = _Runtime(Settings(data_dir=tmp_path, max_upload_mb=max_upload_mb))
    api = FastAPI()
    install_error_handlers(api, rt)  # type: ignore[arg-type]  # a stand-in
    api.state.default_user_id = "local"  # the caller and the per-user limits, as build_api sets them
    api.state.user_limits = UserLimits(lambda: rt.live.settings)
    api.include_router(build_memory_routes(rt))  # type: ignore[arg-type]
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=api), base_url="http://127.0.0.1"), rt


BOUNDARY = "maos-test-boundary"


async def _bomb(sent: list[int], total: int, chunk: int = 64 * 1024) -> AsyncIterator[bytes]:
    """A multipart body of ``total`` file bytes, chunked (no Content-Length); counts what was taken."""
    head = (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.txt\"\r\n"
            "Content-Type: text/plain\r\n\r\n").encode()
    sent.append(len(head))
    yield head
    piece = b"a" * chunk
    for _ in range(total // chunk):
        sent.append(len(piece))
        yield piece
    yield f"\r\n--{BOUNDARY}--\r\n".encode()


async def test_an_upload_past_the_limit_is_refused_while_it_streams_in(tmp_path: Path) -> None:
    client, rt = _client(tmp_path, max_upload_mb=1)
    async with client:
        sent: list[int] = []
        total = 64 * 1024 * 1024  # 64 times the limit, sent chunked: no length to check up front
        refused = await client.post("/api/documents", content=_bomb(sent, total),
                                    headers={"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"})
        assert refused.status_code == 413, refused.text
        assert "1 MB" in refused.json()["detail"] and "MAOS_MAX_UPLOAD_MB" in refused.json()["detail"]
        assert sum(sent) < 2 * 1024 * 1024  # the server stopped reading just past the limit
        assert rt.the_app.memory.calls == []

        declared = await client.post("/api/documents", content=b"",
                                     headers={"Content-Type": f"multipart/form-data; boundary={BOUNDARY}",
                                              "Content-Length": str(50 * 1024 * 1024)})
        assert declared.status_code == 413  # refused on its Content-Length, before a byte is read

        ok = await client.post("/api/documents", files={"file": ("notes.md", b"# Notes\nsmall", "text/markdown")},
                               data={"kind": "sop", "tags": "a, b"})
        assert ok.status_code == 202, ok.text
        assert rt.the_app.memory.calls == [("ingest", ("local", "notes.md", b"# Notes\nsmall", "sop", ["a", " b"]))]
        just_over = await client.post("/api/documents", files={"file": ("x.txt", b"x" * (1024 * 1024 + 1))})
        assert just_over.status_code == 413  # the file itself, not only the body, is held to the limit
        bad_kind = await client.post("/api/documents", files={"file": ("a.md", b"# A")}, data={"kind": "secret"})
        assert bad_kind.status_code == 422 and "kind" in bad_kind.json()["detail"]
        no_file = await client.post("/api/documents", data={"kind": "doc"})
        assert no_file.status_code == 422 and "file" in no_file.json()["detail"]
        assert len(rt.the_app.memory.calls) == 1


async def test_test_connection_reaches_only_configured_hosts_and_this_machine(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[tuple[str, str | None]] = []

    async def probe(url: str, provider: str, timeout_s: float = 1.0, api_key: str | None = None) -> list[str]:
        asked.append((url, api_key))
        return ["m1"]

    monkeypatch.setattr(live_settings, "probe", probe)
    settings = Settings(data_dir=tmp_path, llm_provider="openai", llm_base_url="http://user:pw@llm.lan:8080/v1?k=s",
                        llm_api_key="sk-canary")
    for url in ("http://evil.example/", "http://169.254.169.254/latest", "http://10.0.0.9:11434",
                "http://0.0.0.0:8000", "http://127.0.0.1@evil.example", "http://llm.lan.evil.example",
                "http://llm.lan\\@evil.example/"):  # the allowed name as a user name: the host is evil
        with pytest.raises(ConfigError, match="reaches only this machine and the LLM hosts"):
            await live_settings.test_connection(ConnectionTest(provider="ollama", base_url=url), settings)
    assert asked == []  # refused before any request was made
    for url in ("http://127.0.0.1:9", "http://localhost:1234", "http://[::1]:11434", "http://llm.lan:9999"):
        check_probe_target(url, settings)

    shown = redact_url(settings.llm_base_url or "")
    assert shown == "http://llm.lan:8080/v1"
    result = await live_settings.test_connection(ConnectionTest(provider="openai", base_url=shown), settings)
    assert result.ok and asked == [(settings.llm_base_url, "sk-canary")]  # tested as configured, with its key
    await live_settings.test_connection(ConnectionTest(provider="openai", base_url="http://127.0.0.1:1234"), settings)
    assert asked[-1] == ("http://127.0.0.1:1234", None)  # the key goes only to the configured server


async def test_the_llm_url_is_shown_redacted_and_sent_back_unchanged(tmp_path: Path) -> None:
    assert redact_url("http://u:p@h.lan:8080/v1?api_key=k#f") == "http://h.lan:8080/v1"
    assert redact_url("http://[::1]:1234/v1?x=1") == "http://[::1]:1234/v1"
    assert redact_url("http://127.0.0.1:11434") == "http://127.0.0.1:11434"
    live = LiveSettings(Settings(data_dir=tmp_path, llm_base_url="http://u:secret@h.lan:8080/v1?api_key=k"))
    assert live.view().values.llm_base_url == "http://h.lan:8080/v1"
    assert "secret" not in live.view().model_dump_json() and "api_key" not in live.view().model_dump_json()
    # Sent back as shown (a form re-posting every field) is no change: nothing to apply, nothing saved.
    same = await live.update(None, EditableSettings(llm_base_url="http://h.lan:8080/v1"), None)  # type: ignore[arg-type]
    assert same.applied == [] and live.settings.llm_base_url == "http://u:secret@h.lan:8080/v1?api_key=k"


def test_tracebacks_in_the_log_show_no_local_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    from core.logging import configure

    saved = structlog.get_config()
    err = io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    try:
        for fmt in ("console", "json"):
            configure("INFO", fmt)  # type: ignore[arg-type]

            def fail(token: str) -> None:
                prefix = token[:12]  # noqa: F841  # a local a traceback with locals would print
                raise RuntimeError("boom")

            try:
                fail("-".join(("tok", "canary", "0123456789")))  # not in the source lines a traceback shows
            except RuntimeError as exc:
                structlog.get_logger("t").error("failed", exc_info=exc)
    finally:
        structlog.configure(**saved)
    out = err.getvalue()
    assert out.count("RuntimeError") >= 2 and "boom" in out  # the traceback is there, twice
    assert "tok-canary" not in out


def test_the_serve_proxy_cap_answers_413_and_reads_no_further() -> None:
    """serve_app.proxy_limits.BodyCap, as Serve's proxy runs it in front of the app."""
    import asyncio

    from serve_app.proxy_limits import BodyCap

    read_by_app: list[int] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        total = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise RuntimeError("client gone")  # as Serve's proxy does
            total += len(message.get("body", b""))
            if not message.get("more_body"):
                break
        read_by_app.append(total)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    def run(headers: list[tuple[bytes, bytes]], chunks: int) -> tuple[list[dict[str, Any]], int]:
        pulled = 0

        async def receive() -> dict[str, Any]:
            nonlocal pulled
            pulled += 1
            return {"type": "http.request", "body": b"x" * 100, "more_body": pulled < chunks}

        sent: list[dict[str, Any]] = []

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        scope = {"type": "http", "method": "POST", "path": "/api/documents", "headers": headers}
        asyncio.run(BodyCap(app, max_bytes=1000)(scope, receive, send))
        return sent, pulled

    sent, pulled = run([(b"content-length", b"5000")], chunks=50)
    assert sent[0]["status"] == 413 and pulled == 0  # refused on its declared length, nothing read
    sent, pulled = run([], chunks=1_000_000)  # an endless chunked body
    assert sent[0]["status"] == 413 and b"MAOS_MAX_UPLOAD_MB" in sent[1]["body"] and pulled == 11
    assert len(sent) == 2 and read_by_app == []  # the app's own answer (after the cut) is not sent
    sent, _ = run([], chunks=5)
    assert sent[0]["status"] == 200 and read_by_app == [500]
