"""What every index backend does, written by its writer from a real SQLite store: FAISS segment files, and Qdrant
in its embedded local mode (the same client API as a Qdrant server)."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.store import NewChunk
from tests.unit.app.indexes import Corpus, unit


@pytest.fixture(params=["faiss", "qdrant"])
def corpus(request: pytest.FixtureRequest, tmp_path: Path) -> Corpus:
    return Corpus(tmp_path, request.param)


def test_an_index_holds_exactly_the_stores_chunks_and_writes_only_on_change(corpus: Corpus) -> None:
    assert corpus.index.current() is None
    first = corpus.add(("one", unit(1, 0, 0)), ("two", unit(0, 1, 0)))
    generation = corpus.sync()
    assert generation is not None and corpus.current().generation == generation
    assert corpus.sync() is None  # nothing changed, nothing written
    corpus.add(("three", unit(0, 0, 1)))
    assert corpus.sync() == generation + 1
    assert corpus.current().size == 3
    corpus.store.delete_document(first)
    corpus.sync()
    assert corpus.current().size == 1


def test_dense_scores_are_cosine_similarities_best_first_across_writes(corpus: Corpus) -> None:
    a = corpus.add(("a", unit(1, 0, 0)))
    corpus.sync()
    b = corpus.add(("b", unit(1, 1, 0)))
    corpus.sync()
    c = corpus.add(("c", unit(0, 0, 1)))
    corpus.sync()
    (a_id,), (b_id,), (c_id,) = corpus.ids(a), corpus.ids(b), corpus.ids(c)
    snapshot = corpus.current()
    hits = snapshot.dense_search(unit(1, 0, 0), 5)
    assert [hit.chunk_id for hit in hits] == [a_id, b_id, c_id]
    assert [round(hit.score, 3) for hit in hits] == [1.0, 0.707, 0.0]
    assert snapshot.similarities(unit(1, 0, 0), [c_id, b_id]) == {c_id: 0.0, b_id: pytest.approx(0.7071, abs=1e-4)}
    assert [hit.chunk_id for hit in snapshot.dense_search(unit(1, 0, 0), 5, allowed={b_id, c_id})] == [b_id, c_id]


def test_bm25_finds_exact_terms_and_respects_the_allowed_ids(corpus: Corpus) -> None:
    vendors = corpus.add(("Vendors are onboarded with form PRC-7.", unit(1, 0, 0)))
    claims = corpus.add(("Expense claims are filed within 30 days.", unit(0, 1, 0)))
    corpus.sync()
    address = corpus.add(("Form HR-2 changes your address.", unit(0, 0, 1)))
    corpus.sync()
    snapshot = corpus.current()
    assert snapshot.lexical_search("what is PRC-7", 5)[0].chunk_id == corpus.ids(vendors)[0]
    assert [hit.chunk_id for hit in snapshot.lexical_search("claims filed", 5)] == corpus.ids(claims)
    only_address = set(corpus.ids(address))
    assert [hit.chunk_id for hit in snapshot.lexical_search("form", 5, allowed=only_address)] == [*only_address]
    assert snapshot.lexical_search("zebra", 5) == []


def test_deleted_and_replaced_chunks_are_never_found(corpus: Corpus) -> None:
    refunds = corpus.add(("refunds within 30 days", unit(1, 0, 0)), name="refunds.md")
    laptops = corpus.add(("laptops are replaced every 4 years", unit(0, 1, 0)))
    corpus.sync()
    v1 = corpus.ids(refunds)
    corpus.add(("refunds within 60 days", unit(1, 0, 0)), name="refunds.md")  # version 2
    corpus.sync()
    snapshot = corpus.current()
    assert snapshot.chunk_ids() == set(corpus.ids(refunds) + corpus.ids(laptops)) and not set(v1) & snapshot.chunk_ids()
    assert [hit.chunk_id for hit in snapshot.lexical_search("refunds", 5)] == corpus.ids(refunds)
    assert [hit.chunk_id for hit in snapshot.dense_search(unit(1, 0, 0), 1)] == corpus.ids(refunds)
    assert snapshot.similarities(unit(1, 0, 0), v1) == {}
    corpus.store.delete_document(laptops)
    corpus.sync()
    snapshot = corpus.current()
    assert snapshot.lexical_search("laptops", 5) == [] and snapshot.size == 1


def test_a_failed_new_version_gives_the_index_back_the_previous_one(corpus: Corpus) -> None:
    refunds = corpus.add(("refunds within 30 days", unit(1, 0, 0)), name="refunds.md")
    corpus.sync()
    v1 = corpus.ids(refunds)
    doc, outcome = corpus.store.add_document("refunds.md", "md", "sha-v2", 1)
    job = corpus.store.jobs.claim_next(60)
    assert outcome == "new_version" and job is not None
    corpus.store.replace_chunks(doc.id, [NewChunk(0, "", "refunds within 60 days", unit(1, 0, 0))], job.version)
    corpus.sync()
    v2 = corpus.ids(refunds)
    assert corpus.current().chunk_ids() == set(v2) != set(v1)  # the index takes the newest stored version
    corpus.store.jobs.finish(job, error="the parser failed")
    corpus.sync()
    view = corpus.current()
    assert view.chunk_ids() == set(v1)
    assert [hit.chunk_id for hit in view.lexical_search("refunds", 5)] == v1
    assert [hit.chunk_id for hit in view.dense_search(unit(1, 0, 0), 5)] == v1
