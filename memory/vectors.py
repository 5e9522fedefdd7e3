"""The vector store: four Qdrant collections, every search filtered to one user.

Synchronous: the Memory actor calls it from one worker thread. Engines:
- url: a Qdrant server (qdrant-client), with payload indexes;
- path, engine="local": qdrant-client's embedded local mode (pure Python; slow past a few
  thousand points: one SQLite commit per point, payload filters scan every point);
- path, engine="edge": qdrant-edge (`qdrant-edge-py`), Qdrant's storage engine in-process.
One client per path: the folder is locked while a store has it open.

With a sealer (``ENCRYPTION_KEY`` set), the text of each point (its ``SEALED_FIELDS``) is stored
AES-256-GCM encrypted, bound to its collection, point and user; the fields that filters use stay
as they are. Points written before a key was set read as they were; `maos memory rebuild` seals them.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal, Protocol

import numpy as np
import structlog

from core.crypto import NONCE_BYTES, Sealed, Sealer
from core.errors import ConfigError
from memory._filters import Conds, MatchValue

_log = structlog.get_logger("maos.memory.vectors")

COLLECTIONS: Final = ("conversations", "documents", "sops", "learnings")
REQUIRED_PAYLOAD: Final = ("user_id", "source", "source_id", "timestamp", "tags")
PAYLOAD_INDEXES: Final[Mapping[str, str]] = {
    "user_id": "keyword", "source": "keyword", "source_id": "keyword", "tags": "keyword",
    "timestamp": "float", "usable": "bool",
}
SEALED_FIELDS: Final = ("text", "title", "heading")
_SEALED = "sealed"

Vector = Sequence[float] | np.ndarray
Engine = Literal["local", "edge"]


@dataclass(frozen=True)
class Point:
    id: str  # a UUID string (Qdrant point ids must be UUIDs or ints)
    vector: Vector
    payload: dict[str, Any]  # always: user_id, source, source_id, timestamp, tags; more allowed


@dataclass(frozen=True)
class Hit:
    id: str
    score: float
    payload: dict[str, Any]


class _Engine(Protocol):
    def ensure(self, name: str, indexes: Mapping[str, str]) -> None: ...
    def drop(self, name: str) -> None: ...
    def upsert(self, name: str, points: Sequence[tuple[str, list[float], dict[str, Any]]]) -> None: ...
    def query(self, name: str, vector: list[float], conds: Conds, limit: int,
              score_threshold: float | None) -> list[tuple[str, float, dict[str, Any]]]: ...
    def delete(self, name: str, ids: Sequence[str] | None, conds: Conds) -> None: ...
    def set_payload(self, name: str, ids: Sequence[str], payload: dict[str, Any]) -> None: ...
    def count(self, name: str, conds: Conds) -> int: ...
    def close(self) -> None: ...


class VectorStore:
    """Qdrant behind the few operations memory needs. Exactly one of `path` / `url`."""

    def __init__(self, dim: int, *, path: Path | None = None, url: str | None = None,
                 api_key: str | None = None, engine: Engine = "local", sealer: Sealer | None = None) -> None:
        if (path is None) == (url is None):
            raise ConfigError("VectorStore needs exactly one of path (embedded) or url (server)")
        self.dim = dim
        self._sealer = sealer
        self._engine: _Engine
        if path is not None:
            path.mkdir(parents=True, exist_ok=True)
        if path is not None and engine == "edge":
            try:
                from memory._qdrant_edge import EdgeEngine
            except ImportError as e:
                raise ConfigError("engine 'edge' needs the qdrant-edge-py package") from e
            self._engine = EdgeEngine(path, dim)
        else:
            from memory._qdrant_client import ClientEngine

            self._engine = ClientEngine(dim, path=path, url=url, api_key=api_key)
        self._ready: set[str] = set()

    def ensure_collections(self) -> None:
        """Create what is missing: cosine collections and their payload indexes."""
        for name in COLLECTIONS:
            self._engine.ensure(name, PAYLOAD_INDEXES)
            self._ready.add(name)

    def reset(self) -> None:
        """Drop and recreate every collection."""
        for name in COLLECTIONS:
            self._engine.drop(name)
        self._ready.clear()
        _log.info("collections_reset", collections=len(COLLECTIONS))
        self.ensure_collections()

    def close(self) -> None:
        self._engine.close()

    def upsert(self, collection: str, points: Sequence[Point]) -> None:
        self._check(collection)
        rows = [(p.id, self._vector(p.vector), self._seal(collection, p.id, _payload(p))) for p in points]
        if rows:
            self._engine.upsert(collection, rows)

    def search(self, collection: str, vector: Vector, *, user_id: str, limit: int,
               match: Mapping[str, MatchValue] | None = None,
               score_threshold: float | None = None) -> list[Hit]:
        """The nearest points of `user_id` only; `match` adds keyword/bool filters (a list = any of)."""
        self._check(collection)
        if match and "user_id" in match:
            raise ValueError("search is always scoped to user_id; do not pass it in match")
        conds: Conds = [("user_id", user_id), *(match or {}).items()]
        found = self._engine.query(collection, self._vector(vector), conds, limit, score_threshold)
        return [Hit(id=pid, score=score, payload=self._open(collection, pid, payload)) for pid, score, payload in found]

    def delete(self, collection: str, *, ids: Sequence[str] | None = None,
               source_id: str | None = None, user_id: str | None = None) -> None:
        """Delete the points matching every selector given (ids AND source_id AND user_id)."""
        self._check(collection)
        conds: Conds = [(k, v) for k, v in (("source_id", source_id), ("user_id", user_id)) if v is not None]
        if ids is None and not conds:
            raise ValueError("delete needs ids, source_id or user_id; use reset() to drop everything")
        if ids is not None and not ids:
            return
        self._engine.delete(collection, None if ids is None else list(ids), conds)

    def set_payload(self, collection: str, ids: Sequence[str], payload: Mapping[str, Any]) -> None:
        """Merge `payload` into the points' payloads (keys not named are kept)."""
        self._check(collection)
        if ids:
            self._engine.set_payload(collection, list(ids), dict(payload))

    def count(self, collection: str, user_id: str | None = None) -> int:
        self._check(collection)
        return self._engine.count(collection, [] if user_id is None else [("user_id", user_id)])

    def _check(self, collection: str) -> None:
        if collection not in COLLECTIONS:
            raise ConfigError(f"unknown memory collection {collection!r}; known: {', '.join(COLLECTIONS)}")
        if collection not in self._ready:
            self._engine.ensure(collection, PAYLOAD_INDEXES)
            self._ready.add(collection)

    def _seal(self, collection: str, point_id: str, payload: dict[str, Any]) -> dict[str, Any]:
        if self._sealer is None:
            return payload
        secret = {k: payload[k] for k in SEALED_FIELDS if k in payload}
        sealed = self._sealer.seal_json(secret, _aad(collection, point_id, payload))
        token = ".".join((sealed.key_id, base64.b64encode(sealed.nonce + sealed.ciphertext).decode()))
        return {**{k: v for k, v in payload.items() if k not in secret}, _SEALED: token}

    def _open(self, collection: str, point_id: str, payload: dict[str, Any]) -> dict[str, Any]:
        token = payload.pop(_SEALED, None)
        if token is None:
            return payload
        if self._sealer is None:
            raise ConfigError("memory was stored encrypted: set ENCRYPTION_KEY to read it")
        kid, blob = str(token).split(".", 1)
        raw = base64.b64decode(blob)
        sealed = Sealed(ciphertext=raw[NONCE_BYTES:], nonce=raw[:NONCE_BYTES], key_id=kid)
        return {**payload, **json.loads(self._sealer.open(sealed, _aad(collection, point_id, payload)))}

    def _vector(self, vector: Vector) -> list[float]:
        values = vector.tolist() if isinstance(vector, np.ndarray) else [float(x) for x in vector]
        if len(values) != self.dim:
            raise ValueError(f"vector has {len(values)} dims; the store holds {self.dim}")
        return values


def _aad(collection: str, point_id: str, payload: Mapping[str, Any]) -> str:
    return f"qdrant.{collection}:{point_id}:{payload['user_id']}"


def _payload(point: Point) -> dict[str, Any]:
    missing = [k for k in REQUIRED_PAYLOAD if k not in point.payload]
    if missing:
        raise ValueError(f"point {point.id} payload lacks {', '.join(missing)}")
    return point.payload
