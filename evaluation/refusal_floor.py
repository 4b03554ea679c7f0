"""`python -m evaluation.refusal_floor DATA`: fit the reader's refusal floor on a question set (the shipped floor
is fitted on evaluation/data/policies; python_docs stays unseen).

The reader declines when the refusal sentence's probability p reaches
`generator.min_refusal_probability * exp(answer.refusal_cosine_weight * (cosine - retrieval.score_threshold))`,
the cosine being the best block's: a line in (log p, cosine). A logistic regression of unanswerable against
answerable questions gives its direction; its place is where the share of answerable questions answered and the
share of unanswerable ones declined balance best (the middle of the best stretch). Questions that retrieval
already declines never reach the reader and count as declined at every floor."""

from __future__ import annotations

import argparse
import logging
import math
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from app.answering import select_context
from app.components import build_answerer, build_retriever
from app.config import Settings
from app.embedding import build_embedder
from app.generation import build_generator
from app.generation.llama_cpp_backend import LlamaCppGenerator
from app.logs import configure_logging
from app.prompt import build_prompt
from evaluation.datasets import load_eval_set
from evaluation.metrics import roc_auc

THRESHOLDS = 2001  # places tried for the decision line, evenly over the range of the questions' scores


@dataclass(frozen=True)
class Signals:
    answerable: bool
    log_refusal: float | None  # None: retrieval declined, the reader was not asked
    cosine: float


@dataclass(frozen=True)
class Floor:
    min_refusal_probability: float
    refusal_cosine_weight: float
    score_threshold: float

    def declines(self, signals: Signals) -> bool:
        """What the service does: decline when the refusal is at least as likely as the floor at this cosine."""
        if signals.log_refusal is None:
            return True
        growth = self.refusal_cosine_weight * (signals.cosine - self.score_threshold)
        return signals.log_refusal >= math.log(self.min_refusal_probability) + growth


def outcome(signals: list[Signals], declined: list[bool]) -> tuple[float, float]:
    """(share of answerable questions answered, share of unanswerable ones declined)."""
    answerable = [not d for s, d in zip(signals, declined, strict=True) if s.answerable]
    unanswerable = [d for s, d in zip(signals, declined, strict=True) if not s.answerable]
    return sum(answerable) / max(len(answerable), 1), sum(unanswerable) / max(len(unanswerable), 1)


def fit_floor(signals: list[Signals], score_threshold: float) -> Floor:
    asked = [s for s in signals if s.log_refusal is not None]
    features = np.array([[s.log_refusal, s.cosine] for s in asked])
    w_refusal, w_cosine, _ = logistic_regression(features, np.array([not s.answerable for s in asked], dtype=float))
    if w_refusal <= 0:
        raise ValueError("on this set a likelier refusal does not mean an unanswerable question: no floor to fit")
    scores = features @ np.array([w_refusal, w_cosine])
    candidates = np.linspace(scores.min(), scores.max(), THRESHOLDS)
    balances = [sum(outcome(signals, _declined(signals, scores >= threshold))) / 2 for threshold in candidates]
    best = [threshold for threshold, balance in zip(candidates, balances, strict=True) if balance == max(balances)]
    threshold = (best[0] + best[-1]) / 2
    # w_refusal * log p + w_cosine * cosine >= threshold, solved for p at the abstention threshold's cosine.
    floor = math.exp((threshold - w_cosine * score_threshold) / w_refusal)
    return Floor(floor, float(-w_cosine / w_refusal), score_threshold)


def logistic_regression(
    features: npt.NDArray[np.float64], labels: npt.NDArray[np.float64], l2: float = 1.0
) -> npt.NDArray[np.float64]:
    """Weights per feature, then the intercept: Newton's method on the log loss with an L2 penalty on the weights
    (as scikit-learn's LogisticRegression with C=1)."""
    x = np.hstack([features, np.ones((len(features), 1))])
    penalty = np.diag([l2] * features.shape[1] + [0.0])
    weights = np.zeros(x.shape[1])
    for _ in range(100):
        p = 1 / (1 + np.exp(-x @ weights))
        gradient = x.T @ (p - labels) + penalty @ weights
        hessian = x.T @ (x * (p * (1 - p))[:, None]) + penalty
        step = np.linalg.solve(hessian, gradient)
        weights -= step
        if np.abs(step).max() < 1e-10:
            break
    return weights


def _declined(signals: list[Signals], asked_declines: npt.NDArray[np.bool_]) -> list[bool]:
    answers = iter(asked_declines.tolist())
    return [True if s.log_refusal is None else next(answers) for s in signals]


def collect_signals(data: Path, limit: int | None) -> tuple[list[Signals], Settings]:
    """Each question's signals with the shipped settings, over a fresh ingest of the set's documents."""
    from evaluation.run import ingest  # the worker's environment (dedoc): run this with .venv-worker

    eval_set = load_eval_set(data, limit=limit)
    with tempfile.TemporaryDirectory(prefix="docqa-floor-") as data_dir:
        settings = Settings().with_data_dir(Path(data_dir))
        embedder = build_embedder(settings.embedding, settings.storage.model_cache_dir)
        store = ingest(eval_set, settings, embedder)
        generator = build_generator(settings.generator, settings.storage.model_cache_dir)
        if not isinstance(generator, LlamaCppGenerator):
            raise ValueError("the floor is fitted with generator.backend llama-cpp (the default)")
        retriever = build_retriever(settings, store, embedder)
        template = build_answerer(settings, retriever, generator).template
        signals = []
        for question in eval_set.questions:
            chunks = retriever.search(question.question, settings.retrieval.top_k).chunks
            context = select_context(chunks, question.question, settings.retrieval)
            if not context:
                signals.append(Signals(question.answerable, None, max((c.score for c in chunks), default=-1.0)))
                continue
            p = generator.refusal_probability(build_prompt(template, question.question, context))
            signals.append(Signals(question.answerable, math.log(max(p, 1e-12)), max(c.score for c in context)))
    return signals, settings


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m evaluation.refusal_floor", description=__doc__)
    parser.add_argument("data", type=Path, help="a folder with questions.jsonl and documents/, or a SQuAD file")
    parser.add_argument("--limit", type=int, help="first N questions")
    args = parser.parse_args()
    configure_logging(logging.WARNING)
    try:
        signals, settings = collect_signals(args.data, args.limit)
        floor = fit_floor(signals, settings.retrieval.score_threshold)
    except ValueError as exc:
        parser.error(str(exc))
    asked = [s for s in signals if s.log_refusal is not None]
    refusal_only = roc_auc(
        [s.log_refusal for s in asked if not s.answerable], [s.log_refusal for s in asked if s.answerable]
    )
    answered, declined = outcome(signals, [floor.declines(s) for s in signals])
    print(f"{len(signals)} questions, {len(asked)} reached the reader; ROC AUC of the refusal alone {refusal_only:.3f}")
    print(f"generator.min_refusal_probability: {floor.min_refusal_probability:.2f}")
    print(f"answer.refusal_cosine_weight: {floor.refusal_cosine_weight:.2f}")
    print(f"at that floor on this set: answered {answered:.3f}, declined {declined:.3f}")


if __name__ == "__main__":
    main()
