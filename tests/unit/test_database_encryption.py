"""The DuckDB file under ENCRYPTION_KEY: a plain file is encrypted on opening, a file under an
older key is re-keyed, and a missing or wrong key is a clear error, never a silent plain file."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from actors._database import database_keys, open_database
from actors.store import Store
from core.crypto import Sealer, new_key_text
from core.errors import ConfigError
from core.settings import Settings


def _bytes(folder: Path) -> bytes:
    return b"".join(p.read_bytes() for p in folder.glob("maos.duckdb*"))


def test_plain_file_is_encrypted_then_rekeyed_and_wrong_keys_are_refused(tmp_path: Path) -> None:
    path = str(tmp_path / "maos.duckdb")
    store = Store(path)
    asyncio.run(store.write("INSERT INTO users VALUES ('u1', 'CanaryName5521', 'canary5521@example.test', 0)"))
    store.close()
    assert b"CanaryName5521" in _bytes(tmp_path)  # the check below can fail

    old, new = new_key_text(), new_key_text()
    store = Store(path, keys=Sealer.from_text(old).derived("duckdb"))
    assert asyncio.run(store.read("SELECT name FROM users")) == [("CanaryName5521",)]
    asyncio.run(store.write("INSERT INTO users VALUES ('u2', 'CanaryName5522', NULL, 0)"))
    assert asyncio.run(store.read("SELECT count(*) FROM users")) == [(2,)]  # tools' reader sees the commit
    store.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["maos.duckdb"]
    assert b"CanaryName552" not in _bytes(tmp_path)

    rotated = Sealer.from_text(new, old).derived("duckdb")
    store = Store(path, keys=rotated)
    assert asyncio.run(store.read("SELECT count(*) FROM users")) == [(2,)]
    store.close()
    with pytest.raises(ConfigError, match="does not open with ENCRYPTION_KEY"):
        Store(path, keys=Sealer.from_text(old).derived("duckdb"))  # the file is under the new key now
    with pytest.raises(ConfigError, match="is encrypted: set ENCRYPTION_KEY"):
        Store(path)
    reader = open_database(path, rotated[:1], read_only=True)
    assert reader.execute("SELECT count(*) FROM schema_migrations").fetchone()[0] >= 5  # type: ignore[index]
    reader.close()


def test_keys_come_from_the_settings_and_differ_from_the_token_key(tmp_path: Path) -> None:
    assert database_keys(Settings(data_dir=tmp_path)) == []
    key = new_key_text()
    keys = database_keys(Settings(data_dir=tmp_path, encryption_key=key, encryption_old_keys=new_key_text()))
    assert len(keys) == 2 and keys[0] == Sealer.from_text(key).derived("duckdb")[0]
    assert bytes.fromhex(keys[0]) != Sealer.from_text(key)._raw[0]  # one secret never keys two ciphers
