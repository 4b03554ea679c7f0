"""Word-level matching: BM25 over chunk text (bm25s), saved beside each FAISS generation so both always
describe the same chunks, and the content-word overlap that abstention, verification and quotes measure."""

from __future__ import annotations

import json
import re
from pathlib import Path

import bm25s
import numpy as np
import Stemmer
from bm25s.stopwords import STOPWORDS_EN

# Keep one-character tokens: "form PRC-7" must match "7", and amounts like "5 days" matter.
TOKEN_PATTERN = r"(?u)\b\w+\b"
_stemmer = Stemmer.Stemmer("english")


WORD = re.compile(TOKEN_PATTERN)
# Question words carry no topic: "what", "how" must not count as covered or uncovered terms.
QUESTION_WORDS = frozenset(
    ["what", "which", "who", "whom", "whose", "when", "where", "why", "how"]
    + ["does", "do", "did", "can", "could", "should", "would"]
)
IGNORED_TERMS = frozenset(STOPWORDS_EN) | QUESTION_WORDS


def content_terms(text: str) -> set[str]:
    """Stemmed, lower-cased words of `text` without stop words: what lexical overlap is measured on."""
    words = [w for w in WORD.findall(text.lower()) if w not in IGNORED_TERMS]
    return set(_stemmer.stemWords(words))


def coverage(question: str, texts: list[str]) -> float:
    """Share of the question's content terms found in `texts` (1.0 for a question without any)."""
    wanted = content_terms(question)
    if not wanted:
        return 1.0
    found = set().union(*(content_terms(text) for text in texts)) if texts else set()
    return len(wanted & found) / len(wanted)


def _tokenize(texts: list[str]) -> bm25s.tokenization.Tokenized:
    return bm25s.tokenize(texts, stopwords="en", stemmer=_stemmer, token_pattern=TOKEN_PATTERN, show_progress=False)


class LexicalIndex:
    """BM25 scores for chunk ids; positions inside bm25s map back to chunk ids through `ids`."""

    def __init__(self, retriever: bm25s.BM25 | None, ids: np.ndarray) -> None:
        self.retriever = retriever
        self.ids = ids

    @classmethod
    def build(cls, ids: np.ndarray, texts: list[str]) -> LexicalIndex:
        if len(ids) == 0:
            return cls(None, np.empty(0, dtype=np.int64))
        retriever = bm25s.BM25()
        retriever.index(_tokenize(texts), show_progress=False)
        return cls(retriever, np.asarray(ids, dtype=np.int64))

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        np.save(folder / "ids.npy", self.ids)
        (folder / "meta.json").write_text(json.dumps({"empty": self.retriever is None}))
        if self.retriever is not None:
            self.retriever.save(str(folder))

    @classmethod
    def load(cls, folder: Path) -> LexicalIndex:
        ids = np.load(folder / "ids.npy")
        if json.loads((folder / "meta.json").read_text())["empty"]:
            return cls(None, ids)
        return cls(bm25s.BM25.load(str(folder)), ids)

    def search(self, query: str, k: int, allowed: set[int] | None = None) -> list[tuple[int, float]]:
        """(chunk id, BM25 score) best first; only chunks sharing a term with the query."""
        if self.retriever is None or k <= 0:
            return []
        mask = None
        if allowed is not None:
            mask = np.isin(self.ids, np.fromiter(allowed, dtype=np.int64)).astype(np.float32)
        positions, scores = self.retriever.retrieve(
            _tokenize([query]), k=min(k, len(self.ids)), show_progress=False, weight_mask=mask
        )
        return [
            (int(self.ids[position]), float(score))
            for position, score in zip(positions[0], scores[0], strict=True)
            if score > 0
        ]
