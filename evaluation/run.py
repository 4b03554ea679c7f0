"""Runs an eval set through the real pipeline: upload path, worker, retrieval and answering as /ask does."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from app.answering import NO_ANSWER, Answerer, select_context
from app.config import Settings
from app.embedding import Embedder
from app.index import LiveIndex
from app.retrieval import Retrieval, RetrievedChunk, Retriever
from app.service import build_answerer
from app.store import Store
from app.uploads import accept_upload
from evaluation.datasets import EvalQuestion, EvalSet
from evaluation.metrics import (
    abstention_report,
    calibrate_threshold,
    exact_match,
    f1_score,
    first_hit_rank,
    latency_report,
    retrieval_report,
)
from ingest.worker import Worker

log = logging.getLogger(__name__)

DEPTH = 10  # hit@10 needs ten results


@dataclass
class ModeResult:
    mode: str
    retrieval: dict[str, float]
    abstention: dict[str, float]
    calibration: dict[str, float]
    answers: dict[str, float] = field(default_factory=dict)
    latency_ms: dict[str, dict[str, float]] = field(default_factory=dict)


def ingest(eval_set: EvalSet, settings: Settings) -> Store:
    """Upload every document as POST /documents does, then let the real worker index them."""
    store = Store(settings.storage.database_path)
    for document in eval_set.documents:
        accept_upload(store, settings, document.filename, document.content)
    worker = Worker(settings, store, Embedder(settings.embedding))
    with tqdm(total=len(eval_set.documents), desc="ingest", unit="doc") as progress:
        while worker.run_once():
            done = sum(doc.status in ("indexed", "failed") for doc in store.list_documents())
            progress.update(done - progress.n)
    for doc in store.list_documents():
        if doc.status == "failed":
            log.warning("%s failed to index: %s", doc.filename, doc.error)
    return store


def is_hit(found: RetrievedChunk, question: EvalQuestion) -> bool:
    """From the gold source document, or (SQuAD, no source) a chunk that contains a gold answer."""
    if question.source is not None:
        return found.chunk.filename == question.source
    text = found.chunk.text.lower()
    return any(answer.lower() in text for answer in question.answers)


def evaluate_mode(
    eval_set: EvalSet, settings: Settings, store: Store, answerer: Answerer | None, retrieval_only: bool
) -> ModeResult:
    retriever = answerer.retriever if answerer else _retriever(settings, store)
    ranks, best_scores, abstained, timings = [], [], [], {}
    answer_em, answer_f1 = [], []
    for question in tqdm(eval_set.questions, desc=settings.retrieval.mode, unit="q"):
        retrieval = retriever.search(question.question, DEPTH)
        best = max((found.score for found in retrieval.chunks), default=-1.0)
        best_scores.append(best)
        if question.answerable:
            ranks.append(first_hit_rank([is_hit(found, question) for found in retrieval.chunks]))
        if retrieval_only:
            abstained.append(
                not select_context(retrieval.chunks, question.question, settings.retrieval)
            )  # as /ask decides
        else:
            # The answer reads the first top_k of these chunks, as /ask would have retrieved them.
            top = Retrieval(retrieval.chunks[: settings.retrieval.top_k], retrieval.timings_ms)
            *_, answer = answerer.stream_from(question.question, top)
            abstained.append(answer.text == NO_ANSWER)
            if question.answerable:
                answer_em.append(exact_match(answer.text, question.answers))
                answer_f1.append(f1_score(answer.text, question.answers))
        for stage, ms in retrieval.timings_ms.items():  # with "generate" when an answer was generated
            timings.setdefault(stage, []).append(ms)
    should_abstain = [not q.answerable for q in eval_set.questions]
    answerable_scores = [s for s, q in zip(best_scores, eval_set.questions, strict=True) if q.answerable]
    unanswerable_scores = [s for s, q in zip(best_scores, eval_set.questions, strict=True) if not q.answerable]
    calibration: dict[str, float] = {}
    if answerable_scores and unanswerable_scores:
        value, quality = calibrate_threshold(answerable_scores, unanswerable_scores)
        calibration = {"threshold": round(value, 4), **quality}
    answers = {}
    if answer_f1:
        answers = {"exact_match": sum(answer_em) / len(answer_em), "f1": sum(answer_f1) / len(answer_f1)}
    return ModeResult(
        mode=settings.retrieval.mode,
        retrieval=retrieval_report(ranks),
        abstention=abstention_report(should_abstain, abstained),
        calibration=calibration,
        answers=answers,
        latency_ms=latency_report(timings),
    )


def _retriever(settings: Settings, store: Store) -> Retriever:
    return Retriever(Embedder(settings.embedding), LiveIndex(settings.storage.index_dir), store, settings.retrieval)


def run_eval(
    eval_set: EvalSet, data_dir: Path, modes: list[str], retrieval_only: bool, settings: Settings | None = None
) -> list[ModeResult]:
    """Ingest into `data_dir` (a fresh folder) and evaluate each retrieval mode on the same index."""
    base = settings or Settings()
    base.storage.data_dir = data_dir
    store = ingest(eval_set, base)
    results = []
    answerer = None
    for mode in modes:
        settings_for_mode = base.model_copy(deep=True)
        settings_for_mode.retrieval.mode = mode
        if not retrieval_only:
            answerer = build_answerer(settings_for_mode, store, LiveIndex(base.storage.index_dir))
        results.append(evaluate_mode(eval_set, settings_for_mode, store, answerer, retrieval_only))
    return results
