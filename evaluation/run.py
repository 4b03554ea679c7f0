"""Runs an eval set through the real pipeline: upload path, worker, retrieval and answering as /ask does."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from app.answering import Answer, Answerer, abstention_score, checked_answer, select_context
from app.components import build_answerer, build_reranker, build_retriever
from app.config import Settings
from app.embedding import Embedder, build_embedder
from app.generation import build_generator
from app.prompt import NO_ANSWER
from app.retrieval import Retrieval, RetrievedChunk, Retriever
from app.store import Store, open_store
from app.uploads import accept_upload
from app.verification import cited_blocks, repeats_a_sentence, unsupported_numbers
from evaluation.datasets import EvalQuestion, EvalSet
from evaluation.metrics import (
    abstention_report,
    calibrate_threshold,
    contains_answer,
    exact_match,
    f1_score,
    first_hit_rank,
    latency_report,
    mean,
    retrieval_report,
    roc_auc,
)
from ingest.worker import Worker

log = logging.getLogger(__name__)

DEPTH = 10  # hit@10 needs ten results
# Each generated answer is scored as generated (off) and as each verification mode would return it.
VERIFY_MODES = ("off", "quote", "strict")


@dataclass
class ModeResult:
    mode: str
    retrieval: dict[str, float]
    abstention: dict[str, float]
    calibration: dict[str, float]
    answers: dict[str, dict[str, float]] = field(default_factory=dict)  # verify mode -> answer metrics
    latency_ms: dict[str, dict[str, float]] = field(default_factory=dict)
    # One row per question and verify mode: the answer, the blocks it cites and its scores (for reading the errors).
    answer_log: list[dict[str, object]] = field(default_factory=list)


def ingest(eval_set: EvalSet, settings: Settings, embedder: Embedder) -> Store:
    """Upload every document as POST /documents does, then let the real worker index them."""
    store = open_store(settings.storage)
    for document in eval_set.documents:
        accept_upload(store, settings, document.filename, document.content)
    worker = Worker(settings, store, embedder)
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
    eval_set: EvalSet, settings: Settings, retriever: Retriever, answerer: Answerer | None, retrieval_only: bool
) -> ModeResult:
    top_k = settings.retrieval.top_k
    ranks, abstention_scores, best_cosines, abstained, timings = [], [], [], [], {}
    scored: dict[str, list[dict[str, float]]] = {mode: [] for mode in VERIFY_MODES}
    answer_log: list[dict[str, object]] = []
    for question in tqdm(eval_set.questions, desc=settings.retrieval.mode, unit="q"):
        retrieval = retriever.search(question.question, DEPTH)
        top = Retrieval(retrieval.chunks[:top_k], retrieval.timings_ms)  # what /ask would have retrieved
        abstention_scores.append(abstention_score(top.chunks, question.question, settings.retrieval))
        best_cosines.append(max((found.score for found in top.chunks), default=-1.0))
        if question.answerable:
            ranks.append(first_hit_rank([is_hit(found, question) for found in retrieval.chunks]))
        if retrieval_only:
            abstained.append(not select_context(top.chunks, question.question, settings.retrieval))  # as /ask does
        else:
            answer = answerer.stream_from(question.question, top).finish()
            abstained.append(answer.text == NO_ANSWER)
            for mode in VERIFY_MODES:
                final = _verified(answer, question.question, mode, answerer)
                scored[mode].append(score_answer(final, question))
                answer_log.append(_logged(question, mode, final, scored[mode][-1]) | {"score": abstention_scores[-1]})
        for stage, ms in retrieval.timings_ms.items():  # with "generate" when an answer was generated
            timings.setdefault(stage, []).append(ms)
    should_abstain = [not q.answerable for q in eval_set.questions]
    return ModeResult(
        mode=settings.retrieval.mode,
        retrieval=retrieval_report(ranks),
        abstention=abstention_report(should_abstain, abstained),
        calibration=_calibration(eval_set, abstention_scores, best_cosines),
        answers={mode: answer_report(records) for mode, records in scored.items() if records},
        latency_ms=latency_report(timings),
        answer_log=answer_log,
    )


def _logged(question: EvalQuestion, verify: str, answer: Answer, scores: dict[str, float]) -> dict[str, object]:
    blocks = [found.chunk.text for found in answer.citations]
    cited = cited_blocks(answer.text, len(blocks)) if blocks else []
    return {
        "id": question.id,
        "question": question.question,
        "gold": list(question.answers),
        "verify": verify,
        "answer": answer.text,
        "generated": answer.generated,
        "cited_blocks": [blocks[n - 1] for n in cited],
        **scores,
    }


def _calibration(eval_set: EvalSet, scores: list[float], cosines: list[float]) -> dict[str, float]:
    """The best abstention threshold on this set for the configured score, and how well the scores separate."""
    answerable = [s for s, q in zip(scores, eval_set.questions, strict=True) if q.answerable]
    unanswerable = [s for s, q in zip(scores, eval_set.questions, strict=True) if not q.answerable]
    if not answerable or not unanswerable:
        return {}
    value, quality = calibrate_threshold(answerable, unanswerable)
    cosine_answerable = [s for s, q in zip(cosines, eval_set.questions, strict=True) if q.answerable]
    cosine_unanswerable = [s for s, q in zip(cosines, eval_set.questions, strict=True) if not q.answerable]
    return {
        "threshold": round(value, 4),
        **quality,
        "roc_auc": roc_auc(answerable, unanswerable),
        "roc_auc_cosine": roc_auc(cosine_answerable, cosine_unanswerable),
    }


def _verified(answer: Answer, question: str, mode: str, answerer: Answerer) -> Answer:
    """The answer as verification mode `mode` would have returned it (the eval generates with verify off)."""
    if mode == "off" or not answer.citations:
        return answer
    settings = answerer.answer_settings.model_copy(update={"verify": mode, "quotes": False})
    return checked_answer(question, answer.text, answer.citations, {}, settings, answerer.retriever.embedder.embed)


def score_answer(answer: Answer, question: EvalQuestion) -> dict[str, float]:
    """What a user would notice about one answer: declined or not, the fact in it, the right block cited,
    a loop, a number found in no cited block."""
    declined = answer.text == NO_ANSWER
    blocks = [found.chunk.text for found in answer.citations]
    cited = [answer.citations[n - 1] for n in cited_blocks(answer.text, len(blocks))] if blocks else []
    record = {
        "answerable": float(question.answerable),
        "declined": float(declined),
        "looped": float(repeats_a_sentence(answer.text)),
        "unsupported_number": float(bool(blocks) and bool(unsupported_numbers(answer.text, blocks))),
        "verified": float(answer.verified),
    }
    if question.answerable:
        record |= {
            "contains": float(not declined and contains_answer(answer.text, question.answers)),
            "f1": f1_score(answer.text, question.answers),
            "exact_match": exact_match(answer.text, question.answers),
            "cited_right": float(any(is_hit(found, question) for found in cited)),
        }
    return record


def answer_report(records: list[dict[str, float]]) -> dict[str, float]:
    """Shares over the answerable questions (fact in the answer, answered, right block cited, F1), the
    unanswerable ones (declined) and all answers given (loops, unsupported numbers, verified)."""
    answerable = [r for r in records if r["answerable"]]
    unanswerable = [r for r in records if not r["answerable"]]
    given = [r for r in records if not r["declined"]]

    def share(rows: list[dict[str, float]], key: str) -> float:
        return mean([r[key] for r in rows])

    return {
        "contains": share(answerable, "contains"),
        "f1": share(answerable, "f1"),
        "exact_match": share(answerable, "exact_match"),
        "answered": 1 - share(answerable, "declined"),
        "cited_right": share(answerable, "cited_right"),
        "declined_unanswerable": share(unanswerable, "declined"),
        "looped": share(given, "looped"),
        "unsupported_number": share(given, "unsupported_number"),
        "verified": share(given, "verified"),
    }


def run_eval(
    eval_set: EvalSet, data_dir: Path, modes: list[str], retrieval_only: bool, settings: Settings | None = None
) -> list[ModeResult]:
    """Ingest into `data_dir` (a fresh folder) and evaluate each retrieval mode on the same index and models."""
    base = (settings or Settings()).with_data_dir(data_dir)
    embedder = build_embedder(base.embedding, base.storage.model_cache_dir)
    store = ingest(eval_set, base, embedder)
    generator = None if retrieval_only else build_generator(base.generator, base.storage.model_cache_dir)
    reranker = build_reranker(base)
    results = []
    for mode in modes:
        # Generated once with verification off; each verify mode's answer is derived from it (VERIFY_MODES).
        unverified = base.answer.model_copy(update={"verify": "off", "quotes": False})
        mode_settings = base.model_copy(
            update={"retrieval": base.retrieval.model_copy(update={"mode": mode}), "answer": unverified}
        )
        retriever = build_retriever(mode_settings, store, embedder, reranker=reranker)
        answerer = None if generator is None else build_answerer(mode_settings, retriever, generator)
        results.append(evaluate_mode(eval_set, mode_settings, retriever, answerer, retrieval_only))
    return results
