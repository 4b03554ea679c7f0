from __future__ import annotations

from pathlib import Path

import numpy as np

from app.index import LiveIndex, index_ids, latest_generation, new_index, write_generation


def unit(*values: float) -> np.ndarray:
    vector = np.asarray(values, dtype=np.float32)
    return vector / np.linalg.norm(vector)


def index_with(ids: list[int], vectors: list[np.ndarray]):
    index = new_index(3)
    index.add_with_ids(np.vstack(vectors), np.asarray(ids, dtype=np.int64))
    return index


def test_generations_count_up_and_old_ones_are_pruned(tmp_path: Path) -> None:
    index = index_with([7], [unit(1, 0, 0)])
    assert [write_generation(tmp_path, index, keep=2) for _ in range(4)] == [1, 2, 3, 4]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index-00000003.faiss", "index-00000004.faiss"]
    assert latest_generation(tmp_path) == 4


def test_a_leftover_temp_file_is_never_read_as_a_generation(tmp_path: Path) -> None:
    write_generation(tmp_path, index_with([1], [unit(1, 0, 0)]))
    (tmp_path / "index-00000002.tmp").write_bytes(b"half written")
    assert latest_generation(tmp_path) == 1
    assert LiveIndex(tmp_path).size == 1


def test_live_index_swaps_in_a_new_generation_without_restart(tmp_path: Path) -> None:
    live = LiveIndex(tmp_path)
    assert live.search(unit(1, 0, 0), 3) == []
    write_generation(tmp_path, index_with([1], [unit(1, 0, 0)]))
    assert [hit.chunk_id for hit in live.search(unit(1, 0, 0), 3)] == [1]
    index = index_with([1, 2], [unit(1, 0, 0), unit(0, 1, 0)])
    write_generation(tmp_path, index)
    hits = live.search(unit(0, 1, 0), 3)
    assert hits[0].chunk_id == 2 and abs(hits[0].score - 1.0) < 1e-5
    assert live.generation == 2


def test_search_scores_are_cosine_similarities_best_first(tmp_path: Path) -> None:
    write_generation(tmp_path, index_with([10, 20, 30], [unit(1, 0, 0), unit(1, 1, 0), unit(0, 0, 1)]))
    hits = LiveIndex(tmp_path).search(unit(1, 0, 0), 5)
    assert [hit.chunk_id for hit in hits] == [10, 20, 30]
    assert [round(hit.score, 3) for hit in hits] == [1.0, 0.707, 0.0]


def test_removed_ids_are_gone_after_reload(tmp_path: Path) -> None:
    index = index_with([1, 2], [unit(1, 0, 0), unit(0, 1, 0)])
    index.remove_ids(np.asarray([1], dtype=np.int64))
    write_generation(tmp_path, index)
    live = LiveIndex(tmp_path)
    assert index_ids(live.refresh()) == {2}
