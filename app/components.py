"""Where the parts are built: each from its own settings section, in one place. Tests hand in fakes instead."""

from __future__ import annotations

from dataclasses import dataclass

from app.answering import Answerer, AnswerObserver
from app.config import Settings
from app.embedding import Embedder, build_embedder
from app.errors import ModelUnavailable
from app.generation import Generator, build_generator
from app.index import SearchIndex, open_index
from app.prompt import load_template
from app.reranking import Reranker
from app.retrieval import Retriever
from app.store import Store


@dataclass(frozen=True)
class Models:
    """The parts that take time to load."""

    embedder: Embedder
    generator: Generator
    reranker: Reranker | None = None


def load_models(settings: Settings) -> Models:
    return Models(
        embedder=build_embedder(settings.embedding, settings.storage.model_cache_dir),
        generator=build_generator(settings.generator, settings.storage.model_cache_dir),
        reranker=build_reranker(settings),
    )


def check_embedder(store: Store, embedder: Embedder) -> None:
    """The store's vectors all come from one embedder: the first to use the store is recorded, and another one
    is refused (its query vectors would be compared with the stored ones, and every search would be noise)."""
    recorded = store.claim_embedder(embedder.name)
    if recorded != embedder.name:
        raise ModelUnavailable(
            f"the vectors in {store.location} were made by {recorded}, but the configured embedder is {embedder.name}: "
            "set embedding.backend and embedding.model back, or use a new storage.data_dir and upload again"
        )


def build_reranker(settings: Settings) -> Reranker | None:
    model = settings.retrieval.reranker
    return Reranker(model, settings.embedding.device) if model else None


def build_retriever(
    settings: Settings,
    store: Store,
    embedder: Embedder,
    index: SearchIndex | None = None,
    reranker: Reranker | None = None,
) -> Retriever:
    """Over `index`, or over the configured one when none is given."""
    index = index if index is not None else open_index(settings)
    return Retriever(embedder, index, store, settings.retrieval, reranker)


def build_answerer(
    settings: Settings, retriever: Retriever, generator: Generator, observe: AnswerObserver | None = None
) -> Answerer:
    """Retrieval wired to generation: the API and the eval answer through the same path."""
    return Answerer(
        retriever=retriever,
        generator=generator,
        template=load_template(settings.generator.prompt_template),
        settings=settings.retrieval,
        answer_settings=settings.answer,
        observe=observe,
    )
