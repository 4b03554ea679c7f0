"""The embedded index's files: immutable segments (the FAISS vectors and BM25 postings of some chunks) and
numbered generations, each a manifest naming its segments and the rows deleted from them; a Snapshot searches one
generation. app/faiss_index.py writes them (FaissIndexWriter) and serves the newest (FaissLiveIndex)."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import faiss
import numpy as np

from app.index import Hit
from app.lexical import Postings, bm25_scores

log = logging.getLogger(__name__)

# A manifest is renamed into place last: its presence marks a complete generation.
MANIFEST = re.compile(r"^generation-(\d{8})\.json$")


@dataclass
class Segment:
    """Rows of chunks, written once: row i holds chunk ids[i]'s vector and BM25 postings."""

    name: str
    ids: np.ndarray
    vectors: faiss.IndexFlatIP  # inner product on normalized vectors is cosine similarity
    postings: Postings
    _order: np.ndarray = field(init=False, repr=False)  # rows by chunk id
    _sorted_ids: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._order = np.argsort(self.ids, kind="stable")
        self._sorted_ids = self.ids[self._order]

    def rows_of(self, chunk_ids: np.ndarray) -> np.ndarray:
        """The rows holding any of `chunk_ids`."""
        if len(self.ids) == 0 or len(chunk_ids) == 0:
            return np.empty(0, dtype=np.int64)
        ordered = self._sorted_ids
        at = np.minimum(np.searchsorted(ordered, chunk_ids), len(ordered) - 1)
        return np.sort(self._order[at[ordered[at] == chunk_ids]])


def _dense_hits(segment: Segment, query: np.ndarray, k: int, rows: np.ndarray | None, dead: np.ndarray) -> list[Hit]:
    """Best `k` rows among `rows` (default: all) that are not `dead`."""
    if rows is not None:
        rows = np.setdiff1d(rows, dead)
        candidates = len(rows)
        selector: Any = faiss.IDSelectorBatch(rows) if candidates else None
    else:
        candidates = segment.vectors.ntotal - len(dead)
        inner = faiss.IDSelectorBatch(dead) if len(dead) else None
        selector = faiss.IDSelectorNot(inner) if inner is not None else None
    if candidates <= 0:
        return []
    params = faiss.SearchParameters(sel=selector) if selector is not None else None  # type: ignore[call-arg]
    scores, found = segment.vectors.search(query, min(k, candidates), params=params)
    return [
        Hit(int(segment.ids[row]), float(score)) for row, score in zip(found[0], scores[0], strict=True) if row >= 0
    ]


@dataclass(frozen=True)
class Snapshot:
    """One generation: its segments and, for each, the rows deleted since it was written."""

    generation: int
    segments: tuple[Segment, ...]
    deleted: tuple[np.ndarray, ...]  # rows, per segment

    @property
    def size(self) -> int:
        return sum(len(s.ids) - len(d) for s, d in zip(self.segments, self.deleted, strict=True))

    def chunk_ids(self) -> set[int]:
        live = [np.delete(s.ids, d) for s, d in self._parts()]
        return set(np.concatenate(live).tolist()) if live else set()

    def _parts(self) -> list[tuple[Segment, np.ndarray]]:
        return list(zip(self.segments, self.deleted, strict=True))

    def dense_search(self, vector: np.ndarray, k: int, allowed: set[int] | None = None) -> list[Hit]:
        if k <= 0:
            return []
        query, wanted = vector.reshape(1, -1).astype(np.float32), _array(allowed)
        hits = [hit for s, d in self._parts() for hit in _dense_hits(s, query, k, _rows(s, wanted), d)]
        return sorted(hits, key=lambda hit: -hit.score)[:k]

    def lexical_search(self, query: str, k: int, allowed: set[int] | None = None) -> list[Hit]:
        """BM25 with document frequencies over every segment (deleted rows count until merged away, as in
        Lucene)."""
        if k <= 0:
            return []
        hits, wanted = [], _array(allowed)
        all_scores = bm25_scores(query, [s.postings for s in self.segments])
        for (segment, dead), scores in zip(self._parts(), all_scores, strict=True):
            scores[dead] = 0
            rows = _rows(segment, wanted)
            if rows is not None:
                kept = np.zeros_like(scores)
                kept[rows] = scores[rows]
                scores = kept
            best = _top(scores, k)
            hits += [Hit(int(segment.ids[row]), float(scores[row])) for row in best if scores[row] > 0]
        return sorted(hits, key=lambda hit: -hit.score)[:k]

    def similarities(self, vector: np.ndarray, chunk_ids: list[int]) -> dict[int, float]:
        wanted, found = np.asarray(chunk_ids, dtype=np.int64), dict[int, float]()
        for segment, dead in self._parts():
            rows = np.setdiff1d(segment.rows_of(wanted), dead)
            if len(rows):
                scores = segment.vectors.reconstruct_batch(rows) @ vector.astype(np.float32)
                found.update(zip(segment.ids[rows].tolist(), scores.tolist(), strict=True))
        return {chunk_id: found[chunk_id] for chunk_id in chunk_ids if chunk_id in found}


def _array(allowed: set[int] | None) -> np.ndarray | None:
    return None if allowed is None else np.fromiter(allowed, dtype=np.int64)


def _rows(segment: Segment, wanted: np.ndarray | None) -> np.ndarray | None:
    """The segment's rows among `wanted` chunk ids (None: no restriction)."""
    return None if wanted is None else segment.rows_of(wanted)


def _top(scores: np.ndarray, k: int) -> np.ndarray:
    """Positions of the `k` highest scores, highest first."""
    if len(scores) > k:
        candidates = np.argpartition(-scores, k)[:k]
        return candidates[np.argsort(-scores[candidates], kind="stable")]
    return np.argsort(-scores, kind="stable")


# Files


def _manifest_path(index_dir: Path, generation: int) -> Path:
    return index_dir / f"generation-{generation:08d}.json"


def latest_generation(index_dir: Path) -> int | None:
    """The newest complete generation."""
    if not index_dir.is_dir():
        return None
    generations = [int(m.group(1)) for name in os.listdir(index_dir) if (m := MANIFEST.match(name))]
    return max(generations, default=None)


def _read_manifest(index_dir: Path, generation: int) -> dict[str, Any]:
    return cast(dict[str, Any], json.loads(_manifest_path(index_dir, generation).read_text()))


def read_segment(index_dir: Path, name: str) -> Segment:
    folder = index_dir / name
    vectors = cast(faiss.IndexFlatIP, faiss.read_index(str(folder / "vectors.faiss")))
    return Segment(name, np.load(folder / "ids.npy"), vectors, Postings.load(folder))


def write_segment(index_dir: Path, name: str, ids: np.ndarray, vectors: np.ndarray, postings: Postings) -> Segment:
    final = index_dir / name
    temp = final.with_name(name + ".tmp")
    for leftover in (temp, final):  # of a write whose generation never landed: no manifest names it
        shutil.rmtree(leftover, ignore_errors=True)
    temp.mkdir(parents=True)
    dense = faiss.IndexFlatIP(vectors.shape[1])
    dense.add(np.ascontiguousarray(vectors, dtype=np.float32))
    np.save(temp / "ids.npy", ids)
    faiss.write_index(dense, str(temp / "vectors.faiss"))
    postings.save(temp)
    for path in temp.iterdir():
        _fsync(path)
    os.replace(temp, final)
    return Segment(name, ids, dense, postings)


def read_generation(index_dir: Path, generation: int, loaded: dict[str, Segment] | None = None) -> Snapshot:
    """A generation's snapshot; segments found in `loaded` are reused, not read again."""
    manifest, loaded = _read_manifest(index_dir, generation), loaded or {}
    segments = tuple(
        loaded.get(entry["name"]) or read_segment(index_dir, entry["name"]) for entry in manifest["segments"]
    )
    deleted = tuple(
        s.rows_of(np.asarray(entry["deleted"], dtype=np.int64))
        for s, entry in zip(segments, manifest["segments"], strict=True)
    )
    return Snapshot(generation, segments, deleted)


def write_generation(index_dir: Path, snapshot: Snapshot, changes: int, keep: int = 2) -> None:
    """Write `snapshot`'s manifest (its segments are written already), then prune what no kept generation uses."""
    entries = [
        {"name": s.name, "deleted": s.ids[d].tolist()} for s, d in zip(snapshot.segments, snapshot.deleted, strict=True)
    ]
    final = _manifest_path(index_dir, snapshot.generation)
    temp = final.with_name(final.name + ".tmp")
    temp.write_text(json.dumps({"segments": entries, "changes": changes}))
    _fsync(temp)
    os.replace(temp, final)
    _fsync(index_dir)
    _prune(index_dir, snapshot.generation - keep)
    log.info("wrote index generation %d: %d chunks in %d segments", snapshot.generation, snapshot.size, len(entries))


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _prune(index_dir: Path, up_to: int) -> None:
    """Remove generations up to `up_to`, segments no remaining generation names, leftovers of crashed writes and
    the files of the layout before segments (index-N.faiss, bm25-N)."""
    kept = [g for name in os.listdir(index_dir) if (m := MANIFEST.match(name)) and (g := int(m.group(1))) > up_to]
    used = {entry["name"] for g in kept for entry in _read_manifest(index_dir, g)["segments"]}
    for path in index_dir.iterdir():
        m = MANIFEST.match(path.name)
        old = (m and int(m.group(1)) <= up_to) or re.match(r"^(index|bm25)-\d{8}", path.name)
        unused = path.name.startswith("segment-") and path.name not in used
        if not (path.name.endswith(".tmp") or old or unused):
            continue
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
