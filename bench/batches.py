"""What indexing one batch of documents costs as the corpus grows (issue 11's flat-ingest goal): the embedded
store and index at 10k, 100k and 300k chunks of synthetic text, then a batch of 16 documents (50 chunks each)
stored and written into a new index generation, timed. Parsing and embedding cost the same at any corpus size,
so they are left out (the vectors are random unit vectors)."""

from __future__ import annotations

import hashlib
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from app.config import Settings
from app.index import open_index_writer
from app.sqlite_store import SQLiteStore
from app.store import NewChunk, Store

DIM = 384
CHUNKS_PER_DOCUMENT = 50
BATCH_DOCUMENTS = 16
TIMED_BATCHES = 3


def run(root: Path, sizes: list[int]) -> dict[str, Any]:
    settings = Settings().with_data_dir(root)
    store = SQLiteStore(settings.storage.database_path)
    writer = open_index_writer(settings, DIM)
    rng = np.random.default_rng(0)
    words = [f"w{n}" for n in range(20_000)]
    results: dict[str, Any] = {}
    stored = 0
    for size in sizes:
        while stored < size:
            _add_documents(store, rng, words, 1, stored)
            stored += CHUNKS_PER_DOCUMENT
        writer.sync(store)  # the corpus so far, indexed: not timed
        seconds = []
        for _ in range(TIMED_BATCHES):
            started = time.perf_counter()
            _add_documents(store, rng, words, BATCH_DOCUMENTS, stored)
            writer.sync(store)
            seconds.append(time.perf_counter() - started)
            stored += BATCH_DOCUMENTS * CHUNKS_PER_DOCUMENT
        results[str(size)] = {"chunks_at_end": stored, "batch_s_median": statistics.median(seconds)}
    first = results[str(sizes[0])]["batch_s_median"]
    for values in results.values():
        values["over_smallest"] = values["batch_s_median"] / first
    store.close()
    return results


def _add_documents(store: Store, rng: np.random.Generator, words: list[str], count: int, serial: int) -> None:
    """`count` documents of synthetic chunks, stored and finished as the worker would."""
    for n in range(count):
        name = f"doc-{serial}-{n}"
        doc, _ = store.add_document(f"{name}.md", "md", hashlib.sha256(name.encode()).hexdigest(), 1)
        vectors = rng.standard_normal((CHUNKS_PER_DOCUMENT, DIM)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        chunks = [
            NewChunk(i, "Section", " ".join(rng.choice(words, 120)), vectors[i]) for i in range(CHUNKS_PER_DOCUMENT)
        ]
        job = store.jobs.claim_next(600)
        assert job is not None and job.document_id == doc.id
        store.replace_chunks(doc.id, chunks, job.version)
        store.jobs.finish(job)
