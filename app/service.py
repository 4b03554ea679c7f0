"""What the API holds while it runs: the store, the live index and, once loaded, the answerer."""

from __future__ import annotations

import logging
import threading

from app.answering import Answerer
from app.config import Settings
from app.embedding import Embedder
from app.errors import ModelUnavailable
from app.generation import load_generator
from app.index import LiveIndex
from app.prompt import load_template
from app.reranking import Reranker
from app.retrieval import Retriever
from app.store import Store

log = logging.getLogger(__name__)


class Service:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.store = Store(settings.storage.database_path)
        self.index = LiveIndex(settings.storage.index_dir)
        self.answerer: Answerer | None = None
        self.load_error: str | None = None
        self._loader: threading.Thread | None = None

    def start_loading(self) -> None:
        """Load the models in the background so /health answers while they load."""
        self._loader = threading.Thread(target=self._load_models, name="model-loader", daemon=True)
        self._loader.start()

    def _load_models(self) -> None:
        try:
            self.answerer = build_answerer(self.settings, self.store, self.index)
            log.info("ready")
        except Exception as exc:
            self.load_error = str(exc)
            log.exception("could not load the models")

    def require_answerer(self) -> Answerer:
        if self.answerer is not None:
            return self.answerer
        if self.load_error is not None:
            raise ModelUnavailable(f"the models failed to load: {self.load_error}")
        raise ModelUnavailable("the models are still loading; retry in a few seconds (see GET /ready)")

    def close(self) -> None:
        self.store.close()


def build_answerer(settings: Settings, store: Store, index: LiveIndex) -> Answerer:
    """Load the models and wire retrieval to generation: the API and the eval use the same path."""
    retrieval = settings.retrieval
    reranker = Reranker(retrieval.reranker, settings.embedding.device) if retrieval.reranker else None
    retriever = Retriever(Embedder(settings.embedding), index, store, retrieval, reranker)
    return Answerer(
        retriever=retriever,
        generator=load_generator(settings.generator, settings.storage.model_cache_dir),
        template=load_template(settings.generator.prompt_template),
        settings=retrieval,
        answer_settings=settings.answer,
    )
