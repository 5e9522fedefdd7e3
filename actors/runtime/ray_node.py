"""A Ray node of this machine started with Ray's own ``ray start`` (a head, or a node joining one),
as a child process the cluster commands own: started in a session of its own (a terminal's Ctrl-C
reaches the command, which stops the app first and the node last), sent SIGTERM by its parent's
death too, and stopped by signalling that one process — never ``ray stop``, which would stop every
Ray on the machine. Token auth is in the environment it inherits (``use_token_auth``)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import structlog

from core.errors import ConfigError

_log = structlog.get_logger("maos.cluster")
_STARTED = "Ray runtime started"
# Ray gives a new node's raylet a fixed 30 s to register with the GCS; a loaded machine can miss it.
_SLOW_START = "timed out during startup"


def ray_executable() -> str:
    """The ``ray`` command of the environment this process runs in."""
    beside = Path(sys.executable).with_name("ray")
    if beside.exists():
        return str(beside)
    found = shutil.which("ray")
    if found is None:
        raise ConfigError("Ray's `ray` command is not installed in this environment (`make setup` installs it)")
    return found


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Linux: the node gets SIGTERM (and drains, then stops) when the command that started it dies."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@dataclass
class RayNode:
    """One ``ray start`` process; its output goes to ``log_path``."""

    process: subprocess.Popen[bytes]
    log_path: Path
    detached: bool

    @property
    def pid(self) -> int:
        return self.process.pid

    def wait_started(self, timeout_s: float) -> None:
        """Return once Ray says it started; raise ConfigError with the end of its output if it stopped."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            text = self.output()
            if _STARTED in text:
                return
            if self.process.poll() is not None:
                raise ConfigError(f"`ray start` stopped (exit {self.process.returncode}):\n{self.tail()}")
            time.sleep(0.2)
        self.stop()
        raise ConfigError(f"`ray start` did not start within {timeout_s:.0f} s:\n{self.tail()}")

    def output(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def tail(self, lines: int = 15) -> str:
        return "\n".join(self.output().splitlines()[-lines:])

    def running(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout_s: float = 45.0) -> None:
        """SIGTERM to ``ray start``: Ray drains the node (up to 30 s) and stops its processes. Past
        ``timeout_s``, SIGKILL to its process group."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                _log.warning("ray_node.kill", pid=self.process.pid)
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
        _log.info("ray_node.stopped", pid=self.process.pid, code=self.process.returncode)


def start_node(options: list[str], log_path: Path, detach: bool = False) -> RayNode:
    """``ray start OPTIONS`` (with ``--block`` unless ``detach``), its output to ``log_path``."""
    command = [ray_executable(), "start", *options, *([] if detach else ["--block"])]
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True, preexec_fn=None if detach else _die_with_parent)
    _log.info("ray_node.started", pid=process.pid, head="--head" in options, detached=detach)
    return RayNode(process, log_path, detach)


def start_started_node(options: list[str], log_path: Path, timeout_s: float, detach: bool = False,
                       attempts: int = 3) -> RayNode:
    """:func:`start_node`, once Ray says it started: ``ray start`` is run again (up to ``attempts``
    times) when the raylet missed Ray's fixed start-up window on a busy machine."""
    for attempt in range(1, attempts + 1):
        node = start_node(options, log_path, detach)
        try:
            node.wait_started(timeout_s)
            return node
        except ConfigError:
            node.stop()
            if _SLOW_START not in node.output() or attempt == attempts:
                raise
            _log.warning("ray_node.slow_start_retry", attempt=attempt)
    raise AssertionError("unreachable")
