"""The open database as the Store actor uses it: one connection (migrated), its group commit and run
event log, and a reader thread with a connection of its own for tools' reads. Every operation is a
plain function of this package, run in a transaction of the group commit (``write``, ``apply``,
``logged``: an acknowledged write is a committed one), on the connection, or on the reader thread.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import duckdb

from actors.storage.commit import GroupCommit
from actors.storage.database import open_database, reader_of
from actors.storage.events import EventLog
from actors.storage.migrations import migrate

T = TypeVar("T")


class Engine:
    """The database file, opened once (``keys``: its encryption keys, current first)."""

    def __init__(self, db_path: str, keys: Sequence[str], commit_interval_s: float, threads: int = 1,
                 busy_wait_s: float = 30.0) -> None:
        if db_path != ":memory:":
            Path(db_path).parent.mkdir(parents=True, exist_ok=True)
        self.conn = open_database(db_path, keys, threads=threads, busy_wait_s=busy_wait_s)
        migrate(self.conn)
        self._reader = ThreadPoolExecutor(1, thread_name_prefix="store-read")  # tools' reads
        self._read_conn = reader_of(self.conn)  # used only in the reader thread
        self.events = EventLog()
        self.commit = GroupCommit(self.conn, self.events, commit_interval_s)

    async def submit(self, fn: Callable[[duckdb.DuckDBPyConnection], T]) -> T:
        """``fn(conn)`` in the group commit."""
        return await self.commit.submit(fn)

    async def write(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(conn, *args, now)`` in the group commit (``now`` taken in the transaction)."""
        return await self.commit.submit(lambda conn: fn(conn, *args, time.time()))

    async def apply(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(conn, *args)`` in the group commit."""
        return await self.commit.submit(lambda conn: fn(conn, *args))

    async def logged(self, fn: Callable[..., T], *args: Any) -> T:
        """As :meth:`write`, for a function that appends run events: ``fn(conn, log, *args, now)``."""
        return await self.commit.submit(lambda conn: fn(conn, self.events, *args, time.time()))

    async def read_aside(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(conn, *args, now)`` on the reader thread: a long read holds up no commit."""
        return await asyncio.get_running_loop().run_in_executor(
            self._reader, lambda: fn(self._read_conn, *args, time.time()))

    def close(self) -> None:
        """Close the database (writes not yet committed are dropped)."""
        self.commit.stop()
        self._reader.submit(self._read_conn.close).result()
        self._reader.shutdown()
        self.conn.close()
