"""An embedder without a model, for tests: each content word hashed into one of `dim` buckets, counted, normalised.

Texts that share words are similar, texts that share none are orthogonal; deterministic across processes."""

from __future__ import annotations

import hashlib

import numpy as np

from app.lexical import content_terms


class FakeEmbedder:
    def __init__(self, dim: int = 256) -> None:
        self.dim = dim
        self.name = f"fake:{dim}"

    def embed(self, texts: list[str]) -> np.ndarray:
        vectors = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for term in content_terms(text):
                bucket = int.from_bytes(hashlib.blake2b(term.encode(), digest_size=4).digest(), "little") % self.dim
                vectors[row, bucket] += 1.0
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.where(norms == 0, 1.0, norms)
