"""Tests' own look into the database behind a Store: checks of what was stored, and deliberate
tampering. The product reaches the database only through the Store's domain operations; these
helpers are for tests alone."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import duckdb
import ray

from actors.agents.context import StoreForUser
from actors.runtime import wiring
from actors.storage import tool_ops
from actors.storage.database import ALIAS
from actors.storage.migrations import migrate
from actors.store import Store
from core.storage_schemas import ToolAnswer, ToolOp


def sql(store: Store, query: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    """``query`` on the database of a Store in this process (between its commits)."""
    cur = store._conn.execute(query, list(params))
    return cur.fetchall() if cur.description else []


def app_sql(app: Any, query: str, params: Sequence[Any] = (), timeout_s: float = 30.0) -> list[tuple[Any, ...]]:
    """``query`` inside a running app's Store actor, on a cursor of its own: it sees what is committed
    (every acknowledged write). Ray runs ``__ray_call__`` on the actor's main thread, not on the event
    loop that group-commits, so the Store's own connection would be shared between two threads (a read
    then returns another statement's result)."""
    values = list(params)

    def run(store: Store) -> list[tuple[Any, ...]]:
        cur = store._conn.cursor()
        try:
            if cur.execute("SELECT 1 FROM duckdb_databases() WHERE database_name = ?", [ALIAS]).fetchone():
                cur.execute(f"USE {ALIAS}")  # an encrypted file is attached, not the default database
            cur.execute(query, values)
            return cur.fetchall() if cur.description else []
        finally:
            cur.close()

    return list(ray.get(wiring.ray_actor(app.store).__ray_call__.remote(run), timeout=timeout_s))


class LocalToolOps:
    """Tools' storage operations answered on one ``:memory:`` database in this process, by the same
    functions the Store runs (it batches them and group-commits the writes). ``conn`` is for checks;
    ``sent`` lists every operation asked, in order."""

    def __init__(self) -> None:
        self.conn = duckdb.connect(":memory:")
        migrate(self.conn)
        self.sent: list[ToolOp] = []

    async def __call__(self, op: ToolOp) -> ToolAnswer:
        self.sent.append(op)
        return tool_ops.answer(self.conn, op, time.time())

    def for_user(self, user_id: str) -> StoreForUser:
        return StoreForUser(user_id, self)
