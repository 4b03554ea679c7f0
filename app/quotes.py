"""Evidence quotes: the sentence of a block that best supports an answer, with its offsets in the block's text."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from app.lexical import content_terms

# A sentence ends at . ! ? before a space and a capital, digit, quote or bracket, or at a line break.
SENTENCE_BREAK = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(\[`*])|\n+")
# Sentences this short say too little to stand as evidence on their own ("Yes.", "See below.").
MIN_CHARS = 12
# Weights of the match to the question's words, the answer's words, and the embedding similarity.
QUESTION_WEIGHT, ANSWER_WEIGHT, EMBEDDING_WEIGHT = 0.5, 1.0, 0.5

Embed = Callable[[list[str]], np.ndarray]  # texts -> L2-normalised vectors, one row each


@dataclass(frozen=True)
class Quote:
    block: int  # 1-based number of the block, as the answer cites it
    text: str  # == block_text[start:end]
    start: int
    end: int
    score: float


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of each sentence of `text`, without surrounding blanks; headings and tiny bits left out."""
    spans, start = [], 0
    for boundary in [*SENTENCE_BREAK.finditer(text), None]:
        end = boundary.start() if boundary else len(text)
        piece = text[start:end]
        lead = len(piece) - len(piece.lstrip())
        body = piece.strip()
        if len(body) >= MIN_CHARS and not body.startswith("#"):
            spans.append((start + lead, start + lead + len(body)))
        if boundary:
            start = boundary.end()
    return spans


def _share(wanted: set[str], sentence: str) -> float:
    return len(wanted & content_terms(sentence)) / len(wanted) if wanted else 0.0


def best_quotes(
    question: str, answer: str, blocks: Sequence[str], numbers: Sequence[int], embed: Embed | None = None
) -> dict[int, Quote]:
    """The best-supporting sentence of each block in `numbers` (1-based), by word match and embedding.

    `answer` may be "" (when looking for a quote to stand in for an answer that failed verification)."""
    candidates = [(n, start, end) for n in numbers for start, end in sentence_spans(blocks[n - 1])]
    if not candidates:
        return {}
    texts = [blocks[n - 1][start:end] for n, start, end in candidates]
    similarity = np.zeros(len(texts))
    if embed is not None:
        vectors = embed([f"{question} {answer}".strip(), *texts])
        similarity = vectors[1:] @ vectors[0]
    asked, answered = content_terms(question), content_terms(answer)
    best: dict[int, Quote] = {}
    for (n, start, end), text, cosine in zip(candidates, texts, similarity, strict=True):
        score = (
            QUESTION_WEIGHT * _share(asked, text)
            + ANSWER_WEIGHT * _share(answered, text)
            + EMBEDDING_WEIGHT * float(cosine)
        )
        if n not in best or score > best[n].score:
            best[n] = Quote(n, text, start, end, round(score, 4))
    return best
