"""The index that retrieval searches: a dense (vector) and a lexical (BM25) ranking over the same chunks.

The worker keeps it equal to the store's chunks (`IndexWriter.sync`); the API reads one consistent state of it
per request (`SearchIndex.current()`). `open_index` and `open_index_writer` build the implementation
`index.backend` names: FAISS + BM25 segment files (app/faiss_index.py, the embedded default) or a Qdrant
collection (app/qdrant_index.py)."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from app.config import Settings
from app.store import Store


@dataclass(frozen=True)
class Hit:
    chunk_id: int
    score: float


class IndexView(Protocol):
    """One consistent state of the index: a request searches only this, whatever is written meanwhile."""

    @property
    def generation(self) -> int: ...

    @property
    def size(self) -> int: ...

    def chunk_ids(self) -> set[int]:
        """Every chunk it holds (reads the whole index: for checks and tests)."""
        ...

    def dense_search(self, vector: np.ndarray, k: int, allowed: set[int] | None = None) -> list[Hit]:
        """The `k` chunks nearest `vector` (cosine, best first), among `allowed` when given."""
        ...

    def lexical_search(self, query: str, k: int, allowed: set[int] | None = None) -> list[Hit]:
        """The `k` best BM25 matches of `query`, among `allowed` when given."""
        ...

    def similarities(self, vector: np.ndarray, chunk_ids: list[int]) -> dict[int, float]:
        """Cosine similarity of `vector` to each chunk, also for chunks found by BM25 alone."""
        ...


class SearchIndex(Protocol):
    def current(self) -> IndexView | None:
        """The newest complete state, or None before anything was indexed."""
        ...


class IndexWriter(Protocol):
    def sync(self, store: Store) -> int | None:
        """Make the index hold exactly the store's chunks; the new generation's number, or None when unchanged."""
        ...


def compare_documents(
    store: Store, documents: Collection[str], indexed: dict[str, set[int]]
) -> tuple[set[int], set[int], dict[str, set[int]]]:
    """For `documents`, given the chunk ids an index holds of each: (stale: held but no longer the store's,
    missing: the store's but not held, the store's chunk ids of each document that has any)."""
    wanted = {document: set(ids) for document, ids in store.newest_chunks(documents).items()}
    stale: set[int] = set()
    missing: set[int] = set()
    for document in documents:
        before, now = indexed.get(document, set()), wanted.get(document, set())
        stale |= before - now
        missing |= now - before
    return stale, missing, wanted


def separate_process_problem(settings: Settings) -> str | None:
    """Why this index cannot serve an API and a worker running as separate processes, if it cannot."""
    if settings.index.backend == "qdrant" and not settings.index.qdrant_url:
        return (
            "index.backend qdrant needs index.qdrant_url (a Qdrant server, e.g. http://localhost:6333) when the API "
            "and the worker run as their own processes: Qdrant's local mode opens its folder in one process only"
        )
    return None


def open_index(settings: Settings) -> SearchIndex:
    match settings.index.backend:
        case "faiss":
            from app.faiss_index import FaissLiveIndex

            return FaissLiveIndex(settings.storage.index_dir)
        case "qdrant":
            from app.qdrant_index import QdrantIndex

            return QdrantIndex(settings)


def open_index_writer(settings: Settings, dim: int) -> IndexWriter:
    """The writer for vectors of `dim` dimensions (the embedder's)."""
    match settings.index.backend:
        case "faiss":
            from app.faiss_index import FaissIndexWriter

            return FaissIndexWriter(settings.storage.index_dir, dim, settings.ingest.keep_generations)
        case "qdrant":
            from app.qdrant_index import QdrantIndexWriter

            return QdrantIndexWriter(settings, dim)
