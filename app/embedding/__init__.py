"""Sentence embeddings behind one small Protocol, chosen by `embedding.backend` in `build_embedder`."""

from __future__ import annotations

from typing import Protocol

import numpy as np

from app.config import EmbeddingSettings


class Embedder(Protocol):
    dim: int
    name: str  # what makes the vectors (backend and model): a store's vectors all come from one

    def embed(self, texts: list[str]) -> np.ndarray:
        """One L2-normalised float32 row per text, so that inner product is cosine similarity."""
        ...


def build_embedder(settings: EmbeddingSettings) -> Embedder:
    """The embedder `settings.backend` names; each backend's imports are paid only when it is chosen."""
    match settings.backend:
        case "sentence-transformers":
            from app.embedding.sentence_transformers_backend import SentenceTransformersEmbedder

            return SentenceTransformersEmbedder(settings)
        case "fake":
            from app.embedding.fake import FakeEmbedder

            return FakeEmbedder()
