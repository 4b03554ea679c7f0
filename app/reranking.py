"""Optional second stage: a cross-encoder reads question and chunk together and reorders the candidates."""

from __future__ import annotations

import logging
import time

from sentence_transformers import CrossEncoder

from app.errors import ModelUnavailable

log = logging.getLogger(__name__)


class Reranker:
    def __init__(self, model: str, device: str) -> None:
        started = time.perf_counter()
        try:
            self.model = CrossEncoder(model, device=device)
        except Exception as exc:  # any loader failure means the same thing to the user
            raise ModelUnavailable(f"cannot load reranker {model!r}: {exc}") from exc
        log.info("reranker %s loaded in %.1fs", model, time.perf_counter() - started)

    def score(self, question: str, texts: list[str]) -> list[float]:
        scores = self.model.predict([(question, text) for text in texts], show_progress_bar=False)
        return [float(score) for score in scores]
