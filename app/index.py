"""The index that retrieval searches: a dense (vector) and a lexical (BM25) ranking over the same chunks.

The worker keeps it equal to the store's chunks (`IndexWriter.sync`); the API reads one consistent state of it
per request (`SearchIndex.current()`). `open_index` and `open_index_writer` build the implementation
`index.backend` names (FAISS + BM25 files, in app/faiss_index.py, the embedded default)."""

from __future__ import annotations

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


def open_index(settings: Settings) -> SearchIndex:
    match settings.index.backend:
        case "faiss":
            from app.faiss_index import FaissLiveIndex

            return FaissLiveIndex(settings.storage.index_dir)


def open_index_writer(settings: Settings, dim: int) -> IndexWriter:
    """The writer for vectors of `dim` dimensions (the embedder's)."""
    match settings.index.backend:
        case "faiss":
            from app.faiss_index import FaissIndexWriter

            return FaissIndexWriter(settings.storage.index_dir, dim, settings.ingest.keep_generations)
