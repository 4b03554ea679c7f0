"""Sentence embeddings behind one small Protocol, chosen by `embedding.backend` in `build_embedder`."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np

from app.config import EmbeddingSettings


class Embedder(Protocol):
    dim: int
    name: str  # what makes the vectors (backend and model): a store's vectors all come from one

    def embed(self, texts: list[str]) -> np.ndarray:
        """One L2-normalised float32 row per text, so that inner product is cosine similarity."""
        ...


def build_embedder(settings: EmbeddingSettings, cache_dir: Path | None = None) -> Embedder:
    """The embedder `settings.backend` names; each backend's imports are paid only when it is chosen.
    `cache_dir` (storage.model_cache_dir) keeps what a model needs made once, e.g. its ONNX export."""
    match settings.backend:
        case "sentence-transformers":
            from app.embedding.sentence_transformers_backend import SentenceTransformersEmbedder

            return SentenceTransformersEmbedder(settings, cache_dir)
        case "fake":
            from app.embedding.fake import FakeEmbedder

            return FakeEmbedder()
