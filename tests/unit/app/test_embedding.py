"""The sentence-transformers embedder under each runtime: ONNX exports once, offline, and agrees with torch."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from app.config import EmbeddingSettings
from app.embedding.sentence_transformers_backend import SentenceTransformersEmbedder

TEXTS = ["Refunds are accepted within 30 days of purchase.", "Passwords must be at least 14 characters long."]


def test_onnx_runtimes_export_once_and_agree_with_torch(tmp_path: Path) -> None:
    torch = SentenceTransformersEmbedder(EmbeddingSettings())
    reference = torch.embed(TEXTS)
    for runtime, floor in [("onnx", 0.9999), ("onnx-int8", 0.95)]:
        settings = EmbeddingSettings(runtime=runtime)
        embedder = SentenceTransformersEmbedder(settings, tmp_path)
        vectors = embedder.embed(TEXTS)
        assert vectors.shape == reference.shape and np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
        assert float(np.min(np.sum(vectors * reference, axis=1))) > floor, runtime
        assert embedder.name == f"sentence-transformers:packaged:all-MiniLM-L6-v2:{runtime}" != torch.name
        exported = sorted(p.name for p in tmp_path.iterdir())
        again = SentenceTransformersEmbedder(settings, tmp_path)  # loads the export, makes none
        assert sorted(p.name for p in tmp_path.iterdir()) == exported
        assert np.allclose(again.embed(TEXTS), vectors, atol=1e-6)
