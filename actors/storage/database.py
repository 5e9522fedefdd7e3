"""Opening the DuckDB file: encrypted at rest whenever ``ENCRYPTION_KEY`` is set.

DuckDB encrypts the whole file, its write-ahead log and its temporary files with AES-256-GCM
(the key is derived from ``ENCRYPTION_KEY`` for this purpose alone), so what a model writes about
an email (a step's result, a summary, a chat message, a memory) is as closed as the tokens are.
DuckDB writes encrypted files only with OpenSSL, which comes with its httpfs extension; the
``duckdb-extension-httpfs`` package carries that extension for the pinned DuckDB version.

The file is brought to the current key on opening: a plain file (from before a key was set) is
copied into an encrypted one, and a file that opens only with a key listed in
``ENCRYPTION_OLD_KEYS`` is copied under the current key. Each copy is written beside the file and
then renamed over it, so a crash leaves either the old file or the new one.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Sequence
from pathlib import Path

import duckdb
import structlog

from core.crypto import Sealer
from core.errors import ConfigError
from core.settings import Settings

_log = structlog.get_logger("maos.database")
ALIAS = "maos"


def database_keys(settings: Settings) -> list[str]:
    """The keys of the DuckDB file: the current one first, then older ones; none when no key is set."""
    sealer = Sealer.from_settings(settings)
    return sealer.derived("duckdb") if sealer else []


class DatabaseBusy(ConfigError):
    """The database file is held by another process: DuckDB lets one process at a time open a file
    for writing (a command reading the file while no app runs, or an app)."""


def open_database(path: str, keys: Sequence[str] = (), read_only: bool = False,
                  threads: int | None = None, busy_wait_s: float = 30.0) -> duckdb.DuckDBPyConnection:
    """A connection whose default database is the file at ``path``, encrypted under ``keys[0]``
    when keys are given (see the module note); plain otherwise. Its configuration is locked.

    A file another process holds is tried again for up to ``busy_wait_s`` (a command that read it
    lets go within a second or two); then :class:`DatabaseBusy` names the process that holds it."""
    deadline = time.monotonic() + busy_wait_s
    pause = 0.05
    while True:
        try:
            return _open(path, keys, read_only, threads)
        except duckdb.IOException as exc:
            if "Could not set lock" not in str(exc):
                raise
            if time.monotonic() >= deadline:
                held = re.search(r"\(PID (\d+)\)", str(exc))
                by = f" (process {held.group(1)})" if held else ""
                raise DatabaseBusy(f"the database {path} is in use by another process{by}: an app on this "
                                   "data directory, or a command reading it") from None
            time.sleep(pause)
            pause = min(pause * 2, 0.5)


def _open(path: str, keys: Sequence[str], read_only: bool, threads: int | None) -> duckdb.DuckDBPyConnection:
    if path == ":memory:" or not keys:
        try:
            return _locked(duckdb.connect(path, read_only=read_only), threads)
        except duckdb.CatalogException as exc:
            if "encrypted" in str(exc):
                raise ConfigError(f"the database {path} is encrypted: set ENCRYPTION_KEY to the key it was "
                                  "written with") from None
            raise
    conn = duckdb.connect()
    _load_openssl(conn)
    file = Path(path)
    attached = not read_only and file.exists() and _bring_to_key(conn, file, keys)
    if not attached:
        _attach_current(conn, file, keys, read_only)
    conn.execute(f"USE {ALIAS}")
    return _locked(conn, threads)


def reader_of(conn: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    """A cursor of ``conn`` for another thread, on the same database (an encrypted file is attached
    rather than the default database, so the cursor is pointed at it)."""
    database = conn.execute("SELECT current_database()").fetchone()
    reader = conn.cursor()
    if database is not None:
        reader.execute(f'USE "{database[0]}"')
    return reader


def _locked(conn: duckdb.DuckDBPyConnection, threads: int | None) -> duckdb.DuckDBPyConnection:
    """No SQL on this connection reaches a file, the network or an extension beyond the database
    it has open (no COPY, read_csv, ATTACH, httpfs, INSTALL/LOAD), and no SQL can turn that back on."""
    if threads is not None:
        conn.execute(f"SET threads = {int(threads)}")
    for statement in ("SET autoinstall_known_extensions = false", "SET autoload_known_extensions = false",
                      "SET allow_community_extensions = false", "SET enable_external_access = false",
                      "SET lock_configuration = true"):
        conn.execute(statement)
    return conn


def _attach_current(conn: duckdb.DuckDBPyConnection, file: Path, keys: Sequence[str], read_only: bool) -> None:
    try:
        _attach(conn, file, keys[0], read_only)
    except duckdb.CatalogException as exc:
        if not (read_only and "not encrypted" in str(exc)):
            raise
        conn.execute(f"ATTACH {_quote(file)} AS {ALIAS} (READ_ONLY)")  # not converted yet: the app does that
    except duckdb.InvalidInputException:
        if not read_only:
            raise
        _attach_any(conn, file, keys[1:], read_only=True)


def _bring_to_key(conn: duckdb.DuckDBPyConnection, file: Path, keys: Sequence[str]) -> bool:
    """The file under ``keys[0]``, copied there if it is plain or under an older key. True when it
    is left attached (it opened under the current key as it was)."""
    try:
        _attach(conn, file, keys[0], read_only=False)
    except duckdb.CatalogException as exc:
        if "not encrypted" not in str(exc):
            raise
        conn.execute(f"ATTACH {_quote(file)} AS old")
        _copy_over(conn, file, keys[0])
        _log.info("database.encrypted", path=str(file))
        return False
    except duckdb.InvalidInputException:  # written under an older key
        _attach_any(conn, file, keys[1:], read_only=False, alias="old")
        _copy_over(conn, file, keys[0])
        _log.info("database.rekeyed", path=str(file))
        return False
    return True


def _attach_any(conn: duckdb.DuckDBPyConnection, file: Path, keys: Sequence[str], read_only: bool,
                alias: str = ALIAS) -> None:
    for key in keys:
        try:
            _attach(conn, file, key, read_only, alias)
            return
        except duckdb.InvalidInputException:
            continue
    raise ConfigError(f"the database {file} does not open with ENCRYPTION_KEY or any key in ENCRYPTION_OLD_KEYS "
                      "(set the key it was written with)")


def _copy_over(conn: duckdb.DuckDBPyConnection, file: Path, key: str) -> None:
    """The database attached as ``old`` copied into a new file under ``key``, renamed over ``file``."""
    fresh = file.with_name(file.name + ".rekey")
    for leftover in (fresh, fresh.with_name(fresh.name + ".wal")):
        leftover.unlink(missing_ok=True)  # from a copy a crash interrupted
    _attach(conn, fresh, key, read_only=False, alias="fresh")
    conn.execute("COPY FROM DATABASE old TO fresh")
    conn.execute("DETACH fresh")
    conn.execute("DETACH old")
    file.with_name(file.name + ".wal").unlink(missing_ok=True)  # DETACH checkpointed it into the old file
    os.replace(fresh, file)


def _attach(conn: duckdb.DuckDBPyConnection, file: Path, key: str, read_only: bool, alias: str = ALIAS) -> None:
    options = f"ENCRYPTION_KEY '{key}'" + (", READ_ONLY" if read_only else "")
    conn.execute(f"ATTACH {_quote(file)} AS {alias} ({options})")


def _quote(file: Path) -> str:
    return "'" + str(file).replace("'", "''") + "'"


def _load_openssl(conn: duckdb.DuckDBPyConnection) -> None:
    version = conn.execute("PRAGMA version").fetchone()[0]  # type: ignore[index]
    try:
        import duckdb_extension_httpfs
    except ImportError:
        raise ConfigError("an encrypted database needs the duckdb-extension-httpfs package (run `make setup`)") from None
    extension = Path(duckdb_extension_httpfs.__file__).parent / "extensions" / version / "httpfs.duckdb_extension"
    if not extension.exists():
        raise ConfigError(f"duckdb-extension-httpfs has no extension for DuckDB {version} (run `make setup`)")
    conn.execute(f"LOAD {_quote(extension)}")
