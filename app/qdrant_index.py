"""The index in Qdrant (`index.backend: qdrant`), for many API replicas and workers on many machines: one
collection with a dense vector and a BM25 sparse vector per chunk (Qdrant applies the IDF at query time), the
chunk id as point id, the document id as payload. `index.qdrant_url` names the server; without it Qdrant's
embedded local mode keeps the collection in storage.data_dir/qdrant, for one process (tests, evaluation)."""

from __future__ import annotations

import atexit
import threading
import warnings
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
from qdrant_client import QdrantClient, models

from app.config import Settings
from app.index import Hit, compare_documents
from app.lexical import K1, B, bm25_terms
from app.store import Store

DENSE, SPARSE = "dense", "bm25"
# BM25 needs the corpus' mean chunk length when a chunk is written; Qdrant keeps no such statistic, so a fixed
# value near the mean of real chunks (55-65 terms after stop words in the eval corpora) stands in for it.
AVERAGE_TERMS = 60.0
UPSERT_BATCH = 256

_local_clients: dict[str, QdrantClient] = {}
_local_lock = threading.Lock()


def connect(settings: Settings) -> QdrantClient:
    index = settings.index
    if index.qdrant_url:
        api_key = index.qdrant_api_key.get_secret_value() if index.qdrant_api_key else None
        return QdrantClient(url=index.qdrant_url, api_key=api_key, timeout=int(index.qdrant_timeout_seconds))
    path = str(settings.storage.data_dir / "qdrant")
    with _local_lock:  # local mode locks its folder: one client per process, shared by the API and the worker
        if path not in _local_clients:
            Path(path).mkdir(parents=True, exist_ok=True)
            _local_clients[path] = QdrantClient(path=path)
        return _local_clients[path]


@atexit.register
def _close_local_clients() -> None:
    """Before the interpreter tears down the modules a client's own __del__ would need."""
    for client in _local_clients.values():
        client.close()
    _local_clients.clear()


def _term_index(term: str) -> int:
    return zlib.crc32(term.encode())


def document_vector(text: str) -> models.SparseVector:
    """BM25's term-frequency part for each term of a chunk; Qdrant multiplies in the IDF."""
    counts = Counter(bm25_terms(text))
    norm = K1 * (1 - B + B * sum(counts.values()) / AVERAGE_TERMS)
    indices = [_term_index(term) for term in counts]
    return models.SparseVector(indices=indices, values=[tf / (tf + norm) for tf in counts.values()])


def query_vector(text: str) -> models.SparseVector:
    counts = Counter(bm25_terms(text))
    return models.SparseVector(indices=[_term_index(t) for t in counts], values=[float(n) for n in counts.values()])


def _only(allowed: set[int] | None) -> models.Filter | None:
    return None if allowed is None else models.Filter(must=[models.HasIdCondition(has_id=sorted(allowed))])


@dataclass(frozen=True)
class QdrantView:
    """The collection as it is now: unlike FAISS generations, a batch being written may be half visible."""

    client: QdrantClient
    collection: str
    generation: int

    @property
    def size(self) -> int:
        return self.client.count(self.collection, exact=False).count  # an estimate on a server: cheap

    def chunk_ids(self) -> set[int]:
        return {int(point.id) for point in _scroll(self.client, self.collection, None)}

    def _search(self, query: Any, using: str, k: int, allowed: set[int] | None) -> list[Hit]:
        if k <= 0 or (allowed is not None and not allowed):
            return []
        found = self.client.query_points(
            self.collection, query=query, using=using, limit=k, query_filter=_only(allowed)
        )
        return [Hit(int(point.id), float(point.score)) for point in found.points]

    def dense_search(self, vector: np.ndarray, k: int, allowed: set[int] | None = None) -> list[Hit]:
        return self._search(vector.astype(np.float32).tolist(), DENSE, k, allowed)

    def lexical_search(self, query: str, k: int, allowed: set[int] | None = None) -> list[Hit]:
        sparse = query_vector(query)
        return self._search(sparse, SPARSE, k, allowed) if sparse.indices else []

    def similarities(self, vector: np.ndarray, chunk_ids: list[int]) -> dict[int, float]:
        if not chunk_ids:
            return {}
        points = self.client.retrieve(self.collection, ids=chunk_ids, with_vectors=[DENSE])
        query, found = vector.astype(np.float32), {}
        for point in points:
            named = cast(dict[str, list[float]], point.vector)  # named vectors: a dict by name
            found[int(point.id)] = float(np.asarray(named[DENSE], dtype=np.float32) @ query)
        return found


def _state(client: QdrantClient, collection: str) -> dict[str, Any] | None:
    """The collection's metadata: the generation (one per write) and the store change it includes."""
    if not client.collection_exists(collection):
        return None
    return dict(client.get_collection(collection).config.metadata or {})


class QdrantIndex:
    """The API's view; each request reads the generation number once."""

    def __init__(self, settings: Settings) -> None:
        self.client = connect(settings)
        self.collection = settings.index.qdrant_collection

    def current(self) -> QdrantView | None:
        state = _state(self.client, self.collection)
        return None if state is None else QdrantView(self.client, self.collection, int(state.get("generation", 0)))


class QdrantIndexWriter:
    """Keeps the collection equal to the store's chunks. It reads only the documents whose chunks changed since
    the store change the collection records, and what the collection holds of them, so any worker can write
    next; workers take turns through the store (`Store.index_writer_turn`)."""

    def __init__(self, settings: Settings, dim: int) -> None:
        self.client = connect(settings)
        self.collection = settings.index.qdrant_collection
        self.dim = dim

    def sync(self, store: Store) -> int | None:
        with store.index_writer_turn():
            return self._sync(store)

    def _sync(self, store: Store) -> int | None:
        state = _state(self.client, self.collection) or self._create()
        generation, seen = int(state.get("generation", 0)), int(state.get("changes", 0))
        changes, documents = store.chunk_changes(seen)
        if seen == 0:  # a new collection: documents chunked before the store logged changes count too
            documents |= set(store.newest_chunks())
        if not documents and generation > 0:
            return None
        stale, missing, wanted = compare_documents(store, documents, self._indexed(documents))
        document_of = {chunk_id: document for document, ids in wanted.items() for chunk_id in ids}
        for batch in _batches(sorted(missing), UPSERT_BATCH):  # new chunks first: a version swap never leaves a gap
            self._upsert(store, batch, document_of)
        if stale:
            self.client.delete(self.collection, points_selector=models.PointIdsList(points=sorted(stale)))
        self.client.update_collection(self.collection, metadata={"generation": generation + 1, "changes": changes})
        return generation + 1

    def _create(self) -> dict[str, Any]:
        self.client.create_collection(
            self.collection,
            vectors_config={DENSE: models.VectorParams(size=self.dim, distance=models.Distance.COSINE)},
            sparse_vectors_config={SPARSE: models.SparseVectorParams(modifier=models.Modifier.IDF)},
            metadata={"generation": 0, "changes": 0},
        )
        with warnings.catch_warnings():  # local mode warns that it has no payload indexes; a server uses it
            warnings.simplefilter("ignore")
            self.client.create_payload_index(self.collection, "document_id", models.PayloadSchemaType.KEYWORD)
        return {"generation": 0, "changes": 0}

    def _indexed(self, documents: set[str]) -> dict[str, set[int]]:
        indexed: dict[str, set[int]] = {}
        for batch in _batches(sorted(documents), 500):
            match = models.Filter(must=[models.FieldCondition(key="document_id", match=models.MatchAny(any=batch))])
            for point in _scroll(self.client, self.collection, match):
                indexed.setdefault(str(point.payload["document_id"]), set()).add(int(point.id))  # type: ignore[index]
        return indexed

    def _upsert(self, store: Store, ids: list[int], document_of: dict[int, str]) -> None:
        found, vectors, texts = store.chunk_contents(ids)  # a chunk deleted meanwhile is left out
        points = [
            models.PointStruct(
                id=chunk_id,
                vector={DENSE: vector.tolist(), SPARSE: document_vector(text)},
                payload={"document_id": document_of[chunk_id]},
            )
            for chunk_id, vector, text in zip(found.tolist(), vectors, texts, strict=True)
        ]
        if points:
            self.client.upsert(self.collection, points=points)


def _batches(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _scroll(client: QdrantClient, collection: str, match: models.Filter | None) -> Iterator[models.Record]:
    offset = None
    while True:
        points, offset = client.scroll(
            collection, scroll_filter=match, limit=1000, offset=offset, with_payload=["document_id"]
        )
        yield from points
        if offset is None:
            return
