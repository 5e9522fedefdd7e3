"""The qdrant-client engine: a Qdrant server at a URL, or qdrant-client's embedded local mode on a
path (pure Python: each point is committed to SQLite on its own and filters scan every payload, so
it is fine for tests and small stores; see benchmarks/memory_bench.py for figures).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from qdrant_client import QdrantClient, models

from core.errors import ConfigError
from memory._filters import Conds, MatchValue

_SCHEMA = {"keyword": models.PayloadSchemaType.KEYWORD, "float": models.PayloadSchemaType.FLOAT,
           "bool": models.PayloadSchemaType.BOOL}
_UPSERT_BATCH = 256


class ClientEngine:
    def __init__(self, dim: int, *, path: Path | None = None, url: str | None = None,
                 api_key: str | None = None) -> None:
        self._dim = dim
        self._server = url is not None
        if path is not None:
            try:
                self._client = QdrantClient(path=str(path))
            except RuntimeError as e:  # the folder lock: another client holds this path
                raise ConfigError(f"vector store at {path} is in use by another client: {e}") from e
        else:
            self._client = QdrantClient(url=url, api_key=api_key)

    def ensure(self, name: str, indexes: Mapping[str, str]) -> None:
        if not self._client.collection_exists(name):
            self._client.create_collection(
                name, vectors_config=models.VectorParams(size=self._dim, distance=models.Distance.COSINE))
        info = self._client.get_collection(name)
        vectors = info.config.params.vectors
        if isinstance(vectors, models.VectorParams) and vectors.size != self._dim:
            raise ConfigError(f"collection {name!r} holds {vectors.size}-dim vectors but the embedder "
                              f"gives {self._dim}; rebuild memory (`maos memory rebuild`)")
        if not self._server:
            return  # local mode ignores keyword/float/bool indexes (it scans payloads) and warns
        have = set(info.payload_schema or {})
        for field, kind in indexes.items():
            if field not in have:
                self._client.create_payload_index(name, field, field_schema=_SCHEMA[kind], wait=True)

    def drop(self, name: str) -> None:
        if self._client.collection_exists(name):
            self._client.delete_collection(name)

    def upsert(self, name: str, points: Sequence[tuple[str, list[float], dict[str, Any]]]) -> None:
        structs = [models.PointStruct(id=pid, vector=vec, payload=payload) for pid, vec, payload in points]
        for i in range(0, len(structs), _UPSERT_BATCH):
            self._client.upsert(name, points=structs[i:i + _UPSERT_BATCH], wait=True)

    def query(self, name: str, vector: list[float], conds: Conds, limit: int,
              score_threshold: float | None) -> list[tuple[str, float, dict[str, Any]]]:
        response = self._client.query_points(name, query=vector, query_filter=_filter(conds),
                                             limit=limit, with_payload=True,
                                             score_threshold=score_threshold)
        return [(str(p.id), float(p.score), dict(p.payload or {})) for p in response.points]

    def delete(self, name: str, ids: Sequence[str] | None, conds: Conds) -> None:
        flt = _filter(conds, ids) or models.Filter()
        self._client.delete(name, points_selector=models.FilterSelector(filter=flt), wait=True)

    def set_payload(self, name: str, ids: Sequence[str], payload: dict[str, Any]) -> None:
        self._client.set_payload(name, payload=payload, points=list(ids), wait=True)

    def count(self, name: str, conds: Conds) -> int:
        return self._client.count(name, count_filter=_filter(conds), exact=True).count

    def close(self) -> None:
        self._client.close()


def _filter(conds: Conds, ids: Sequence[str] | None = None) -> models.Filter | None:
    must: list[models.Condition] = [_condition(k, v) for k, v in conds]
    if ids is not None:
        must.append(models.HasIdCondition(has_id=list(ids)))
    return models.Filter(must=must) if must else None


def _condition(key: str, value: MatchValue) -> models.FieldCondition:
    if isinstance(value, str | bool):
        return models.FieldCondition(key=key, match=models.MatchValue(value=value))
    return models.FieldCondition(key=key, match=models.MatchAny(any=list(value)))
