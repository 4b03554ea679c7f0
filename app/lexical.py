"""Word-level matching: BM25 postings per index segment, scored with the statistics of all segments together (so
a small new segment ranks like the rest), and the content-word overlap that abstention, verification and quotes
measure."""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import Stemmer
from bm25s.stopwords import STOPWORDS_EN
from scipy import sparse

# Keep one-character tokens: "form PRC-7" must match "7", and amounts like "5 days" matter.
WORD = re.compile(r"(?u)\b\w+\b")
STOPWORDS = frozenset(STOPWORDS_EN)
# Question words carry no topic: "what", "how" must not count as covered or uncovered terms.
QUESTION_WORDS = frozenset(
    ["what", "which", "who", "whom", "whose", "when", "where", "why", "how"]
    + ["does", "do", "did", "can", "could", "should", "would"]
)
IGNORED_TERMS = STOPWORDS | QUESTION_WORDS
# BM25 as Lucene scores it (and bm25s, which this index replaced, with the same tokens).
K1, B = 1.5, 0.75
_stemmer = Stemmer.Stemmer("english")


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


def bm25_terms(text: str) -> list[str]:
    """The terms BM25 counts: lower-cased words without stop words, stemmed, repeats kept."""
    return list(_stemmer.stemWords([w for w in WORD.findall(text.lower()) if w not in STOPWORDS]))


@dataclass
class Postings:
    """One segment's BM25 postings: how often each term occurs in each of its rows, and each row's length."""

    terms: list[str]
    frequencies: sparse.csc_matrix  # rows x terms
    lengths: np.ndarray  # terms per row
    column: dict[str, int] = field(init=False)

    def __post_init__(self) -> None:
        self.column = {term: i for i, term in enumerate(self.terms)}

    @classmethod
    def build(cls, texts: Sequence[str]) -> Postings:
        columns: dict[str, int] = {}
        rows, cols, counts, lengths = [], [], [], []
        for row, text in enumerate(texts):
            terms = Counter(bm25_terms(text))
            lengths.append(sum(terms.values()))
            for term, count in terms.items():
                rows.append(row)
                cols.append(columns.setdefault(term, len(columns)))
                counts.append(count)
        shape = (len(texts), len(columns))
        matrix = sparse.csc_matrix((np.asarray(counts, dtype=np.float32), (rows, cols)), shape=shape)
        return cls(list(columns), matrix, np.asarray(lengths, dtype=np.float32))

    @classmethod
    def merge(cls, parts: Sequence[tuple[Postings, np.ndarray]]) -> Postings:
        """One segment's postings from the `keep` rows (a boolean mask) of each part, in order."""
        columns: dict[str, int] = {}
        matrices, lengths = [], []
        for postings, keep in parts:
            remap = np.asarray([columns.setdefault(term, len(columns)) for term in postings.terms], dtype=np.int64)
            coo = postings.frequencies[keep].tocoo()
            matrices.append((coo.row, remap[coo.col], coo.data, coo.shape[0]))
            lengths.append(postings.lengths[keep])
        offsets = np.cumsum([0] + [m[3] for m in matrices])
        rows = np.concatenate([m[0] + offset for m, offset in zip(matrices, offsets, strict=False)] or [[]])
        cols = np.concatenate([m[1] for m in matrices] or [[]])
        data = np.concatenate([m[2] for m in matrices] or [[]]).astype(np.float32)
        matrix = sparse.csc_matrix((data, (rows, cols)), shape=(int(offsets[-1]), len(columns)))
        return cls(list(columns), matrix, np.concatenate(lengths or [np.empty(0, dtype=np.float32)]))

    def save(self, folder: Path) -> None:
        (folder / "terms.json").write_text(json.dumps(self.terms))
        m = self.frequencies
        np.savez(folder / "postings.npz", data=m.data, indices=m.indices, indptr=m.indptr, lengths=self.lengths)

    @classmethod
    def load(cls, folder: Path) -> Postings:
        terms = json.loads((folder / "terms.json").read_text())
        with np.load(folder / "postings.npz") as f:
            lengths = f["lengths"]
            matrix = sparse.csc_matrix((f["data"], f["indices"], f["indptr"]), shape=(len(lengths), len(terms)))
        return cls(terms, matrix, lengths)


def bm25_scores(query: str, segments: Sequence[Postings]) -> list[np.ndarray]:
    """Each segment's rows scored for `query`, with document frequencies and lengths summed over all segments."""
    terms = bm25_terms(query)
    rows = sum(len(p.lengths) for p in segments)
    scores = [np.zeros(len(p.lengths), dtype=np.float32) for p in segments]
    if not terms or rows == 0:
        return scores
    average_length = max(sum(float(p.lengths.sum()) for p in segments) / rows, 1e-9)
    found = [[p.column.get(term) for p in segments] for term in terms]
    for columns in found:
        frequency = sum(_column_size(p, c) for p, c in zip(segments, columns, strict=True) if c is not None)
        if frequency == 0:
            continue
        idf = math.log(1 + (rows - frequency + 0.5) / (frequency + 0.5))
        for p, c, score in zip(segments, columns, scores, strict=True):
            if c is None:
                continue
            start, end = p.frequencies.indptr[c], p.frequencies.indptr[c + 1]
            at, tf = p.frequencies.indices[start:end], p.frequencies.data[start:end]
            norm = K1 * (1 - B + B * p.lengths[at] / average_length)
            score[at] += idf * tf / (tf + norm)
    return scores


def _column_size(postings: Postings, column: int) -> int:
    return int(postings.frequencies.indptr[column + 1] - postings.frequencies.indptr[column])
