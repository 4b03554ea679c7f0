from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from app.config import RetrievalSettings
from app.index import LiveIndex, new_index, write_generation
from app.retrieval import retrieve
from app.store import NewChunk, Store


def unit(*values: float) -> np.ndarray:
    vector = np.asarray(values, dtype=np.float32)
    return vector / np.linalg.norm(vector)


@pytest.fixture
def indexed(tmp_path: Path) -> tuple[Store, LiveIndex, dict[str, str]]:
    """Three indexed chunks and one of a document still processing, all in a real store and index."""
    store = Store(tmp_path / "db.sqlite3")
    vectors = {"best": unit(1, 0, 0), "close": unit(1, 0.3, 0), "far": unit(1, 1.5, 0), "pending": unit(1, 0.01, 0)}
    docs = {}
    for name, vector in vectors.items():
        doc, _ = store.add_document(f"{name}.txt", "txt", name, 1)
        job = store.claim_next_job(60)
        store.replace_chunks(doc.id, [NewChunk(0, "", name, vector)])
        if name != "pending":
            store.finish_job(job)
        docs[name] = doc.id
    index = new_index(3)
    ids, matrix = store.chunk_vectors(sorted(store.chunk_ids()))
    index.add_with_ids(matrix, ids)
    write_generation(tmp_path / "index", index)
    return store, LiveIndex(tmp_path / "index"), docs


def texts(found: list) -> list[str]:
    return [item.chunk.text for item in found]


def test_only_indexed_documents_are_returned_best_first(indexed) -> None:
    store, index, _ = indexed
    settings = RetrievalSettings(score_threshold=0.0, relative_margin=1.0)
    assert texts(retrieve(unit(1, 0, 0), index, store, 5, settings)) == ["best", "close", "far"]


def test_chunks_far_below_the_best_are_dropped(indexed) -> None:
    store, index, _ = indexed
    settings = RetrievalSettings(score_threshold=0.0, relative_margin=0.1)
    assert texts(retrieve(unit(1, 0, 0), index, store, 5, settings)) == ["best", "close"]


def test_nothing_above_the_threshold_means_nothing(indexed) -> None:
    store, index, _ = indexed
    settings = RetrievalSettings(score_threshold=0.5, relative_margin=1.0)
    assert retrieve(unit(0, 0, 1), index, store, 5, settings) == []


def test_top_k_limits_the_result(indexed) -> None:
    store, index, _ = indexed
    settings = RetrievalSettings(score_threshold=0.0, relative_margin=1.0)
    assert texts(retrieve(unit(1, 0, 0), index, store, 1, settings)) == ["best"]


def test_a_deleted_document_is_never_returned(indexed) -> None:
    store, index, docs = indexed
    store.delete_document(docs["best"])
    settings = RetrievalSettings(score_threshold=0.0, relative_margin=1.0)
    assert "best" not in texts(retrieve(unit(1, 0, 0), index, store, 5, settings))
