"""Retrieval over a real store, real MiniLM embeddings, real FAISS and BM25 files."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.config import EmbeddingSettings, RetrievalSettings
from app.embedding import Embedder
from app.embedding.sentence_transformers_backend import SentenceTransformersEmbedder
from app.faiss_index import FaissIndexWriter, FaissLiveIndex
from app.reranking import Reranker
from app.retrieval import Filters, Retriever, reciprocal_rank_fusion
from app.sqlite_store import SQLiteStore
from app.store import NewChunk, Store, searchable_text

POLICIES = {
    "expenses.md": ("Expenses > Deadlines", "Expense claims must be filed within 30 days of the purchase."),
    "vendors.md": ("Procurement > Onboarding", "New suppliers are registered with form PRC-7 in the Helix system."),
    "security.md": ("Security > Passwords", "Passwords need at least 14 characters and change every 90 days."),
    "leave.md": ("Leave > Parental", "New parents receive 16 weeks of paid parental leave."),
}


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    return SentenceTransformersEmbedder(EmbeddingSettings())


@pytest.fixture
def corpus(tmp_path: Path, embedder: Embedder) -> tuple[Store, FaissLiveIndex, dict[str, str]]:
    store = SQLiteStore(tmp_path / "db.sqlite3")
    doc_ids = {}
    for filename, (section, text) in POLICIES.items():
        doc, _ = store.add_document(filename, "md", filename, 1, tags=["finance"] if "expenses" in filename else [])
        store.replace_chunks(doc.id, [NewChunk(0, section, text, embedder.embed([searchable_text(section, text)])[0])])
        store.jobs.finish(store.jobs.claim_next(60))
        doc_ids[filename] = doc.id
    FaissIndexWriter(tmp_path / "index", embedder.dim).sync(store)
    return store, FaissLiveIndex(tmp_path / "index"), doc_ids


def retriever(corpus, embedder: Embedder, reranker: Reranker | None = None, **settings: object) -> Retriever:
    store, index, _ = corpus
    return Retriever(embedder, index, store, RetrievalSettings(**settings), reranker)


def filenames(retrieval) -> list[str]:
    return [found.chunk.filename for found in retrieval.chunks]


def test_fusion_rewards_agreement_and_keeps_single_votes() -> None:
    assert reciprocal_rank_fusion([[1, 2, 3], [3, 1]], [1.0, 1.0], k=60) == [1, 3, 2]
    assert reciprocal_rank_fusion([[1, 2], [2]], [1.0, 0.0], k=60) == [1, 2]


@pytest.mark.parametrize("mode", ["dense", "bm25", "hybrid"])
def test_each_mode_finds_the_right_policy(corpus, embedder: Embedder, mode: str) -> None:
    search = retriever(corpus, embedder, mode=mode)
    assert filenames(search.search("What is form PRC-7 for?", 3))[0] == "vendors.md"
    assert filenames(search.search("How long must passwords be?", 3))[0] == "security.md"


def test_scores_are_cosine_similarities_even_for_bm25_hits(corpus, embedder: Embedder) -> None:
    found = retriever(corpus, embedder, mode="bm25").search("form PRC-7", 3).chunks
    question = embedder.embed(["form PRC-7"])[0]
    chunk_vector = embedder.embed([searchable_text(found[0].chunk.section, found[0].chunk.text)])[0]
    assert found[0].score == pytest.approx(float(question @ chunk_vector), abs=1e-4)


def test_hybrid_reports_its_stage_timings(corpus, embedder: Embedder) -> None:
    timings = retriever(corpus, embedder).search("parental leave", 2).timings_ms
    assert set(timings) == {"embed", "search", "fuse"}


def test_filters_restrict_to_documents_and_tags(corpus, embedder: Embedder) -> None:
    store, _, doc_ids = corpus
    search = retriever(corpus, embedder)
    only = Filters(document_ids=[doc_ids["leave.md"]])
    assert filenames(search.search("How long must passwords be?", 4, only)) == ["leave.md"]
    assert filenames(search.search("passwords", 4, Filters(tags=["finance"]))) == ["expenses.md"]
    assert search.search("passwords", 4, Filters(tags=["unknown"])).chunks == []


def test_a_deleted_document_is_never_returned(corpus, embedder: Embedder) -> None:
    store, _, doc_ids = corpus
    store.delete_document(doc_ids["security.md"])
    assert "security.md" not in filenames(retriever(corpus, embedder).search("How long must passwords be?", 4))


def test_a_reranker_decides_the_final_order(corpus, embedder: Embedder, tmp_path: Path) -> None:
    reranker = Reranker(str(tiny_cross_encoder(tmp_path / "ce")), "cpu")
    question = "How long must passwords be?"
    plain = retriever(corpus, embedder).search(question, 4).chunks
    reranked = retriever(corpus, embedder, reranker=reranker).search(question, 4)
    scores = reranker.score(question, [searchable_text(f.chunk.section, f.chunk.text) for f in plain])
    expected = [plain[i].chunk.id for i in sorted(range(len(plain)), key=lambda i: -scores[i])]
    assert [found.chunk.id for found in reranked.chunks] == expected
    assert "rerank" in reranked.timings_ms


def tiny_cross_encoder(folder: Path) -> Path:
    """A randomly initialised one-layer BERT cross-encoder with MiniLM's tokenizer: plumbing only."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from app.packaged import resolve_packaged

    tokenizer = AutoTokenizer.from_pretrained(resolve_packaged("packaged:all-MiniLM-L6-v2")[0])
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=32, num_labels=1,
    )  # fmt: skip
    BertForSequenceClassification(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
