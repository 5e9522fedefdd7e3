"""A simulated LLM server for tests and benchmarks — a test tool, never a product fallback.

A real HTTP server on 127.0.0.1 speaking Ollama (``/api/chat``, ``/api/show``, ``/api/tags``,
``/api/version``, ``/api/embed``) and OpenAI (``/v1/chat/completions``, ``/v1/models``, ``/v1/embeddings``), so tests drive the real
litellm client. Replies are computed from the request (see ``_sim_replies``); timing, parallel
slots and failures are knobs of :class:`SimConfig`, changeable at run time through
``/_sim/config``; ``tool_format`` makes it write tool calls as text, as a model family does
(see ``_sim_formats`` and the transcripts). Every chat request is recorded in :attr:`SimLLMServer.log` (``/_sim/log``).
Tests run it in a thread through :mod:`maos_testing.llm.sim_thread`; `maos dev sim-llm` runs it as a process.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import random
import signal
import time
from typing import Any, TypeVar

from aiohttp import web

from maos_testing.llm import _sim_embed as sim_embed
from maos_testing.llm import _sim_formats as formats
from maos_testing.llm import _sim_wire as wire
from maos_testing.llm._sim_replies import reply_for
from maos_testing.llm._sim_request import Reply, SimRequest, WireProtocol, task_id_of, word_count
from maos_testing.llm._sim_state import Overflow, SimConfig, Slots

_T = TypeVar("_T")
__all__ = ["Overflow", "SimConfig", "SimLLMServer", "main", "serve"]
_BUSY = "server busy, please try again.  maximum pending requests exceeded"


class SimLLMServer:
    """The simulated server on the current event loop."""

    def __init__(self, config: SimConfig | None = None) -> None:
        self.config = config if config is not None else SimConfig()
        self.log: list[dict[str, Any]] = []
        self.port: int | None = None
        self._seq = 0
        self._lookups = 0  # /api/show requests (model information)
        self._rng = random.Random(self.config.seed)
        self._slots = Slots()
        self._runner: web.AppRunner | None = None

    # --- life cycle ----------------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Listen on ``host:port`` (0: any free port); returns the base URL."""
        if self._runner is not None:
            raise RuntimeError("the sim LLM server is already running")
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.add_routes([
            web.post("/api/chat", self._ollama_chat),
            web.post("/api/show", self._show),
            web.get("/api/tags", self._tags),
            web.get("/api/version", self._version),
            web.post("/api/embed", self._ollama_embed),
            web.post("/v1/embeddings", self._openai_embed),
            web.post("/v1/chat/completions", self._openai_chat),
            web.get("/v1/models", self._models),
            web.get("/_sim/log", self._get_log),
            web.get("/_sim/config", self._get_config),
            web.post("/_sim/config", self._post_config),
            web.post("/_sim/reset", self._reset),
            web.get("/_sim/stats", self._stats),
        ])
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.2)
        await runner.setup()
        site = web.TCPSite(runner, host, port, backlog=2048, reuse_address=True, shutdown_timeout=0.2)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self._slots = Slots()
        server = getattr(site, "_server", None)
        sockets = getattr(server, "sockets", None) or []
        self.port = int(sockets[0].getsockname()[1]) if sockets else port
        return f"http://{host}:{self.port}"

    async def stop(self) -> None:
        """Close the listener and drop open connections (in-flight requests are cut off)."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    # --- control -------------------------------------------------------------------------------

    def update(self, **knobs: Any) -> None:
        self.config.update(**knobs)
        if "seed" in knobs:
            self._rng = random.Random(self.config.seed)
        self._slots.wake(self.config.slots)

    def reset(self) -> None:
        """Clear the log and the counters."""
        self.log.clear()
        self._seq = 0
        self._lookups = 0
        self._slots.peak = self._slots.in_flight
        self._rng = random.Random(self.config.seed)

    def stats(self) -> dict[str, int]:
        return {"in_flight": self._slots.in_flight, "waiting": len(self._slots.waiters),
                "peak_in_flight": self._slots.peak, "requests": self._seq, "model_lookups": self._lookups}

    async def _tags(self, request: web.Request) -> web.Response:
        return web.json_response(wire.ollama_tags(self.config.model))

    async def _embeddings(self, request: web.Request) -> tuple[list[list[float]], int] | web.Response:
        """The vectors of the request's input, and its token count (one per word here)."""
        body = await _read_json(request)
        texts = body.get("input") if body is not None else None
        if isinstance(texts, str):
            texts = [texts]
        if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
            return web.json_response({"error": "input: expected a string or a list of strings"}, status=400)
        self._seq += 1
        self.log.append({"seq": self._seq, "kind": "embed", "task_id": None, "status": 200, "inputs": len(texts),
                          "model": str(body.get("model") if body else ""), "t_received": time.time()})
        return [sim_embed.embed(t) for t in texts], sum(len(t.split()) for t in texts)

    async def _ollama_embed(self, request: web.Request) -> web.Response:
        got = await self._embeddings(request)
        if isinstance(got, web.Response):
            return got
        vectors, tokens = got
        return web.json_response({"model": self.config.model, "embeddings": vectors, "prompt_eval_count": tokens})

    async def _openai_embed(self, request: web.Request) -> web.Response:
        got = await self._embeddings(request)
        if isinstance(got, web.Response):
            return got
        vectors, tokens = got
        return web.json_response({"object": "list", "model": self.config.model, "data": [
            {"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)],
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})

    async def _version(self, request: web.Request) -> web.Response:
        return web.json_response({"version": "0.9.0-sim"})

    async def _models(self, request: web.Request) -> web.Response:
        return web.json_response(wire.openai_models(self.config.model))

    async def _show(self, request: web.Request) -> web.Response:
        body = await _read_json(request) or {}
        self._lookups += 1
        return web.json_response(wire.ollama_show(str(body.get("model") or body.get("name") or self.config.model)))

    async def _stats(self, request: web.Request) -> web.Response:
        return web.json_response(self.stats())

    async def _get_config(self, request: web.Request) -> web.Response:
        return web.json_response(dataclasses.asdict(self.config))

    async def _get_log(self, request: web.Request) -> web.Response:
        records = list(self.log)
        if request.query.get("clear") in ("1", "true", "yes"):
            self.log.clear()
        return web.json_response(records)

    async def _post_config(self, request: web.Request) -> web.Response:
        body = await _read_json(request)
        if body is None:
            return web.json_response({"error": "the body must be a JSON object of knobs"}, status=400)
        try:
            self.update(**body)
        except ValueError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        return web.json_response(dataclasses.asdict(self.config))

    async def _reset(self, request: web.Request) -> web.Response:
        self.reset()
        return web.json_response({"ok": True})

    # --- chat ----------------------------------------------------------------------------------

    async def _ollama_chat(self, request: web.Request) -> web.StreamResponse:
        return await self._chat(request, "ollama")

    async def _openai_chat(self, request: web.Request) -> web.StreamResponse:
        return await self._chat(request, "openai")

    async def _chat(self, request: web.Request, protocol: WireProtocol) -> web.StreamResponse:
        t_received = time.time()
        self._seq += 1
        seq = self._seq
        body = await _read_json(request)
        if body is None:
            return web.Response(status=400, body=wire.error_body(protocol, 400, "the body is not a JSON object"),
                                content_type="application/json")
        req = wire.parse_request(protocol, body)
        cfg = self.config
        last_user = req.last("user")
        record: dict[str, Any] = {
            "seq": seq, "protocol": protocol, "kind": "error", "task_id": task_id_of(req), "stream": req.stream,
            "status": 200, "t_received": t_received, "t_started": None, "t_done": None,
            "tokens_in": sum(word_count(c) for _, c in req.messages), "tokens_out": 0,
            "model": req.model, "last_user": last_user[:200], "body": body if cfg.log_bodies else None,
        }
        if cfg.fail_next > 0 or (cfg.fail_rate > 0 and self._rng.random() < cfg.fail_rate):
            cfg.fail_next = max(0, cfg.fail_next - 1)
            return self._error(record, protocol, cfg.fail_status, "simulated failure (fail_next/fail_rate)")
        slots = self._slots  # a restart swaps in fresh slots; release the ones taken here
        if cfg.overflow == "503":
            if not slots.try_acquire(cfg.slots):
                return self._error(record, protocol, 503, _BUSY)
        else:
            await slots.acquire(cfg.slots)
        try:
            record["t_started"] = time.time()
            reply = formats.as_text(cfg.tool_format, req,
                                    reply_for(req, cfg.reply_tokens, "all" if cfg.obey == "all" else "last"))
            record["kind"] = reply.kind
            if cfg.log_bodies:
                record["reply"] = reply.text
            if reply.status != 200:
                return self._error(record, protocol, reply.status, reply.text)
            if req.stream:
                return await self._stream(request, req, reply, seq, record)
            return await self._whole(req, reply, seq, record)
        finally:
            slots.release(self.config.slots)

    async def _whole(self, req: SimRequest, reply: Reply, seq: int, record: dict[str, Any]) -> web.Response:
        cfg = self.config
        n = len(reply.tokens())
        timed = cfg.timed_tokens(n)
        delay = cfg.ttft_ms / 1000 + reply.slow_s + (timed - 1) * cfg.token_ms / 1000
        if delay > 0:
            await asyncio.sleep(delay)
        record["tokens_out"] = n
        body = wire.full_body(req, reply, seq, record["tokens_in"], n, time.time() - record["t_received"])
        self._record(record)
        return web.Response(body=body, content_type="application/json")

    async def _stream(self, request: web.Request, req: SimRequest, reply: Reply, seq: int,
                      record: dict[str, Any]) -> web.StreamResponse:
        cfg = self.config
        tokens = reply.tokens()
        n = len(tokens)
        per_token = cfg.token_ms / 1000
        timed = cfg.timed_tokens(n)
        first_delay = cfg.ttft_ms / 1000 + reply.slow_s
        if reply.tool_name is not None:  # a tool call goes out whole, when it is complete
            first_delay += (timed - 1) * per_token
        if first_delay > 0:
            await asyncio.sleep(first_delay)
        content_type = "application/x-ndjson" if req.protocol == "ollama" else "text/event-stream"
        resp = web.StreamResponse(headers={"Content-Type": content_type, "Cache-Control": "no-cache"})
        record["tokens_out"] = n
        try:
            await resp.prepare(request)
            if reply.tool_name is not None:
                await resp.write(wire.stream_tool_call(req, reply, seq))
            else:
                await self._write_tokens(resp, req, seq, tokens, per_token, timed)
            elapsed = time.time() - record["t_received"]
            await resp.write(wire.stream_end(req, reply, seq, record["tokens_in"], n, elapsed))
            await resp.write_eof()
        except ConnectionError:  # the client went away mid-stream
            record["status"] = 499
        self._record(record)
        return resp

    @staticmethod
    async def _write_tokens(resp: web.StreamResponse, req: SimRequest, seq: int, tokens: list[str],
                            per_token: float, timed: int) -> None:
        """First token now, the next ``timed - 1`` on a fixed schedule, the rest at once.

        Tokens due together go in one write.
        """
        await resp.write(wire.stream_chunk(req, seq, tokens[0], first=True))
        loop = asyncio.get_running_loop()
        t_first = loop.time()
        i = 1
        while i < timed and per_token > 0:
            wait = t_first + i * per_token - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            now = loop.time() + 0.002
            j = i + 1
            while j < timed and t_first + j * per_token <= now:
                j += 1
            await resp.write(b"".join(wire.stream_chunk(req, seq, t, first=False) for t in tokens[i:j]))
            i = j
        if i < len(tokens):
            await resp.write(b"".join(wire.stream_chunk(req, seq, t, first=False) for t in tokens[i:]))

    def _error(self, record: dict[str, Any], protocol: WireProtocol, status: int, message: str) -> web.Response:
        record["status"] = status
        self._record(record)
        return web.Response(status=status, body=wire.error_body(protocol, status, message),
                            content_type="application/json")

    def _record(self, record: dict[str, Any]) -> None:
        record["t_done"] = time.time()
        self.log.append(record)
        if len(self.log) > self.config.log_max * 1.1:
            del self.log[: len(self.log) - self.config.log_max]


async def _read_json(request: web.Request) -> dict[str, Any] | None:
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError, ValueError):
        return None
    return body if isinstance(body, dict) else None


# --- as a process ----------------------------------------------------------------------------


def serve(host: str, port: int, config: SimConfig) -> None:
    """Run until SIGINT/SIGTERM; prints ``sim-llm listening on http://HOST:PORT`` once listening."""

    async def run() -> None:
        server = SimLLMServer(config)
        url = await server.start(host, port)
        print(f"sim-llm listening on {url}", flush=True)
        done = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, done.set)
        try:
            await done.wait()
        finally:
            await server.stop()

    asyncio.run(run())


def main(argv: list[str] | None = None) -> None:
    """``maos dev sim-llm``: run the simulated LLM server in the foreground."""
    d = SimConfig()
    p = argparse.ArgumentParser(prog="maos dev sim-llm", description="Simulated LLM server (a test tool).")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0: any free port (printed)")
    p.add_argument("--ttft-ms", type=float, default=d.ttft_ms)
    p.add_argument("--token-ms", type=float, default=d.token_ms)
    p.add_argument("--reply-tokens", type=int, default=d.reply_tokens)
    p.add_argument("--slots", type=int, default=d.slots)
    p.add_argument("--overflow", choices=("queue", "503"), default=d.overflow)
    p.add_argument("--fail-rate", type=float, default=d.fail_rate)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--model", default=d.model)
    p.add_argument("--obey", choices=("last", "all"), default=d.obey,
                   help="all: obey every instruction, in every form, found in what the model reads")
    p.add_argument("--tool-format", default=d.tool_format, choices=(formats.NATIVE, *sorted(formats.styles())),
                   help="write tool calls as text, as this family's style does (native: the API's field)")
    a = p.parse_args(argv)
    config = SimConfig()
    config.update(ttft_ms=a.ttft_ms, token_ms=a.token_ms, reply_tokens=a.reply_tokens, slots=a.slots,
                  overflow=a.overflow, fail_rate=a.fail_rate, seed=a.seed, model=a.model, obey=a.obey,
                  tool_format=a.tool_format)
    serve(a.host, a.port, config)


if __name__ == "__main__":
    main()
