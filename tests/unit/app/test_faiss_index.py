"""The segmented FAISS + BM25 index: files, segments, merges, BM25 over segments (what every backend must do is
in test_index_backends.py)."""

from __future__ import annotations

from pathlib import Path

import bm25s
import numpy as np
import pytest
import Stemmer

from app.faiss_index import MERGE_FACTOR, FaissIndexWriter, FaissLiveIndex
from app.lexical import Postings, bm25_scores
from app.segments import latest_generation
from tests.unit.app.indexes import Corpus, unit


@pytest.fixture
def corpus(tmp_path: Path) -> Corpus:
    return Corpus(tmp_path)


def test_generations_count_up_and_what_no_kept_generation_uses_is_pruned(corpus: Corpus) -> None:
    for n in range(4):
        corpus.add((f"text {n}", unit(1, n, 0)))
        assert corpus.sync() == n + 1
    names = sorted(p.name for p in corpus.index_dir.iterdir())
    manifests = [name for name in names if name.startswith("generation-")]
    assert manifests == ["generation-00000003.json", "generation-00000004.json"]
    assert [name for name in names if name.startswith("segment-")] == [f"segment-0000000{n}-new" for n in (1, 2, 3, 4)]
    assert corpus.sync() is None  # nothing changed, nothing written
    assert FaissLiveIndex(corpus.index_dir).current().size == 4


def test_leftovers_of_a_crashed_write_are_never_read_and_are_replaced(corpus: Corpus) -> None:
    corpus.add(("one", unit(1, 0, 0)))
    corpus.sync()
    (corpus.index_dir / "generation-00000002.json.tmp").write_text("{half")
    (corpus.index_dir / "segment-00000002-new").mkdir()  # its manifest never landed
    (corpus.index_dir / "segment-00000002-new" / "ids.npy").write_bytes(b"junk")
    snapshot = FaissLiveIndex(corpus.index_dir).current()
    assert (snapshot.generation, snapshot.size) == (1, 1)
    two = corpus.add(("two", unit(0, 1, 0)))
    assert FaissIndexWriter(corpus.index_dir, 3).sync(corpus.store) == 2  # a restarted writer
    assert FaissLiveIndex(corpus.index_dir).current().lexical_search("two", 5)[0].chunk_id == corpus.ids(two)[0]


def test_the_live_index_loads_only_the_new_segment_and_old_snapshots_stay_whole(corpus: Corpus) -> None:
    live = FaissLiveIndex(corpus.index_dir)
    assert live.current() is None
    one = corpus.add(("one", unit(1, 0, 0)))
    corpus.sync()
    before = live.current()
    assert [hit.chunk_id for hit in before.dense_search(unit(1, 0, 0), 3)] == corpus.ids(one)
    two = corpus.add(("two", unit(0, 1, 0)))
    corpus.sync()
    after = live.current()
    hits = after.dense_search(unit(0, 1, 0), 3)
    assert hits[0].chunk_id == corpus.ids(two)[0] and abs(hits[0].score - 1.0) < 1e-5
    assert after.generation == 2 and after.segments[0] is before.segments[0]  # not read again
    assert before.size == 1  # a request holding the old snapshot is not disturbed


TEXTS = [
    "Vendors are onboarded with form PRC-7.",
    "Expense claims are filed within 30 days of the trip.",
    "Form HR-2 changes your address, and claims claims.",
    "the the of",
    "Refunds within 30 days of purchase for claims",
]


@pytest.mark.parametrize("query", ["what is PRC-7", "claims filed 30 days", "form", "claims claims address"])
def test_bm25_over_segments_scores_as_bm25s_over_the_whole_corpus(query: str) -> None:
    stemmer, pattern = Stemmer.Stemmer("english"), r"(?u)\b\w+\b"
    reference = bm25s.BM25()
    reference.index(bm25s.tokenize(TEXTS, stopwords="en", stemmer=stemmer, token_pattern=pattern, show_progress=False))
    tokens = bm25s.tokenize([query], stopwords="en", stemmer=stemmer, token_pattern=pattern, return_ids=False)[0]
    expected = reference.get_scores(tokens)
    segments = [Postings.build(TEXTS[:2]), Postings.build(TEXTS[2:3]), Postings.build(TEXTS[3:])]
    np.testing.assert_allclose(np.concatenate(bm25_scores(query, segments)), expected, rtol=1e-5)
    everything = np.ones(len(TEXTS), dtype=bool)
    merged = Postings.merge([(s, everything[: len(s.lengths)]) for s in segments])
    np.testing.assert_allclose(bm25_scores(query, [merged])[0], expected, rtol=1e-5)


def test_a_batch_writes_only_its_own_chunks_and_reads_only_changed_documents(corpus: Corpus) -> None:
    asked: list[object] = []
    newest_chunks = corpus.store.newest_chunks
    corpus.store.newest_chunks = lambda documents=None: asked.append(documents) or newest_chunks(documents)  # type: ignore[method-assign]
    corpus.add(("first", unit(1, 0, 0)))
    corpus.sync()  # the first sync compares everything
    assert asked == [None]
    new = corpus.add(("second", unit(0, 1, 0)), ("third", unit(0, 0, 1)))
    corpus.sync()
    assert asked[1:] == [{new}]
    snapshot = FaissLiveIndex(corpus.index_dir).current()
    assert sorted(snapshot.segments[-1].ids.tolist()) == corpus.ids(new)


def test_small_segments_merge_dropping_deleted_rows_and_search_answers_the_same(tmp_path: Path) -> None:
    corpus = Corpus(tmp_path)
    rng = np.random.default_rng(0)
    for n in range(MERGE_FACTOR - 2):
        corpus.add(*[(f"word{n} item{i}", unit(*rng.standard_normal(3))) for i in range(2)])
        corpus.sync()
    doomed = corpus.add(("doomed words", unit(0, 0, 1)))
    for n in range(3):
        corpus.add((f"single{n}", unit(*rng.standard_normal(3))))
    corpus.sync()
    corpus.store.delete_document(doomed)
    corpus.sync()
    before = FaissLiveIndex(corpus.index_dir).current()
    assert len(before.segments) == MERGE_FACTOR - 1 and before.deleted[-1].size == 1 and before.size == 15
    corpus.add(*[(f"last item{i}", unit(*rng.standard_normal(3))) for i in range(2)])
    corpus.sync()
    after = FaissLiveIndex(corpus.index_dir).current()
    assert len(after.segments) == 1 and after.deleted[0].size == 0 and len(after.segments[0].ids) == after.size == 17
    assert after.lexical_search("doomed", 5) == []
    query = unit(1, 0.5, 0)
    old = {hit.chunk_id: round(hit.score, 5) for hit in before.dense_search(query, 20)}
    new = {hit.chunk_id: round(hit.score, 5) for hit in after.dense_search(query, 20)}
    assert {k: v for k, v in new.items() if k in old} == old
    assert after.lexical_search("word3", 5)[0].chunk_id == before.lexical_search("word3", 5)[0].chunk_id


def test_a_writer_that_finds_another_writers_generation_compares_in_full(corpus: Corpus) -> None:
    corpus.add(("one", unit(1, 0, 0)))
    corpus.sync()
    other = FaissIndexWriter(corpus.index_dir, 3)
    corpus.add(("two", unit(0, 1, 0)))
    assert other.sync(corpus.store) == 2
    corpus.add(("three", unit(0, 0, 1)))
    assert corpus.sync() == 3
    assert FaissLiveIndex(corpus.index_dir).current().chunk_ids() == corpus.store.chunk_ids()


def test_the_layout_before_segments_is_rebuilt_with_numbers_going_on(corpus: Corpus) -> None:
    corpus.index_dir.mkdir()
    (corpus.index_dir / "index-00000007.faiss").write_bytes(b"old")
    (corpus.index_dir / "bm25-00000007").mkdir()
    corpus.add(("one", unit(1, 0, 0)))
    assert corpus.sync() == 8
    assert not any(p.name.startswith(("index-", "bm25-")) for p in corpus.index_dir.iterdir())
    assert latest_generation(corpus.index_dir) == 8
