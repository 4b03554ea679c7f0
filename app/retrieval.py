"""Finds the chunks closest to a question, keeping only those of indexed documents above the threshold."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from app.index import LiveIndex
from app.store import Chunk, Store

# Hits may belong to documents deleted or re-processed since the index was written; fetch extra.
OVERFETCH = 3


@dataclass(frozen=True)
class RetrievedChunk:
    chunk: Chunk
    score: float  # cosine similarity of question and chunk, in [-1, 1]


def retrieve(
    question_vector: np.ndarray, index: LiveIndex, store: Store, top_k: int, score_threshold: float
) -> list[RetrievedChunk]:
    hits = [hit for hit in index.search(question_vector, top_k * OVERFETCH) if hit.score >= score_threshold]
    chunks = store.searchable_chunks([hit.chunk_id for hit in hits])
    found = [RetrievedChunk(chunks[hit.chunk_id], hit.score) for hit in hits if hit.chunk_id in chunks]
    return found[:top_k]
