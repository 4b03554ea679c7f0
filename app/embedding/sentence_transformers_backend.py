"""The sentence-transformers backend: the packaged MiniLM by default, or any model id / local path."""

from __future__ import annotations

import logging
import time

import numpy as np
from sentence_transformers import SentenceTransformer

from app.config import EmbeddingSettings
from app.errors import ModelUnavailable
from app.packaged import is_packaged, resolve_packaged

log = logging.getLogger(__name__)


class SentenceTransformersEmbedder:
    def __init__(self, settings: EmbeddingSettings) -> None:
        started = time.perf_counter()
        source = str(resolve_packaged(settings.model)[0]) if is_packaged(settings.model) else settings.model
        try:
            self.model = SentenceTransformer(source, device=settings.device)
        except Exception as exc:  # any loader failure means the same thing to the user
            raise ModelUnavailable(f"cannot load embedding model {settings.model!r}: {exc}") from exc
        self.batch_size = settings.batch_size
        self.dim = self.model.get_embedding_dimension()
        self.name = f"sentence-transformers:{settings.model}"
        log.info("embedding model %s loaded in %.1fs", settings.model, time.perf_counter() - started)

    def embed(self, texts: list[str]) -> np.ndarray:
        vectors = self.model.encode(
            texts,
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32).reshape(len(texts), self.dim)
