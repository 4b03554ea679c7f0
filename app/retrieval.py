"""Finds the chunks closest to a question, keeping only those of indexed documents above the threshold."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from app.config import RetrievalSettings
from app.index import LiveIndex
from app.store import Chunk, Store

# Hits may belong to documents deleted or re-processed since the index was written; fetch extra.
OVERFETCH = 3


@dataclass(frozen=True)
class RetrievedChunk:
    chunk: Chunk
    score: float  # cosine similarity of question and chunk, in [-1, 1]


def retrieve(
    question_vector: np.ndarray, index: LiveIndex, store: Store, top_k: int, settings: RetrievalSettings
) -> list[RetrievedChunk]:
    """The best `top_k` chunks above the threshold and within `relative_margin` of the best one."""
    hits = [hit for hit in index.search(question_vector, top_k * OVERFETCH) if hit.score >= settings.score_threshold]
    chunks = store.searchable_chunks([hit.chunk_id for hit in hits])
    found = [RetrievedChunk(chunks[hit.chunk_id], hit.score) for hit in hits if hit.chunk_id in chunks]
    if not found:
        return []
    floor = found[0].score - settings.relative_margin
    return [item for item in found[:top_k] if item.score >= floor]
