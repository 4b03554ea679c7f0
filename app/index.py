"""FAISS index generations: written atomically by the worker, swapped in by the API without a restart."""

from __future__ import annotations

import logging
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np

log = logging.getLogger(__name__)

GENERATION_FILE = re.compile(r"^index-(\d{8})\.faiss$")


def new_index(dim: int) -> faiss.IndexIDMap2:
    # Inner product on normalized vectors is cosine similarity; IDMap2 keeps chunk ids as FAISS ids.
    return faiss.IndexIDMap2(faiss.IndexFlatIP(dim))


def index_ids(index: faiss.IndexIDMap2) -> set[int]:
    return set(faiss.vector_to_array(index.id_map).tolist())


def generation_path(index_dir: Path, generation: int) -> Path:
    return index_dir / f"index-{generation:08d}.faiss"


def latest_generation(index_dir: Path) -> int | None:
    """The newest complete generation: only finished files are ever renamed into this name."""
    if not index_dir.is_dir():
        return None
    generations = [int(m.group(1)) for name in os.listdir(index_dir) if (m := GENERATION_FILE.match(name))]
    return max(generations, default=None)


def read_generation(index_dir: Path, generation: int) -> faiss.IndexIDMap2:
    return faiss.read_index(str(generation_path(index_dir, generation)))


def write_generation(index_dir: Path, index: faiss.IndexIDMap2, keep: int = 2) -> int:
    """Write `index` as the next generation (temp file, fsync, rename, fsync dir); prune old ones."""
    index_dir.mkdir(parents=True, exist_ok=True)
    generation = (latest_generation(index_dir) or 0) + 1
    final = generation_path(index_dir, generation)
    temp = final.with_suffix(".tmp")
    faiss.write_index(index, str(temp))
    with temp.open("rb") as f:
        os.fsync(f.fileno())
    os.replace(temp, final)
    dir_fd = os.open(index_dir, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    for name in os.listdir(index_dir):
        m = GENERATION_FILE.match(name)
        if (m and int(m.group(1)) <= generation - keep) or name.endswith(".tmp"):
            (index_dir / name).unlink(missing_ok=True)
    log.info("wrote index generation %d with %d vectors", generation, index.ntotal)
    return generation


@dataclass(frozen=True)
class Hit:
    chunk_id: int
    score: float


class LiveIndex:
    """The API's view of the newest generation; requests in flight keep the one they started with."""

    def __init__(self, index_dir: Path) -> None:
        self.index_dir = index_dir
        self.generation: int | None = None
        self._index: faiss.IndexIDMap2 | None = None
        self._lock = threading.Lock()

    def refresh(self) -> faiss.IndexIDMap2 | None:
        latest = latest_generation(self.index_dir)
        if latest is None or latest == self.generation:
            return self._index
        with self._lock:
            if latest != self.generation:
                try:
                    index = read_generation(self.index_dir, latest)
                except RuntimeError:
                    # Pruned by the worker between listing and reading: a newer one exists, keep ours.
                    log.warning("index generation %d vanished while loading", latest)
                    return self._index
                self._index, self.generation = index, latest
                log.info("loaded index generation %d (%d vectors)", latest, index.ntotal)
        return self._index

    @property
    def size(self) -> int:
        index = self.refresh()
        return 0 if index is None else index.ntotal

    def search(self, vector: np.ndarray, k: int) -> list[Hit]:
        index = self.refresh()
        if index is None or index.ntotal == 0:
            return []
        scores, ids = index.search(vector.reshape(1, -1).astype(np.float32), min(k, index.ntotal))
        return [Hit(int(i), float(s)) for i, s in zip(ids[0], scores[0], strict=True) if i != -1]
