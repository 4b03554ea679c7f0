from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from app.faiss_index import FaissLiveIndex, index_ids, latest_generation, new_index, write_generation
from app.lexical import LexicalIndex


def unit(*values: float) -> np.ndarray:
    vector = np.asarray(values, dtype=np.float32)
    return vector / np.linalg.norm(vector)


def write(index_dir: Path, chunks: dict[int, tuple[np.ndarray, str]], keep: int = 2) -> int:
    dense = new_index(3)
    ids = np.asarray(list(chunks), dtype=np.int64)
    if len(ids):
        dense.add_with_ids(np.vstack([vector for vector, _ in chunks.values()]), ids)
    lexical = LexicalIndex.build(ids, [text for _, text in chunks.values()])
    return write_generation(index_dir, dense, lexical, keep=keep)


def test_generations_count_up_and_old_ones_are_pruned(tmp_path: Path) -> None:
    chunks = {7: (unit(1, 0, 0), "refunds within 30 days")}
    assert [write(tmp_path, chunks) for _ in range(4)] == [1, 2, 3, 4]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "bm25-00000003",
        "bm25-00000004",
        "index-00000003.faiss",
        "index-00000004.faiss",
    ]
    assert latest_generation(tmp_path) == 4


def test_leftovers_of_a_crashed_write_are_never_read(tmp_path: Path) -> None:
    write(tmp_path, {1: (unit(1, 0, 0), "one")})
    (tmp_path / "index-00000002.faiss.tmp").write_bytes(b"half written")
    (tmp_path / "bm25-00000002").mkdir()  # its FAISS file never landed
    snapshot = FaissLiveIndex(tmp_path).current()
    assert (snapshot.generation, snapshot.size) == (1, 1)
    assert write(tmp_path, {1: (unit(1, 0, 0), "one"), 2: (unit(0, 1, 0), "two")}) == 2
    assert FaissLiveIndex(tmp_path).current().lexical_search("two", 5)[0].chunk_id == 2


def test_live_index_swaps_in_a_new_generation_without_restart(tmp_path: Path) -> None:
    live = FaissLiveIndex(tmp_path)
    assert live.current() is None
    write(tmp_path, {1: (unit(1, 0, 0), "one")})
    before = live.current()
    assert [hit.chunk_id for hit in before.dense_search(unit(1, 0, 0), 3)] == [1]
    write(tmp_path, {1: (unit(1, 0, 0), "one"), 2: (unit(0, 1, 0), "two")})
    after = live.current()
    hits = after.dense_search(unit(0, 1, 0), 3)
    assert hits[0].chunk_id == 2 and abs(hits[0].score - 1.0) < 1e-5
    assert after.generation == 2
    assert before.size == 1  # a request holding the old snapshot is not disturbed


def test_dense_scores_are_cosine_similarities_best_first(tmp_path: Path) -> None:
    write(tmp_path, {10: (unit(1, 0, 0), "a"), 20: (unit(1, 1, 0), "b"), 30: (unit(0, 0, 1), "c")})
    snapshot = FaissLiveIndex(tmp_path).current()
    hits = snapshot.dense_search(unit(1, 0, 0), 5)
    assert [hit.chunk_id for hit in hits] == [10, 20, 30]
    assert [round(hit.score, 3) for hit in hits] == [1.0, 0.707, 0.0]
    assert snapshot.similarities(unit(1, 0, 0), [30, 20]) == {30: 0.0, 20: pytest.approx(0.7071, abs=1e-4)}
    assert [hit.chunk_id for hit in snapshot.dense_search(unit(1, 0, 0), 5, allowed={20, 30})] == [20, 30]


def test_bm25_finds_exact_terms_and_respects_the_allowed_ids(tmp_path: Path) -> None:
    chunks = {
        1: (unit(1, 0, 0), "Vendors are onboarded with form PRC-7."),
        2: (unit(0, 1, 0), "Expense claims are filed within 30 days."),
        3: (unit(0, 0, 1), "Form HR-2 changes your address."),
    }
    write(tmp_path, chunks)
    snapshot = FaissLiveIndex(tmp_path).current()
    assert [hit.chunk_id for hit in snapshot.lexical_search("what is PRC-7", 5)][0] == 1
    assert [hit.chunk_id for hit in snapshot.lexical_search("claims filed", 5)] == [2]
    assert [hit.chunk_id for hit in snapshot.lexical_search("form", 5, allowed={3})] == [3]
    assert snapshot.lexical_search("zebra", 5) == []


def test_removed_ids_are_gone_after_reload(tmp_path: Path) -> None:
    dense = new_index(3)
    dense.add_with_ids(np.vstack([unit(1, 0, 0), unit(0, 1, 0)]), np.asarray([1, 2], dtype=np.int64))
    dense.remove_ids(np.asarray([1], dtype=np.int64))
    write_generation(tmp_path, dense, LexicalIndex.build(np.asarray([2]), ["two"]))
    assert index_ids(FaissLiveIndex(tmp_path).current().dense) == {2}
