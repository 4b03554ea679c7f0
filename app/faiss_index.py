"""The embedded index: numbered generations of FAISS (dense) + BM25 (lexical) files, written atomically by the
worker (FaissIndexWriter) and swapped in by the API without a restart (FaissLiveIndex)."""

from __future__ import annotations

import fcntl
import logging
import os
import re
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import faiss
import numpy as np

from app.index import Hit
from app.lexical import LexicalIndex
from app.store import Store

log = logging.getLogger(__name__)

# The FAISS file is renamed into place last: its presence marks a complete generation.
GENERATION_FILE = re.compile(r"^index-(\d{8})\.faiss$")


def new_index(dim: int) -> faiss.IndexIDMap2:
    # Inner product on normalized vectors is cosine similarity; IDMap2 keeps chunk ids as FAISS ids.
    return faiss.IndexIDMap2(faiss.IndexFlatIP(dim))


def index_ids(index: faiss.IndexIDMap2) -> set[int]:
    return set(faiss.vector_to_array(index.id_map).tolist())


@dataclass(frozen=True)
class Snapshot:
    """One generation: the dense and the lexical index over the same chunks."""

    generation: int
    dense: faiss.IndexIDMap2
    lexical: LexicalIndex

    @property
    def size(self) -> int:
        return self.dense.ntotal

    def dense_search(self, vector: np.ndarray, k: int, allowed: set[int] | None = None) -> list[Hit]:
        if self.dense.ntotal == 0 or k <= 0:
            return []
        params = None
        if allowed is not None:
            if not allowed:
                return []
            selector = faiss.IDSelectorBatch(np.fromiter(allowed, dtype=np.int64))
            params = faiss.SearchParameters(sel=selector)  # type: ignore[call-arg]  # SWIG takes it; its stub not
        query = vector.reshape(1, -1).astype(np.float32)
        scores, ids = self.dense.search(query, min(k, self.dense.ntotal), params=params)
        return [Hit(int(i), float(s)) for i, s in zip(ids[0], scores[0], strict=True) if i != -1]

    def lexical_search(self, query: str, k: int, allowed: set[int] | None = None) -> list[Hit]:
        return [Hit(chunk_id, score) for chunk_id, score in self.lexical.search(query, k, allowed)]

    def similarities(self, vector: np.ndarray, chunk_ids: list[int]) -> dict[int, float]:
        if not chunk_ids:
            return {}
        vectors = self.dense.reconstruct_batch(np.asarray(chunk_ids, dtype=np.int64))
        return dict(zip(chunk_ids, (vectors @ vector.astype(np.float32)).tolist(), strict=True))


def _faiss_path(index_dir: Path, generation: int) -> Path:
    return index_dir / f"index-{generation:08d}.faiss"


def _lexical_path(index_dir: Path, generation: int) -> Path:
    return index_dir / f"bm25-{generation:08d}"


def latest_generation(index_dir: Path) -> int | None:
    """The newest complete generation."""
    if not index_dir.is_dir():
        return None
    generations = [int(m.group(1)) for name in os.listdir(index_dir) if (m := GENERATION_FILE.match(name))]
    return max(generations, default=None)


def read_generation(index_dir: Path, generation: int) -> Snapshot:
    # read_index returns the concrete class it wrote, IndexIDMap2; its stub says Index.
    dense = cast(faiss.IndexIDMap2, faiss.read_index(str(_faiss_path(index_dir, generation))))
    lexical_dir = _lexical_path(index_dir, generation)
    lexical = LexicalIndex.load(lexical_dir) if lexical_dir.is_dir() else LexicalIndex.build(np.empty(0), [])
    return Snapshot(generation, dense, lexical)


def has_lexical(index_dir: Path, generation: int) -> bool:
    return _lexical_path(index_dir, generation).is_dir()


def write_generation(index_dir: Path, dense: faiss.IndexIDMap2, lexical: LexicalIndex, keep: int = 2) -> int:
    """Write the next generation (temp names, fsync, rename; FAISS last) and prune old ones."""
    index_dir.mkdir(parents=True, exist_ok=True)
    generation = (latest_generation(index_dir) or 0) + 1
    lexical_final = _lexical_path(index_dir, generation)
    lexical_temp = lexical_final.with_name(lexical_final.name + ".tmp")
    shutil.rmtree(lexical_temp, ignore_errors=True)
    shutil.rmtree(lexical_final, ignore_errors=True)  # a leftover of a crash before its FAISS file landed
    lexical.save(lexical_temp)
    for path in lexical_temp.iterdir():
        _fsync(path)
    os.replace(lexical_temp, lexical_final)
    final = _faiss_path(index_dir, generation)
    temp = final.with_name(final.name + ".tmp")
    faiss.write_index(dense, str(temp))
    _fsync(temp)
    os.replace(temp, final)
    _fsync(index_dir)
    _prune(index_dir, generation - keep)
    log.info("wrote index generation %d with %d chunks", generation, dense.ntotal)
    return generation


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _prune(index_dir: Path, up_to: int) -> None:
    for path in index_dir.iterdir():
        m = re.match(r"^(?:index|bm25)-(\d{8})", path.name)
        if not (path.name.endswith(".tmp") or (m and int(m.group(1)) <= up_to)):
            continue
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


class FaissLiveIndex:
    """The API's view of the newest generation; requests in flight keep the snapshot they started with."""

    def __init__(self, index_dir: Path) -> None:
        self.index_dir = index_dir
        self._snapshot: Snapshot | None = None
        self._lock = threading.Lock()

    def current(self) -> Snapshot | None:
        latest = latest_generation(self.index_dir)
        snapshot = self._snapshot
        if latest is None or (snapshot is not None and snapshot.generation == latest):
            return snapshot
        with self._lock:
            if self._snapshot is None or self._snapshot.generation != latest:
                try:
                    self._snapshot = read_generation(self.index_dir, latest)
                except (RuntimeError, FileNotFoundError):
                    # Pruned by the worker between listing and reading: a newer one exists, keep ours.
                    log.warning("index generation %d vanished while loading", latest)
                    return self._snapshot
                log.info("loaded index generation %d (%d chunks)", latest, self._snapshot.size)
            return self._snapshot


class FaissIndexWriter:
    """Keeps the newest generation equal to the chunks in the store. Workers sharing the folder (several on one
    machine, over a PostgreSQL store) take turns through a file lock, each starting from the newest generation."""

    def __init__(self, index_dir: Path, dim: int, keep: int = 2) -> None:
        self.index_dir, self.dim, self.keep = index_dir, dim, keep
        self._dense: faiss.IndexIDMap2 | None = None  # the generation this writer wrote last, kept in memory
        self._generation: int | None = None

    def sync(self, store: Store) -> int | None:
        self.index_dir.mkdir(parents=True, exist_ok=True)
        with (self.index_dir / "write.lock").open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, or the process dies
            generation = self._sync(store)
            if generation is not None:
                self._generation = generation
            return generation

    def _sync(self, store: Store) -> int | None:
        latest = latest_generation(self.index_dir)
        if self._dense is None or latest != self._generation:  # first sync, or another writer wrote since
            self._dense, self._generation = self._read_dense(), latest
        dense = self._dense
        stored, indexed = store.chunk_ids(), index_ids(dense)
        stale, missing = indexed - stored, stored - indexed
        if not stale and not missing and latest is not None and has_lexical(self.index_dir, latest):
            return None
        if stale:
            dense.remove_ids(np.fromiter(sorted(stale), dtype=np.int64))  # type: ignore[arg-type]  # SWIG converts
        if missing:
            ids, vectors = store.chunk_vectors(sorted(missing))
            if len(ids):
                dense.add_with_ids(vectors, ids)
        # BM25 has no deletes: rebuilt from the store's texts, it matches the FAISS ids exactly.
        lexical = LexicalIndex.build(*store.chunk_texts())
        return write_generation(self.index_dir, dense, lexical, keep=self.keep)

    def _read_dense(self) -> faiss.IndexIDMap2:
        generation = latest_generation(self.index_dir)
        if generation is not None:
            dense = read_generation(self.index_dir, generation).dense
            if dense.d == self.dim:
                return dense
            log.warning("index generation %d has dimension %d, the model %d: rebuilding", generation, dense.d, self.dim)
        return new_index(self.dim)
