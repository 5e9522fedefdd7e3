"""The Store's DuckDB connection reaches only its own database: SQL sent through it (a tool's
query, or anything that got hold of the Store) cannot read or write files, reach the network,
load an extension, or switch any of that back on."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from actors.storage.database import open_database
from core.crypto import new_key_text
from core.settings import Settings

ESCAPES = [
    "SELECT * FROM read_csv('/etc/passwd')",
    "SELECT * FROM read_text('/etc/hostname')",
    "COPY (SELECT 1) TO '{dir}/out.csv'",
    "ATTACH '{dir}/other.duckdb' AS other",
    "INSTALL httpfs",
    "LOAD '{dir}/evil.duckdb_extension'",
    "SELECT * FROM read_parquet('https://example.com/x.parquet')",
    "SET enable_external_access = true",
    "SET lock_configuration = false",
    "RESET enable_external_access",
]


@pytest.mark.parametrize("encrypted", [False, True])
def test_no_sql_escapes_the_database(tmp_path: Path, encrypted: bool) -> None:
    from actors.storage.database import database_keys

    keys = database_keys(Settings(data_dir=tmp_path, encryption_key=new_key_text())) if encrypted else []  # type: ignore[arg-type]
    conn = open_database(str(tmp_path / "maos.duckdb"), keys)
    conn.execute("CREATE TABLE t (x INTEGER)")
    conn.execute("INSERT INTO t VALUES (1)")
    for sql in ESCAPES:
        with pytest.raises(duckdb.Error):
            conn.execute(sql.format(dir=tmp_path))
    assert conn.execute("SELECT sum(x) FROM t").fetchone() == (1,)  # its own tables work as before
    assert not (tmp_path / "out.csv").exists() and not (tmp_path / "other.duckdb").exists()
