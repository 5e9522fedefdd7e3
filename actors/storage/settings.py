"""Settings saved from the UI (``settings_overrides``): they overlay the environment's at every start."""

from __future__ import annotations

import json
from typing import Any

import duckdb


def overrides(conn: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    return {name: json.loads(value) for name, value in conn.execute("SELECT name, value FROM settings_overrides").fetchall()}


def save(conn: duckdb.DuckDBPyConnection, values: dict[str, Any], now: float) -> None:
    for name, value in values.items():
        conn.execute(
            "INSERT INTO settings_overrides VALUES (?, ?, ?) ON CONFLICT DO UPDATE SET value = excluded.value, "
            "updated_at = excluded.updated_at",
            [name, json.dumps(value), now],
        )
