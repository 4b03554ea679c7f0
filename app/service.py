"""What the API holds while it runs: the store, the live index and, once loaded, the answerer."""

from __future__ import annotations

import logging
import threading

from app.answering import Answerer
from app.components import Models, build_answerer, build_retriever, check_embedder, load_models
from app.config import Settings
from app.errors import ModelUnavailable
from app.index import open_index
from app.metrics import ApiMetrics
from app.store import open_store

log = logging.getLogger(__name__)


class Service:
    def __init__(self, settings: Settings, models: Models | None = None) -> None:
        """`models` already built (tests pass fakes) are used as they are; otherwise `start_loading` loads them."""
        self.settings = settings
        self.store = open_store(settings.storage)
        self.index = open_index(settings)
        self.metrics = ApiMetrics(self.store, self.index)
        self.answerer: Answerer | None = self._answerer(models) if models is not None else None
        self.load_error: str | None = None
        self._loader: threading.Thread | None = None

    def start_loading(self) -> None:
        """Load the models in the background so /health answers while they load."""
        if self.answerer is not None:
            return
        self._loader = threading.Thread(target=self._load_models, name="model-loader", daemon=True)
        self._loader.start()

    def _load_models(self) -> None:
        try:
            self.answerer = self._answerer(load_models(self.settings))
            log.info("ready")
        except Exception as exc:
            self.load_error = str(exc)
            log.exception("could not load the models")

    def _answerer(self, models: Models) -> Answerer:
        check_embedder(self.store, models.embedder)
        retriever = build_retriever(self.settings, self.store, models.embedder, self.index, models.reranker)
        return build_answerer(self.settings, retriever, models.generator, self.metrics.observe_answer)

    def require_answerer(self) -> Answerer:
        if self.answerer is not None:
            return self.answerer
        if self.load_error is not None:
            raise ModelUnavailable(f"the models failed to load: {self.load_error}")
        raise ModelUnavailable("the models are still loading; retry in a few seconds (see GET /ready)")

    def close(self) -> None:
        self.store.close()
