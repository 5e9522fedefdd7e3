"""Retrieval: the memories a plan or a step is given, the past plans shown as examples, and search.

Per query, the best matches per collection (quotas by agent type) are rendered into the prompt's
memory block within the token budget and recorded as the run's sources. What it reads from the
database comes through :class:`RetrievalStore` (the Memory actor answers it through the Store).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Protocol, TypeVar

import numpy as np

from core.errors import portable
from core.memory_schemas import LearningView, MemoryContext, PlanExample
from core.schemas import MEMORY_COLLECTIONS, MemoryCollection, MemorySource
from core.settings import Settings
from memory.context import Quotas, SourceRecorder, hit_source, quotas_for, render_memory
from memory.vectors import Hit, VectorStore

T = TypeVar("T")

# Action states that keep a run from being a few-shot example (an expired proposal keeps "pending").
UNSETTLED_ACTIONS = ("pending", "approved", "executing", "needs_review", "rejected")


class RetrievalStore(Protocol):
    """What retrieval reads from the database."""

    async def has_entries(self, user_id: str) -> bool:
        """Whether the user has any memory entry at all."""
        ...

    async def learnings(self, user_id: str, run_ids: list[str]) -> list[LearningView]:
        """These runs' learnings (those that exist)."""
        ...

    async def runs_with_actions(self, run_ids: list[str], statuses: Sequence[str]) -> set[str]:
        """Those of the runs that have an action in one of ``statuses``."""
        ...


class Engines(Protocol):
    """The embedder and the vector store (:class:`memory.engines.Engines`)."""

    async def embed(self, texts: Sequence[str], interactive: bool) -> np.ndarray: ...

    async def with_vectors(self, work: Callable[[VectorStore], T]) -> T: ...


class Retriever:
    def __init__(self, settings: Settings, store: RetrievalStore, engines: Engines, sources: SourceRecorder) -> None:
        self.settings = settings
        self._store = store
        self._engines = engines
        self._sources = sources
        self._has_memories: dict[str, bool] = {}

    def stored(self, user_id: str) -> None:
        """The user now has memories (skips the database check on the next query)."""
        self._has_memories[user_id] = True

    def forget(self, user_id: str | None = None) -> None:
        """Ask the database again whether the user (or anyone) has memories."""
        if user_id is None:
            self._has_memories.clear()
        else:
            self._has_memories.pop(user_id, None)

    async def _any_memory(self, user_id: str) -> bool:
        if user_id not in self._has_memories:
            self._has_memories[user_id] = await self._store.has_entries(user_id)
        return self._has_memories[user_id]

    async def _hits(self, user_id: str, vectors: np.ndarray, quotas: Quotas, min_score: float | None,
                    usable_learnings: int = 0) -> list[tuple[list[tuple[MemoryCollection, Hit]], list[Hit]]]:
        """Per query vector: the best matches per collection (best first overall), and past requests
        whose plans may be shown as examples. Every search of every vector in one trip to the vector thread."""
        wanted = [(c, k) for c, k in quotas.items() if k > 0]

        def one(v: VectorStore, vector: np.ndarray) -> tuple[list[tuple[MemoryCollection, Hit]], list[Hit]]:
            found = [(c, h) for c, k in wanted
                     for h in v.search(c, vector, user_id=user_id, limit=k, score_threshold=min_score)]
            past = v.search("learnings", vector, user_id=user_id, limit=usable_learnings, match={"usable": True},
                            score_threshold=min_score) if usable_learnings > 0 else []
            return sorted(found, key=lambda ch: -ch[1].score), past

        return await self._engines.with_vectors(lambda v: [one(v, vector) for vector in vectors])

    async def search(self, user_id: str, query: str, collections: Sequence[MemoryCollection] | None = None,
                     limit: int = 5) -> list[MemorySource]:
        if not query.strip() or not await self._any_memory(user_id):
            return []
        vectors = await self._engines.embed([query], True)
        names = list(collections) if collections else [c for c in MEMORY_COLLECTIONS if c != "learnings"]
        ((found, _),) = await self._hits(user_id, vectors, dict.fromkeys(names, limit), None)
        return [hit_source(c, h) for c, h in found[:limit]]

    async def search_many(self, searches: list[tuple[str, str, list[MemoryCollection], int]]
                          ) -> list[list[MemorySource] | Exception]:
        """Many tools' searches, ``(user id, query, collections, limit)``, sent together by a pool: each
        one's sources, or the error it raised (their queries are embedded together)."""
        done = await asyncio.gather(*(self.search(*s) for s in searches), return_exceptions=True)
        return [portable(r) if isinstance(r, BaseException) else r for r in done]

    async def context(self, user_id: str, query: str, run_id: str | None = None, task_id: str | None = None,
                      agent: str | None = None) -> MemoryContext:
        """The memories (and, for planning, past plans) for one request, recorded as the run's sources."""
        if not query.strip() or not await self._any_memory(user_id):
            return MemoryContext(text="")
        vectors = await self._engines.embed([query], True)
        k = self.settings.few_shot_examples if agent is None else 0
        ((hits, past),) = await self._hits(user_id, vectors, quotas_for(agent), self.settings.rag_min_score,
                                           k + 1 if k > 0 else 0)  # one more: the run itself may be among them
        found = self._rendered(hits, run_id, task_id)
        return found.model_copy(update={"examples": await self._examples(user_id, past, run_id, k)})

    async def step_contexts(self, user_id: str, agent: str, steps: Sequence[tuple[str, str, str]]) -> list[str]:
        """The memories for many steps of one agent type at once, each ``(instruction, run id, task id)``:
        one embedding batch and one trip to the vector thread for all (a pool asks for a batch it was
        handed), each step's recorded as its run's sources. Returns each step's memory text."""
        asked = [i for i, (query, _, _) in enumerate(steps) if query.strip()]
        texts = [""] * len(steps)
        if not asked or not await self._any_memory(user_id):
            return texts
        vectors = await self._engines.embed([steps[i][0] for i in asked], True)
        found = await self._hits(user_id, vectors, quotas_for(agent), self.settings.rag_min_score)
        for i, (hits, _) in zip(asked, found, strict=True):
            texts[i] = self._rendered(hits, steps[i][1], steps[i][2]).text
        return texts

    def _rendered(self, hits: list[tuple[MemoryCollection, Hit]], run_id: str | None,
                  task_id: str | None) -> MemoryContext:
        text, used = render_memory([(c, h.payload, h.score) for c, h in hits], self.settings.rag_token_budget)
        sources = [hit_source(c, h) for c, h in hits[:used]]
        if run_id is not None and sources:
            self._sources.add(run_id, task_id, sources)  # without holding up the plan or the step
        return MemoryContext(text=text, sources=sources)

    async def _examples(self, user_id: str, past: list[Hit], run_id: str | None, k: int) -> list[PlanExample]:
        """Past plans to show: runs that ended well (or a person corrected), whose actions are all settled."""
        run_ids = [h.payload["source_id"] for h in past if h.payload["source_id"] != run_id][:k]
        if not run_ids:
            return []
        learnings = {x.run_id: x for x in await self._store.learnings(user_id, run_ids)}
        # An action still waiting for a person or under way, or one a person refused: such a run's plan
        # is not yet one that worked, and may be what a hostile text asked for.
        unsettled = await self._store.runs_with_actions(run_ids, UNSETTLED_ACTIONS)
        out = []
        for rid in run_ids:
            x = learnings.get(rid)
            plan = x.correction or x.plan if x is not None else None
            if x is not None and x.usable and plan is not None and rid not in unsettled:
                out.append(PlanExample(run_id=rid, request=x.request, plan=plan, corrected=x.correction is not None))
        return out
