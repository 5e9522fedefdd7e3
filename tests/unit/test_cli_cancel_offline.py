"""`maos cancel RUN` with no app running: the run is stopped in the database file, and the cancel is
in the audit log as the app's would be (who, why, what was withdrawn); asking again changes nothing."""

from __future__ import annotations

import argparse
import asyncio
import gc
from pathlib import Path

import pytest

from actors.storage.database import database_keys
from actors.store import Store
from core.settings import Settings
from serve_app import cli


def _cancel(settings: Settings, run_id: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """``maos cancel RUN`` as its handler runs it (``main`` would also set up logging for the process)."""
    code = cli._cancel(settings, argparse.Namespace(run_id=run_id, json=False))
    gc.collect()  # its Store, as its process would end: the file is opened by one Store at a time
    return code, capsys.readouterr().out.splitlines()[-1]  # what it prints last (log lines may come first)


def test_a_cancel_on_the_database_file_is_audited_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("MAOS_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    settings = Settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    store = Store(str(settings.db_path), keys=database_keys(settings))
    run = asyncio.run(store.create_run("write a note for each venue", settings.user_id, None))
    store.close()

    assert _cancel(settings, run.id, capsys) == (0, f"cancelled {run.id}: 0 running step(s) stopped, "
                                                    "0 proposal(s) withdrawn")
    assert _cancel(settings, run.id, capsys) == (0, f"{run.id} had already ended: cancelled")

    store = Store(str(settings.db_path), keys=database_keys(settings))
    try:
        entries = asyncio.run(store.audit_entries(settings.user_id, run.id, None, 10))
        view = asyncio.run(store.get_run(run.id))
    finally:
        store.close()
    assert view is not None and view.run.status == "cancelled"
    assert [(e.action, e.actor, e.user_id) for e in entries] == [("run.cancelled", settings.user_id, settings.user_id)]
    assert entries[0].detail == {"by": "person", "reason": f"cancelled by {settings.user_id}", "stopped_steps": 0,
                                 "withdrawn": 0}
