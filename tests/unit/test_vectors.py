"""VectorStore on embedded Qdrant in a tmp dir, with deterministic random vectors.

Every test runs on both embedded engines: qdrant-client's local mode and qdrant-edge (skipped
where qdrant-edge-py is not installed).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from core.errors import ConfigError
from memory.vectors import COLLECTIONS, Engine, Point, VectorStore

DIM = 16


@pytest.fixture(params=["local", "edge"])
def engine(request: pytest.FixtureRequest) -> Engine:
    if request.param == "edge":
        pytest.importorskip("qdrant_edge")
    return request.param  # type: ignore[no-any-return]  # pytest types param as Any


def _unit(rng: np.random.Generator) -> np.ndarray:
    v = rng.standard_normal(DIM).astype(np.float32)
    return v / np.linalg.norm(v)


def _point(vec: np.ndarray, user: str, source_id: str, **extra: Any) -> Point:
    payload = {"user_id": user, "source": "upload", "source_id": source_id, "timestamp": 1.0,
               "tags": [], **extra}
    return Point(id=str(uuid.uuid4()), vector=vec, payload=payload)


@pytest.fixture
def store(tmp_path: Path, engine: Engine) -> Iterator[VectorStore]:
    s = VectorStore(DIM, path=tmp_path / "q", engine=engine)
    s.ensure_collections()
    yield s
    s.close()


def test_search_is_scoped_to_the_user(store: VectorStore) -> None:
    rng = np.random.default_rng(1)
    query = _unit(rng)
    mine = [_point(_unit(rng), "alice", f"a{i}") for i in range(5)]
    # bob's point is the query itself: the best match of all, and must never reach alice
    theirs = _point(query, "bob", "b0")
    store.upsert("documents", [*mine, theirs])
    hits = store.search("documents", query, user_id="alice", limit=10)
    assert {h.id for h in hits} == {p.id for p in mine}
    assert all(h.payload["user_id"] == "alice" for h in hits)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    bob = store.search("documents", query, user_id="bob", limit=10)
    assert [h.id for h in bob] == [theirs.id] and bob[0].score == pytest.approx(1.0, abs=1e-5)
    assert store.search("documents", query, user_id="carol", limit=10) == []
    assert store.search("sops", query, user_id="alice", limit=10) == []  # collections are apart


def test_match_filters_keyword_any_and_bool(store: VectorStore) -> None:
    rng = np.random.default_rng(2)
    pts = [
        _point(_unit(rng), "u", "s1", tags=["billing", "urgent"], usable=True),
        _point(_unit(rng), "u", "s2", tags=["hr"], usable=False),
        _point(_unit(rng), "u", "s3", tags=["billing"], usable=True),
    ]
    store.upsert("learnings", pts)
    q = _unit(rng)

    def ids(**match: Any) -> set[str]:
        return {h.id for h in store.search("learnings", q, user_id="u", limit=10, match=match)}

    assert ids(source_id="s2") == {pts[1].id}
    assert ids(tags="billing") == {pts[0].id, pts[2].id}
    assert ids(tags=["hr", "urgent"]) == {pts[0].id, pts[1].id}
    assert ids(usable=True) == {pts[0].id, pts[2].id}
    assert ids(usable=False, tags="hr") == {pts[1].id}
    assert ids(source_id=[]) == set()
    with pytest.raises(ValueError, match="user_id"):
        store.search("learnings", q, user_id="u", limit=5, match={"user_id": "other"})


def test_score_threshold(store: VectorStore) -> None:
    rng = np.random.default_rng(3)
    q = _unit(rng)
    near, far = _point(q, "u", "near"), _point(-q, "u", "far")
    store.upsert("documents", [near, far])
    hits = store.search("documents", q, user_id="u", limit=5, score_threshold=0.5)
    assert [h.id for h in hits] == [near.id]


def test_delete_by_source_id_ids_and_user(store: VectorStore) -> None:
    rng = np.random.default_rng(4)
    a = [_point(_unit(rng), "u", "doc-a") for _ in range(3)]
    b = [_point(_unit(rng), "u", "doc-b") for _ in range(2)]
    other = [_point(_unit(rng), "v", "doc-a") for _ in range(2)]
    store.upsert("documents", [*a, *b, *other])
    assert store.count("documents") == 7
    store.delete("documents", source_id="doc-a", user_id="u")
    assert store.count("documents", user_id="u") == 2
    assert store.count("documents", user_id="v") == 2  # same source_id, other user: kept
    store.delete("documents", ids=[b[0].id])
    assert store.count("documents", user_id="u") == 1
    store.delete("documents", ids=[])  # nothing named, nothing deleted
    assert store.count("documents") == 3
    store.delete("documents", user_id="v")
    assert store.count("documents") == 1
    with pytest.raises(ValueError):
        store.delete("documents")


def test_set_payload_merges(store: VectorStore) -> None:
    rng = np.random.default_rng(5)
    p = _point(_unit(rng), "u", "s", usable=False)
    store.upsert("learnings", [p])
    store.set_payload("learnings", [p.id], {"usable": True, "note": "approved"})
    [hit] = store.search("learnings", _unit(rng), user_id="u", limit=1, match={"usable": True})
    assert hit.id == p.id and hit.payload["note"] == "approved" and hit.payload["source_id"] == "s"


def test_upsert_overwrites_same_id(store: VectorStore) -> None:
    rng = np.random.default_rng(6)
    p = _point(_unit(rng), "u", "s")
    store.upsert("sops", [p])
    store.upsert("sops", [Point(id=p.id, vector=p.vector, payload={**p.payload, "source_id": "t"})])
    assert store.count("sops") == 1
    [hit] = store.search("sops", p.vector, user_id="u", limit=5)
    assert hit.payload["source_id"] == "t"


def test_count_and_reset(store: VectorStore) -> None:
    rng = np.random.default_rng(7)
    for name in COLLECTIONS:
        store.upsert(name, [_point(_unit(rng), "u", "s"), _point(_unit(rng), "w", "s")])
    assert [store.count(n) for n in COLLECTIONS] == [2, 2, 2, 2]
    assert store.count("conversations", user_id="w") == 1
    store.reset()
    assert [store.count(n) for n in COLLECTIONS] == [0, 0, 0, 0]
    store.upsert("sops", [_point(_unit(rng), "u", "s")])  # usable right after reset
    assert store.count("sops") == 1


def test_reopening_the_path_keeps_the_data(tmp_path: Path, engine: Engine) -> None:
    rng = np.random.default_rng(8)
    path = tmp_path / "q"
    first = VectorStore(DIM, path=path, engine=engine)
    first.ensure_collections()
    pts = [_point(_unit(rng), "u", f"s{i}") for i in range(20)]
    first.upsert("conversations", pts)
    with pytest.raises(ConfigError, match="in use"):  # one client per path
        VectorStore(DIM, path=path, engine=engine).ensure_collections()
    first.close()
    again = VectorStore(DIM, path=path, engine=engine)
    try:
        again.ensure_collections()  # idempotent on an existing store
        assert again.count("conversations", user_id="u") == 20
        [hit] = again.search("conversations", pts[7].vector, user_id="u", limit=1)
        assert hit.id == pts[7].id
    finally:
        again.close()


def test_errors_name_the_problem(store: VectorStore, tmp_path: Path) -> None:
    rng = np.random.default_rng(9)
    with pytest.raises(ConfigError, match="unknown memory collection 'notes'.*documents"):
        store.count("notes")
    with pytest.raises(ValueError, match="lacks timestamp, tags"):
        store.upsert("documents", [Point(id=str(uuid.uuid4()), vector=_unit(rng),
                                         payload={"user_id": "u", "source": "x", "source_id": "y"})])
    with pytest.raises(ValueError, match="dims"):
        store.search("documents", [0.1, 0.2], user_id="u", limit=1)
    with pytest.raises(ConfigError, match="exactly one"):
        VectorStore(DIM)
    with pytest.raises(ConfigError, match="exactly one"):
        VectorStore(DIM, path=tmp_path / "x", url="http://localhost:6333")


def test_dimension_mismatch_on_existing_store(tmp_path: Path, engine: Engine) -> None:
    s = VectorStore(DIM, path=tmp_path / "q", engine=engine)
    s.ensure_collections()
    s.close()
    wider = VectorStore(DIM * 2, path=tmp_path / "q", engine=engine)
    try:
        with pytest.raises(ConfigError, match="rebuild"):
            wider.ensure_collections()
        wider.reset()  # the way out: drop and recreate at the new size
        assert wider.count("documents") == 0
    finally:
        wider.close()


def test_with_a_key_the_text_is_sealed_on_disk_and_bound_to_its_point(tmp_path: Path, engine: Engine) -> None:
    from core.crypto import DecryptError, Sealer, new_key_text

    key = new_key_text()
    rng = np.random.default_rng(7)
    query = _unit(rng)
    sealed = VectorStore(DIM, path=tmp_path / "q", engine=engine, sealer=Sealer.from_text(key))
    plain_before = _point(_unit(rng), "alice", "p0", text="written before the key was set")
    sealed.upsert("documents", [_point(query, "alice", "d1", text="CanaryChunk4410", title="CanaryTitle4410",
                                       heading="Refunds", tags=["sop"])])
    plain = VectorStore(DIM, path=tmp_path / "p", engine=engine)
    plain.upsert("documents", [plain_before])
    plain.close()
    (hit,) = sealed.search("documents", query, user_id="alice", limit=1, match={"tags": "sop"})  # filters still work
    assert (hit.payload["text"], hit.payload["title"], hit.payload["heading"]) == ("CanaryChunk4410", "CanaryTitle4410",
                                                                                  "Refunds")
    assert "sealed" not in hit.payload
    sealed.close()
    on_disk = b"".join(p.read_bytes() for p in (tmp_path / "q").rglob("*") if p.is_file())
    assert on_disk and b"CanaryChunk4410" not in on_disk and b"CanaryTitle4410" not in on_disk
    assert b"written before the key" in b"".join(p.read_bytes() for p in (tmp_path / "p").rglob("*") if p.is_file())

    unkeyed = VectorStore(DIM, path=tmp_path / "q", engine=engine)
    with pytest.raises(ConfigError, match="set ENCRYPTION_KEY"):
        unkeyed.search("documents", query, user_id="alice", limit=1)
    unkeyed.close()
    other = VectorStore(DIM, path=tmp_path / "q", engine=engine, sealer=Sealer.from_text(new_key_text()))
    with pytest.raises(DecryptError, match="not configured"):
        other.search("documents", query, user_id="alice", limit=1)
    other.close()
    later = VectorStore(DIM, path=tmp_path / "p", engine=engine, sealer=Sealer.from_text(key))
    assert later.search("documents", query, user_id="alice", limit=1)[0].payload["text"].startswith("written before")
    later.close()
