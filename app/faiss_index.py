"""The embedded index (`index.backend: faiss`): the worker adds one segment per batch and merges small ones
(FaissIndexWriter), so a batch costs about what it holds, not the corpus; the API loads only the segments it has
not seen yet (FaissLiveIndex). The files are app/segments.py's."""

from __future__ import annotations

import fcntl
import logging
import math
import os
import re
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from app.index import compare_documents
from app.lexical import Postings
from app.segments import (
    Segment,
    Snapshot,
    latest_generation,
    read_generation,
    write_generation,
    write_segment,
)
from app.store import Store

log = logging.getLogger(__name__)

MERGE_FACTOR = 8  # this many segments of one size tier (rows between 8^t and 8^(t+1)) are merged into one
PURGE_SHARE = 0.3  # a segment with this share of deleted rows is rewritten without them


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
                loaded = {s.name: s for s in self._snapshot.segments} if self._snapshot else {}
                try:
                    self._snapshot = read_generation(self.index_dir, latest, loaded)
                except (RuntimeError, FileNotFoundError):
                    # Pruned by the worker between listing and reading: a newer one exists, keep ours.
                    log.warning("index generation %d vanished while loading", latest)
                    return self._snapshot
                log.info("loaded index generation %d (%d chunks)", latest, self._snapshot.size)
            return self._snapshot


class FaissIndexWriter:
    """Keeps the newest generation equal to the chunks in the store. After a first full comparison it reads only
    the store's chunk changes since its last generation. Workers sharing the folder (several on one machine, over
    a PostgreSQL store) take turns through a file lock; one that finds another's generation compares in full."""

    def __init__(self, index_dir: Path, dim: int, keep: int = 2) -> None:
        self.index_dir, self.dim, self.keep = index_dir, dim, keep
        self._snapshot: Snapshot | None = None  # the generation this writer wrote last
        self._changes = 0  # the store's chunk change that generation includes
        self._document_chunks: dict[str, set[int]] = {}  # what the generation holds of each document

    def sync(self, store: Store) -> int | None:
        self.index_dir.mkdir(parents=True, exist_ok=True)
        with (self.index_dir / "write.lock").open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, or the process dies
            return self._sync(store)

    def _sync(self, store: Store) -> int | None:
        latest = latest_generation(self.index_dir)
        if self._snapshot is None or latest != self._snapshot.generation:  # first sync, or another writer's
            return self._sync_everything(store, latest)
        changes, documents = store.chunk_changes(self._changes)
        if not documents:
            return None
        stale, missing, wanted = compare_documents(store, documents, self._document_chunks)
        for document in documents:
            self._document_chunks.pop(document, None)
        self._document_chunks.update(wanted)
        return self._write(store, self._snapshot, stale, missing, changes)

    def _sync_everything(self, store: Store, latest: int | None) -> int | None:
        changes = store.last_chunk_change()  # read first: a change made meanwhile is read again next time
        wanted = store.newest_chunks()
        snapshot = self._read(latest)
        indexed = snapshot.chunk_ids()
        self._document_chunks = {document: set(ids) for document, ids in wanted.items()}
        wanted_ids = set().union(*self._document_chunks.values())
        if latest is not None and indexed == wanted_ids:
            self._snapshot, self._changes = snapshot, changes
            return None
        return self._write(store, snapshot, indexed - wanted_ids, wanted_ids - indexed, changes)

    def _read(self, latest: int | None) -> Snapshot:
        if latest is not None:
            loaded = {s.name: s for s in self._snapshot.segments} if self._snapshot else {}
            snapshot = read_generation(self.index_dir, latest, loaded)  # only segments another writer added
            if all(s.vectors.d == self.dim for s in snapshot.segments):
                return snapshot
            log.warning("index generation %d has another dimension than the model's %d: rebuilding", latest, self.dim)
        old = [int(m.group(1)) for name in os.listdir(self.index_dir) if (m := re.match(r"^index-(\d{8})", name))]
        return Snapshot(max([latest or 0, *old]), (), ())  # numbers go on from the layout before segments

    def _write(self, store: Store, base: Snapshot, stale: set[int], missing: set[int], changes: int) -> int:
        generation = base.generation + 1
        segments, deleted = list(base.segments), list(base.deleted)
        if stale:
            gone = np.fromiter(stale, dtype=np.int64)
            deleted = [np.union1d(d, s.rows_of(gone)) for s, d in zip(segments, deleted, strict=True)]
        if missing:
            segment = self._new_segment(store, sorted(missing), f"segment-{generation:08d}-new")
            if segment is not None:
                segments.append(segment)
                deleted.append(np.empty(0, dtype=np.int64))
        segments, deleted = _merged(self.index_dir, generation, segments, deleted)
        snapshot = Snapshot(generation, tuple(segments), tuple(deleted))
        write_generation(self.index_dir, snapshot, changes, keep=self.keep)
        self._snapshot, self._changes = snapshot, changes
        return generation

    def _new_segment(self, store: Store, ids: list[int], name: str) -> Segment | None:
        found, vectors, texts = store.chunk_contents(ids)  # a chunk deleted meanwhile is left out
        if len(found) == 0:
            return None
        return write_segment(self.index_dir, name, found, vectors, Postings.build(texts))


def _tier(rows: int) -> int:
    return math.floor(math.log(max(rows, 1), MERGE_FACTOR))


def _merged(
    index_dir: Path, generation: int, segments: Sequence[Segment], deleted: Sequence[np.ndarray]
) -> tuple[list[Segment], list[np.ndarray]]:
    """Merge each size tier that holds MERGE_FACTOR segments, and rewrite segments mostly deleted: each row is
    rewritten about log(corpus / batch) times in all, and searches stay over a few dozen segments at most."""
    live = [len(s.ids) - len(d) for s, d in zip(segments, deleted, strict=True)]
    tiers: dict[int, list[int]] = {}
    for i, rows in enumerate(live):
        tiers.setdefault(_tier(rows), []).append(i)
    groups = [members for members in tiers.values() if len(members) >= MERGE_FACTOR]
    grouped = {i for members in groups for i in members}
    groups += [[i] for i, s in enumerate(segments) if i not in grouped and len(deleted[i]) >= PURGE_SHARE * len(s.ids)]
    if not groups:
        return list(segments), list(deleted)
    merged = {i for members in groups for i in members}
    kept_segments = [s for i, s in enumerate(segments) if i not in merged]
    kept_deleted = [d for i, d in enumerate(deleted) if i not in merged]
    for n, members in enumerate(groups):
        parts = [(segments[i], _alive(segments[i], deleted[i])) for i in members]
        ids = np.concatenate([s.ids[keep] for s, keep in parts])
        if len(ids) == 0:
            continue
        vectors = np.vstack([s.vectors.reconstruct_n(0, s.vectors.ntotal)[keep] for s, keep in parts])
        postings = Postings.merge([(s.postings, keep) for s, keep in parts])
        kept_segments.append(write_segment(index_dir, f"segment-{generation:08d}-{n}", ids, vectors, postings))
        kept_deleted.append(np.empty(0, dtype=np.int64))
        log.info("merged %d segments into one of %d chunks", len(members), len(ids))
    return kept_segments, kept_deleted


def _alive(segment: Segment, dead: np.ndarray) -> np.ndarray:
    keep = np.ones(len(segment.ids), dtype=bool)
    keep[dead] = False
    return keep
