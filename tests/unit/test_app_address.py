"""Finding the app running on a data directory (``<data_dir>/app.json``): its process must be alive
and its Ray must answer, else a command works on the database file instead of joining a Ray that is
gone (an app stopping: joining would wait for a minute)."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

from actors.runtime.wiring import app_address
from core.settings import Settings


def _app_file(data: Path, pid: int, port: int) -> None:
    data.mkdir(parents=True, exist_ok=True)
    (data / "app.json").write_text(json.dumps({"ray_address": f"127.0.0.1:{port}", "pid": pid}))


def test_an_app_is_found_only_while_its_process_lives_and_its_ray_answers(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    assert app_address(settings) is None  # never started
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        port = listening.getsockname()[1]
        _app_file(settings.data_dir, os.getpid(), port)
        assert app_address(settings) == f"127.0.0.1:{port}"
        _app_file(settings.data_dir, 2**22 + 12345, port)  # no such process
        assert app_address(settings) is None
    _app_file(settings.data_dir, os.getpid(), port)  # the process lives on, its Ray is gone
    assert app_address(settings) is None
