"""Vector search at scale on synthetic unit vectors (384-d, the embedder's size): FAISS flat (the service's index,
exact) against approximate indexes (HNSW; IVF with 8-bit scalar quantization), with their recall@10 against
flat, search p50 for one query, build time and memory (the serialized index)."""

from __future__ import annotations

import os
import time
from typing import Any

import faiss
import numpy as np

from evaluation.metrics import percentile

DIM = 384
QUERIES = 200
K = 10
LATENT_DIM = 24
HNSW_MAX = 200_000  # building HNSW over 1M vectors takes most of an hour on 2 cores


def unit_vectors(count: int, rng: np.random.Generator, basis: np.ndarray) -> np.ndarray:
    """Points of a low-dimensional space mapped into 384-d, plus a little noise, normalized: sentence embeddings
    have that kind of low intrinsic dimension, so their nearest neighbours stand out. (Uniform noise in 384-d
    makes all distances nearly equal, and recall of any approximate index meaningless.)"""
    latent = rng.standard_normal((count, basis.shape[0])).astype(np.float32)
    vectors = latent @ basis + 0.05 * rng.standard_normal((count, DIM)).astype(np.float32)
    faiss.normalize_L2(vectors)
    return vectors


def measure(index: Any, vectors: np.ndarray, queries: np.ndarray, truth: np.ndarray | None) -> dict[str, float]:
    faiss.omp_set_num_threads(os.cpu_count() or 1)  # building uses every core
    started = time.perf_counter()
    if not index.is_trained:
        index.train(vectors[: min(len(vectors), 100_000)])
    index.add(vectors)
    build = time.perf_counter() - started
    faiss.omp_set_num_threads(1)  # one query at a time, as the service searches: no thread start-up per query
    times, found = [], []
    for query in queries:
        began = time.perf_counter()
        _, ids = index.search(query[None, :], K)
        times.append((time.perf_counter() - began) * 1000)
        found.append(ids[0])
    result = {
        "build_s": build,
        "search_p50_ms": percentile(times, 50),
        "memory_mb": faiss.serialize_index(index).nbytes / 1e6,
    }
    if truth is not None:
        hits = [len(set(row) & set(expected)) / K for row, expected in zip(found, truth, strict=True)]
        result["recall_at_10"] = float(np.mean(hits))
    return result


def run(sizes: list[int]) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    basis = (rng.standard_normal((LATENT_DIM, DIM)) / np.sqrt(LATENT_DIM)).astype(np.float32)
    results: dict[str, Any] = {}
    for size in sizes:
        vectors = unit_vectors(size, rng, basis)
        queries = unit_vectors(QUERIES, rng, basis)
        flat = faiss.IndexFlatIP(DIM)
        row = {"flat": measure(flat, vectors, queries, None)}
        _, truth = flat.search(queries, K)
        ivf = faiss.index_factory(DIM, "IVF1024,SQ8", faiss.METRIC_INNER_PRODUCT)  # 1 byte per dimension
        ivf.nprobe = 64
        approximate = {"ivf1024_sq8_nprobe64": ivf}
        if size <= HNSW_MAX:
            hnsw = faiss.IndexHNSWFlat(DIM, 32, faiss.METRIC_INNER_PRODUCT)
            hnsw.hnsw.efSearch = 64
            approximate["hnsw32_ef64"] = hnsw
        for name, index in approximate.items():
            row[name] = measure(index, vectors, queries, truth)
        results[str(size)] = row
        del vectors
    return results
