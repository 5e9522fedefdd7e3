"""The embedded engine on qdrant-edge (`qdrant-edge-py`): one in-process shard per collection under
`path/<collection>/`, with Qdrant's segment storage (batched WAL writes, indexed payload filters).

Used by VectorStore(engine="edge"); same operations as the qdrant-client engine in vectors.py.

qdrant-edge-py 0.9 turns MatchValue(True) into the integer 1, which matches no bool payload value.
So each top-level bool payload value is mirrored as a keyword ("true"/"false") in a shadow field
`_b_<name>`, bool conditions match the shadow, and the shadow never leaves this module.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import qdrant_edge as qe

from core.errors import ConfigError
from memory._filters import Conds, MatchValue

_SCHEMA = {"keyword": qe.PayloadSchemaType.Keyword, "float": qe.PayloadSchemaType.Float,
           "bool": qe.PayloadSchemaType.Bool}
_SHADOW = "_b_"


class EdgeEngine:
    def __init__(self, path: Path, dim: int) -> None:
        self._path = path
        self._dim = dim
        self._shards: dict[str, qe.EdgeShard] = {}

    def _config(self) -> qe.EdgeConfig:
        return qe.EdgeConfig(vectors=qe.EdgeVectorParams(size=self._dim, distance=qe.Distance.Cosine))

    def ensure(self, name: str, indexes: Mapping[str, str]) -> None:
        if name not in self._shards:
            where = self._path / name
            try:
                if where.is_dir() and any(where.iterdir()):
                    self._shards[name] = qe.EdgeShard.load(str(where), self._config())
                else:
                    self._shards[name] = qe.EdgeShard.create(str(where), self._config())
            except Exception as e:  # qdrant-edge raises plain Exception
                if "WouldBlock" in str(e):
                    raise ConfigError(f"vector store at {self._path} is in use by another client") from e
                if "incompatible" in str(e).lower():
                    raise ConfigError(f"collection {name!r} was stored with another vector size than "
                                      f"{self._dim}; rebuild memory (`maos memory rebuild`)") from e
                raise
        shard = self._shards[name]
        have = set(shard.info().payload_schema)
        for field, kind in indexes.items():
            if kind == "bool":
                field, kind = _SHADOW + field, "keyword"
            if field not in have:
                shard.update(qe.UpdateOperation.create_field_index(field, _SCHEMA[kind]))

    def drop(self, name: str) -> None:
        shard = self._shards.pop(name, None)
        if shard is not None:
            shard.close()
        shutil.rmtree(self._path / name, ignore_errors=True)

    def upsert(self, name: str, points: Sequence[tuple[str, list[float], dict[str, Any]]]) -> None:
        self._shards[name].update(qe.UpdateOperation.upsert_points(
            [qe.Point(pid, vec, _shadowed(payload)) for pid, vec, payload in points]))

    def query(self, name: str, vector: list[float], conds: Conds, limit: int,
              score_threshold: float | None) -> list[tuple[str, float, dict[str, Any]]]:
        found = self._shards[name].query(qe.QueryRequest(
            limit=limit, query=qe.Query.Nearest(vector), filter=_filter(conds), with_payload=True,
            score_threshold=score_threshold))
        return [(str(p.id), float(p.score), _unshadowed(p.payload or {})) for p in found]

    def delete(self, name: str, ids: Sequence[str] | None, conds: Conds) -> None:
        selector = _filter(conds, ids)
        assert selector is not None, "VectorStore.delete always passes ids or conditions"
        self._shards[name].update(qe.UpdateOperation.delete_points_by_filter(selector))

    def set_payload(self, name: str, ids: Sequence[str], payload: dict[str, Any]) -> None:
        self._shards[name].update(qe.UpdateOperation.set_payload(list(ids), _shadowed(payload)))

    def count(self, name: str, conds: Conds) -> int:
        return self._shards[name].count(qe.CountRequest(exact=True, filter=_filter(conds)))

    def close(self) -> None:
        for shard in self._shards.values():
            shard.flush()
            shard.close()
        self._shards.clear()


def _filter(conds: Conds, ids: Sequence[str] | None = None) -> qe.Filter | None:
    must: list[Any] = [_condition(k, v) for k, v in conds]
    if ids is not None:
        must.append(qe.HasIdCondition(set(ids)))
    return qe.Filter(must=must) if must else None


def _shadowed(payload: dict[str, Any]) -> dict[str, Any]:
    flags = {_SHADOW + k: "true" if v else "false" for k, v in payload.items() if isinstance(v, bool)}
    return {**payload, **flags}


def _unshadowed(payload: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in payload.items() if not k.startswith(_SHADOW)}


def _condition(key: str, value: MatchValue) -> qe.FieldCondition:
    if isinstance(value, bool):
        return qe.FieldCondition(key=_SHADOW + key, match=qe.MatchValue("true" if value else "false"))
    if isinstance(value, str):
        return qe.FieldCondition(key=key, match=qe.MatchValue(value))
    return qe.FieldCondition(key=key, match=qe.MatchAny(list(value)))
