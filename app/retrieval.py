"""Finds the chunks for a question: dense and BM25 search, reciprocal rank fusion, optional reranking."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from app.config import RetrievalSettings
from app.embedding import Embedder
from app.index import Hit, SearchIndex
from app.reranking import Reranker
from app.store import Chunk, Store, searchable_text


@dataclass(frozen=True)
class RetrievedChunk:
    chunk: Chunk
    score: float  # cosine similarity of question and chunk, in [-1, 1], whichever retriever found it


@dataclass(frozen=True)
class Filters:
    """Restrict a search to some documents, to documents carrying any of some tags, to some collections."""

    document_ids: Sequence[str] | None = None
    tags: Sequence[str] | None = None
    collections: Sequence[str] | None = None

    @property
    def active(self) -> bool:
        return self.document_ids is not None or self.tags is not None or self.collections is not None


@dataclass
class Retrieval:
    chunks: list[RetrievedChunk]
    timings_ms: dict[str, float] = field(default_factory=dict)


def reciprocal_rank_fusion(rankings: Sequence[Sequence[int]], weights: Sequence[float], k: float) -> list[int]:
    """Chunk ids ordered by sum(weight / (k + rank)); rank-based, so BM25 and cosine scales never mix."""
    fused: dict[int, float] = {}
    for ranking, weight in zip(rankings, weights, strict=True):
        for rank, chunk_id in enumerate(ranking, start=1):
            fused[chunk_id] = fused.get(chunk_id, 0.0) + weight / (k + rank)
    return sorted(fused, key=lambda chunk_id: -fused[chunk_id])


@dataclass(frozen=True)
class Retriever:
    embedder: Embedder
    index: SearchIndex
    store: Store
    settings: RetrievalSettings
    reranker: Reranker | None = None

    def search(self, question: str, top_k: int, filters: Filters | None = None) -> Retrieval:
        """The best `top_k` chunks of indexed documents, best first, each with its cosine similarity."""
        timings: dict[str, float] = {}
        clock = time.perf_counter()

        def lap(stage: str) -> None:
            nonlocal clock
            now = time.perf_counter()
            timings[stage] = round((now - clock) * 1000, 2)
            clock = now

        vector = self.embedder.embed([question])[0]
        lap("embed")
        snapshot = self.index.current()
        if snapshot is None or snapshot.size == 0:
            return Retrieval([], timings)
        allowed = None
        if filters is not None and filters.active:
            allowed = self.store.filtered_chunk_ids(filters.document_ids, filters.tags, filters.collections)
        settings, depth = self.settings, self.settings.candidates
        rankings: list[list[Hit]] = []
        weights: list[float] = []
        if settings.mode in ("dense", "hybrid"):
            rankings.append(snapshot.dense_search(vector, depth, allowed))
            weights.append(settings.dense_weight)
        if settings.mode in ("bm25", "hybrid"):
            rankings.append(snapshot.lexical_search(question, depth, allowed))
            weights.append(settings.bm25_weight)
        lap("search")
        fused = reciprocal_rank_fusion([[hit.chunk_id for hit in r] for r in rankings], weights, settings.rrf_k)
        chunks = self.store.searchable_chunks(fused)  # drops chunks of deleted or re-processing documents
        ranked = [chunk_id for chunk_id in fused if chunk_id in chunks]
        similarity = snapshot.similarities(vector, ranked)
        found = [RetrievedChunk(chunks[chunk_id], similarity[chunk_id]) for chunk_id in ranked]
        lap("fuse")
        if self.reranker is not None and found:
            found = _reranked(self.reranker, question, found)
            lap("rerank")
        return Retrieval(found[:top_k], timings)


def _reranked(reranker: Reranker, question: str, found: list[RetrievedChunk]) -> list[RetrievedChunk]:
    scores = reranker.score(question, [searchable_text(f.chunk.section, f.chunk.text) for f in found])
    order = sorted(range(len(found)), key=lambda i: -scores[i])
    return [found[i] for i in order]
