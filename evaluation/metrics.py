"""Retrieval, answer and abstention metrics, with SQuAD's answer normalization."""

from __future__ import annotations

import math
import re
import string
import unicodedata
from bisect import bisect_left, bisect_right
from collections import Counter
from collections.abc import Sequence
from itertools import pairwise

ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
PUNCTUATION = frozenset(string.punctuation)
# How far below the lowest (above the highest) score the "answer all" ("abstain on all") thresholds sit.
EDGE = 1e-3


def normalize_answer(text: str) -> str:
    """SQuAD's official normalization: lower case, no punctuation, no articles, single spaces. Unlike the
    official script, Unicode punctuation goes too: "‘else if’" holds the answer "else if"."""
    text = "".join(ch for ch in text.lower() if ch not in PUNCTUATION and not unicodedata.category(ch).startswith("P"))
    return " ".join(ARTICLES.sub(" ", text).split())


def mean(values: Sequence[float]) -> float:
    """The mean, 0.0 for no values (a share of nothing)."""
    return sum(values) / len(values) if values else 0.0


def exact_match(prediction: str, golds: Sequence[str]) -> float:
    """1.0 when the prediction equals any gold answer after normalization; no golds means the gold is ""."""
    return max(float(normalize_answer(prediction) == normalize_answer(gold)) for gold in golds or [""])


def f1_score(prediction: str, golds: Sequence[str]) -> float:
    """SQuAD v2.0's token F1, the best over the gold answers; no golds means the gold is "" (as for v2.0)."""
    predicted = normalize_answer(prediction).split()
    return max(_token_f1(predicted, normalize_answer(gold).split()) for gold in golds or [""])


def _token_f1(predicted: list[str], gold: list[str]) -> float:
    if not predicted or not gold:
        return float(predicted == gold)
    same = sum((Counter(predicted) & Counter(gold)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(predicted), same / len(gold)
    return 2 * precision * recall / (precision + recall)


def contains_answer(prediction: str, golds: Sequence[str]) -> bool:
    """Whether the prediction holds any gold answer as whole words, after SQuAD normalization; a gold of
    punctuation alone ("','", ":="), which normalization would empty, as written (case and spacing aside)."""
    predicted, folded = f" {normalize_answer(prediction)} ", " ".join(prediction.lower().split())

    def held(gold: str) -> bool:
        normalized = normalize_answer(gold)
        return f" {normalized} " in predicted if normalized else " ".join(gold.lower().split()) in folded

    return any(held(gold) for gold in golds if gold.strip())


def roc_auc(positive_scores: Sequence[float], negative_scores: Sequence[float]) -> float:
    """The chance that a random positive scores above a random negative (ties count half)."""
    if not positive_scores or not negative_scores:
        raise ValueError("ROC AUC needs scores of both classes")
    negatives = sorted(negative_scores)
    wins = sum(
        bisect_left(negatives, p) + 0.5 * (bisect_right(negatives, p) - bisect_left(negatives, p))
        for p in positive_scores
    )
    return wins / (len(positive_scores) * len(negatives))


def first_hit_rank(retrieved: Sequence[bool]) -> int | None:
    """1-based rank of the first relevant result, or None when none is."""
    return next((rank for rank, hit in enumerate(retrieved, start=1) if hit), None)


def retrieval_report(ranks: Sequence[int | None], ks: Sequence[int] = (1, 3, 5, 10)) -> dict[str, float]:
    """hit@k for each k and the mean reciprocal rank, over answerable questions (a None rank is a miss).

    All zeros when `ranks` is empty.
    """
    n = len(ranks) or 1
    report = {f"hit@{k}": sum(1 for rank in ranks if rank is not None and rank <= k) / n for k in ks}
    report["mrr"] = sum(1 / rank for rank in ranks if rank is not None) / n
    return report


def abstention_report(should_abstain: Sequence[bool], abstained: Sequence[bool]) -> dict[str, float]:
    """Precision, recall and F1 of abstaining, plus accuracy (the share of questions handled rightly).

    precision = correct abstentions / abstentions made, 0.0 when no abstention was made;
    recall = correct abstentions / questions that should abstain, 0.0 when none should.
    """
    if len(should_abstain) != len(abstained):
        raise ValueError(f"{len(should_abstain)} expectations but {len(abstained)} outcomes")
    right = sum(1 for want, did in zip(should_abstain, abstained, strict=True) if want and did)
    return _abstention_counts(right, sum(map(bool, abstained)), sum(map(bool, should_abstain)), len(abstained))


def _abstention_counts(right: int, made: int, wanted: int, total: int) -> dict[str, float]:
    """The report from counts: correct abstentions, abstentions made, abstentions wanted, questions."""
    wrong_abstentions, missed = made - right, wanted - right
    return {
        "precision": right / made if made else 0.0,
        "recall": right / wanted if wanted else 0.0,
        # 2TP / (2TP + FP + FN): equal to 2PR / (P + R), and exact ratios keep ties exact.
        "f1": 2 * right / (2 * right + wrong_abstentions + missed) if right else 0.0,
        "accuracy": (total - wrong_abstentions - missed) / total if total else 0.0,
    }


def calibrate_threshold(
    answerable_scores: Sequence[float], unanswerable_scores: Sequence[float]
) -> tuple[float, dict[str, float]]:
    """The abstention threshold with the best abstention F1, and the report at that threshold.

    A question abstains when its score (its best retrieval similarity) is below the threshold. Candidates are the
    midpoints between sorted distinct scores, plus one just below the lowest and one just above the highest;
    ties go to the lower threshold, so that more questions are answered.
    """
    if not answerable_scores and not unanswerable_scores:
        raise ValueError("no scores to calibrate on")
    answerable, unanswerable = sorted(answerable_scores), sorted(unanswerable_scores)
    total = len(answerable) + len(unanswerable)
    results = []
    for threshold in _candidate_thresholds([*answerable, *unanswerable]):
        # Scores below the threshold abstain: right ones are unanswerable, wrong ones answerable.
        right, wrong = bisect_left(unanswerable, threshold), bisect_left(answerable, threshold)
        results.append((threshold, _abstention_counts(right, right + wrong, len(unanswerable), total)))
    # Candidates ascend and max() keeps the first of equals: ties go to the lower threshold.
    return max(results, key=lambda result: result[1]["f1"])


def _candidate_thresholds(scores: list[float]) -> list[float]:
    distinct = sorted(set(scores))
    middles = [(low + high) / 2 for low, high in pairwise(distinct)]
    return [distinct[0] - EDGE, *middles, distinct[-1] + EDGE]


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0 to 100), interpolating linearly between ranks like numpy's default."""
    if not values:
        raise ValueError("percentile of no values")
    if not 0 <= q <= 100:
        raise ValueError(f"q must be between 0 and 100, got {q}")
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def latency_report(samples_ms: dict[str, Sequence[float]]) -> dict[str, dict[str, float]]:
    """p50, p95 and sample count per stage; stages without samples are left out."""
    return {
        stage: {"p50": percentile(values, 50), "p95": percentile(values, 95), "n": len(values)}
        for stage, values in samples_ms.items()
        if values
    }


def markdown_table(rows: list[dict[str, object]], columns: list[str]) -> str:
    """A GitHub Markdown table of `columns`; floats get 3 decimals, missing values stay blank."""
    lines = [_table_row(columns), _table_row(["---"] * len(columns))]
    lines.extend(_table_row([_cell(row.get(column)) for column in columns]) for row in rows)
    return "\n".join(lines) + "\n"


def _table_row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value).replace("|", "\\|").replace("\n", " ")
