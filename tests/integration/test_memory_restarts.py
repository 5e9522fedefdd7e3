"""Long-term memory across restarts: an upload cut off by a crash, a new embedder re-embedding what
memory holds, the Ollama embedder through the gateway. Each test has its own app."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from actors.runtime import wiring
from actors.runtime.typed import blocking
from maos_testing.llm.sim_thread import SimHandle
from tests._db import app_sql
from tests.integration.test_memory import ONBOARDING, entries, search, upload


def test_an_upload_cut_off_by_a_crash_is_finished_by_the_restarted_actor(
        make_app: Callable[..., wiring.App]) -> None:
    app = make_app()
    sections = [f"## Clause {i}\n\nClause {i} of the supplier handbook: deliveries to warehouse {i} are booked "
                f"{i % 7 + 1} days ahead, pallets are wrapped twice and the driver calls dock {i % 13} first."
                for i in range(300)]
    data = ("# Supplier handbook\n\n" + "\n\n".join(sections)).encode()
    doc = blocking(app.memory.ingest(user_id="u1", filename="handbook.md", data=data, kind="doc", tags=[]), timeout=60).document
    assert doc.chunks >= 300 and doc.status == "indexing"
    deadline = time.monotonic() + 60
    while blocking(app.store.get_document(user_id="u1", doc_id=doc.id), timeout=30).document.chunks_done == 0:
        assert time.monotonic() < deadline, "indexing did not start"
        time.sleep(0.02)
    wiring.kill_actor(app.memory)  # like a crash; Ray restarts it

    deadline = time.monotonic() + 180  # nothing calls the memory actor: it resumes on its own
    while (view := blocking(app.store.get_document(user_id="u1", doc_id=doc.id), timeout=30)).document.status == "indexing":
        assert time.monotonic() < deadline, view.document
        time.sleep(0.2)
    assert view.document.status == "ready" and view.document.chunks_done == doc.chunks
    assert entries(app, doc.id) == doc.chunks  # the cut-off attempt left nothing behind
    hits = search(app, "u1", "how many days ahead are deliveries to warehouse 123 booked?")
    assert hits and hits[0].source_id == doc.id


def test_a_new_embedder_re_embeds_what_memory_holds(make_app: Callable[..., wiring.App], tmp_path: Any) -> None:
    first = make_app(tmp_path / "shared")
    doc = upload(first, "u1", "onboarding.md", ONBOARDING).document
    wiring.kill_app(first)
    app = make_app(tmp_path / "shared", embedder="ollama", embedding_model="sim-embed")  # other vector size
    deadline = time.monotonic() + 120
    while not (hits := search(app, "u1", "welcome pack service agreement invoice schedule")):
        assert time.monotonic() < deadline, "memory was not re-embedded"
        time.sleep(0.2)
    assert hits[0].source_id == doc.id
    stats = blocking(app.memory.stats("u1"), timeout=30)
    assert stats.embedder == "ollama/sim-embed" and stats.collections["documents"] == doc.chunks
    deadline = time.monotonic() + 60  # the entries are marked once every vector is written
    while (models := app_sql(app, "SELECT DISTINCT embedding_model FROM memory_entries")) != [("ollama/sim-embed",)]:
        assert time.monotonic() < deadline, models
        time.sleep(0.2)


def test_the_ollama_embedder_goes_through_the_gateway(make_app: Callable[..., wiring.App], sim: SimHandle) -> None:
    app = make_app(embedder="ollama", embedding_model="sim-embed")
    doc = upload(app, "u1", "onboarding.md", ONBOARDING).document
    hits = search(app, "u1", "welcome pack service agreement invoice schedule")
    assert hits and hits[0].source_id == doc.id
    stats = blocking(app.memory.stats("u1"), timeout=30)
    assert stats.embedder == "ollama/sim-embed" and stats.collections["documents"] == doc.chunks
    assert sum(r["inputs"] for r in sim.log() if r["kind"] == "embed") >= doc.chunks + 1
