"""The database file held by another process (DuckDB lets one process at a time open it for writing):
opening it waits for that process to let go, and past the wait says which process holds it. This is
what lets `maos tasks`, reading the file while no app runs, and `maos ask` starting an app, meet."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest

from actors.storage.database import DatabaseBusy, open_database
from core.crypto import Sealer, new_key_text

_HOLD = """
import sys, time
from actors.storage.database import open_database
conn = open_database(sys.argv[1], sys.argv[3:])
conn.execute("CREATE TABLE IF NOT EXISTS held (n INTEGER)")
conn.execute("INSERT INTO held VALUES (1)")
print("held", flush=True)
time.sleep(float(sys.argv[2]))
conn.close()
"""


@contextmanager
def _held(path: Path, seconds: float, keys: Sequence[str] = ()) -> Iterator[subprocess.Popen[str]]:
    """Another process with the file open for ``seconds`` (once this yields, it holds it)."""
    proc = subprocess.Popen([sys.executable, "-c", _HOLD, str(path), str(seconds), *keys],
                            stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parents[2])
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
        yield proc
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.parametrize("encrypted", [False, True])
def test_a_file_held_by_another_process_is_waited_for_then_named(tmp_path: Path, encrypted: bool) -> None:
    keys = Sealer.from_text(new_key_text()).derived("duckdb") if encrypted else []
    path = tmp_path / "maos.duckdb"

    with _held(path, 600, keys) as holder:  # held past the wait: a clear error naming the holder
        with pytest.raises(DatabaseBusy, match=rf"in use by another process \(process {holder.pid}\)"):
            open_database(str(path), keys, busy_wait_s=0.5)

    with _held(path, 1.5, keys):  # let go within the wait: opened, with what the holder wrote
        conn = open_database(str(path), keys, busy_wait_s=30)
        assert conn.execute("SELECT count(*) FROM held").fetchone() == (2,)
        conn.close()


def test_a_command_reading_the_file_waits_while_another_process_holds_it(tmp_path: Path) -> None:
    """`maos tasks` with no app running opens the file itself; held for a moment elsewhere, it waits."""
    from tests.e2e.test_cli import cli_env, maos

    env = {k: v for k, v in cli_env(tmp_path / "data", "http://127.0.0.1:9").items() if k != "ENCRYPTION_KEY"}
    (tmp_path / "data").mkdir()
    with _held(tmp_path / "data" / "maos.duckdb", 5):
        listed = maos(["tasks", "--json"], env, timeout=120)
    assert listed.returncode == 0, listed.stderr[-2000:]
    assert listed.stdout.strip() == "[]"
