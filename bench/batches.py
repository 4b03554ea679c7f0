"""What indexing one batch of documents costs as the corpus grows (issue 11's flat-ingest goal): the embedded
store and index at 10k, 100k and 300k chunks of synthetic text, then batches of 16 documents (50 chunks each)
stored and written into new index generations, timed one by one. The corpus before them is loaded 10k chunks per
generation, so the index holds segments as a bulk load leaves them. Parsing and embedding cost the same at any
corpus size, so they are left out (the vectors are random unit vectors)."""

from __future__ import annotations

import hashlib
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from app.config import Settings
from app.faiss_index import MERGE_FACTOR
from app.index import open_index_writer
from app.sqlite_store import SQLiteStore
from app.store import NewChunk, Store

DIM = 384
CHUNKS_PER_DOCUMENT = 50
BATCH_DOCUMENTS = 16
TIMED_BATCHES = MERGE_FACTOR + 1  # so the timed batches include merging the small segments they leave
LOAD_CHUNKS_PER_DOCUMENT = 1000
LOAD_CHUNKS_PER_GENERATION = 10_000


def run(root: Path, sizes: list[int]) -> dict[str, Any]:
    settings = Settings().with_data_dir(root)
    store = SQLiteStore(settings.storage.database_path)
    writer = open_index_writer(settings, DIM)
    rng = np.random.default_rng(0)
    words = [f"w{n}" for n in range(20_000)]
    results: dict[str, Any] = {}
    stored = 0
    for size in sizes:
        while stored < size:  # not timed
            for _ in range(LOAD_CHUNKS_PER_GENERATION // LOAD_CHUNKS_PER_DOCUMENT):
                _add_document(store, rng, words, f"load-{stored}", LOAD_CHUNKS_PER_DOCUMENT)
                stored += LOAD_CHUNKS_PER_DOCUMENT
            writer.sync(store)
        seconds = []
        for batch in range(TIMED_BATCHES):
            started = time.perf_counter()
            for n in range(BATCH_DOCUMENTS):
                _add_document(store, rng, words, f"batch-{size}-{batch}-{n}", CHUNKS_PER_DOCUMENT)
            writer.sync(store)
            seconds.append(time.perf_counter() - started)
            stored += BATCH_DOCUMENTS * CHUNKS_PER_DOCUMENT
        results[str(size)] = {
            "chunks_at_end": stored,
            "batch_s_median": statistics.median(seconds),
            "batch_s_mean": statistics.mean(seconds),
            "batch_s_max": max(seconds),
        }
    first = results[str(sizes[0])]
    for values in results.values():
        values["median_over_smallest"] = values["batch_s_median"] / first["batch_s_median"]
        values["mean_over_smallest"] = values["batch_s_mean"] / first["batch_s_mean"]
    store.close()
    return results


def _add_document(store: Store, rng: np.random.Generator, words: list[str], name: str, chunks: int) -> None:
    """A document of synthetic chunks, stored and finished as the worker would."""
    doc, _ = store.add_document(f"{name}.md", "md", hashlib.sha256(name.encode()).hexdigest(), 1)
    vectors = rng.standard_normal((chunks, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    texts = [" ".join(rng.choice(words, 120)) for _ in range(chunks)]
    job = store.jobs.claim_next(600)
    assert job is not None and job.document_id == doc.id
    store.replace_chunks(doc.id, [NewChunk(i, "Section", texts[i], vectors[i]) for i in range(chunks)], job.version)
    store.jobs.finish(job)
