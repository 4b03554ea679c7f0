"""The ingestion worker: takes jobs from the store's queue, parses, chunks, embeds and writes the index."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import faiss
import numpy as np

from app.config import Settings
from app.embedding import Embedder
from app.errors import EmptyDocument, RagError
from app.index import index_ids, latest_generation, new_index, read_generation, write_generation
from app.store import Job, NewChunk, Store
from ingest.chunking import chunk_markdown
from ingest.parsing import parse_to_markdown

log = logging.getLogger(__name__)


class Worker:
    def __init__(self, settings: Settings, store: Store, embedder: Embedder) -> None:
        self.settings = settings
        self.store = store
        self.embedder = embedder
        self.index_dir = settings.storage.index_dir
        self.index = self._load_index()
        self.sync_index()

    def _load_index(self) -> faiss.IndexIDMap2:
        generation = latest_generation(self.index_dir)
        if generation is not None:
            index = read_generation(self.index_dir, generation)
            if index.d == self.embedder.dim:
                return index
            log.warning(
                "index generation %d has dimension %d, the model %d: rebuilding",
                generation,
                index.d,
                self.embedder.dim,
            )
        return new_index(self.embedder.dim)

    def sync_index(self) -> None:
        """Make the index hold exactly the chunks in the store, writing a new generation if it changed."""
        stored, indexed = self.store.chunk_ids(), index_ids(self.index)
        stale, missing = indexed - stored, stored - indexed
        if not stale and not missing and latest_generation(self.index_dir) is not None:
            return
        if stale:
            self.index.remove_ids(np.fromiter(sorted(stale), dtype=np.int64))
        if missing:
            ids, vectors = self.store.chunk_vectors(sorted(missing))
            if len(ids):
                self.index.add_with_ids(vectors, ids)
        write_generation(self.index_dir, self.index, keep=self.settings.ingest.keep_generations)

    def run(self, stop: threading.Event) -> None:
        log.info("worker started; data in %s", self.settings.storage.data_dir)
        while not stop.is_set():
            if not self.run_once():
                stop.wait(self.settings.ingest.poll_seconds)
        log.info("worker stopped")

    def run_once(self) -> bool:
        """Process one job if there is one; False when the queue is empty."""
        job = self.store.claim_next_job(self.settings.ingest.lease_seconds)
        if job is None:
            return False
        with self._lease_kept(job):
            if job.kind == "ingest":
                self._ingest(job)
            else:
                self.sync_index()
                self.store.finish_job(job)
        return True

    def _ingest(self, job: Job) -> None:
        doc = self.store.get_document(job.document_id)
        if doc is None:  # deleted while queued
            self.store.finish_job(job)
            return
        if job.attempts > self.settings.ingest.max_attempts:
            self.store.finish_job(job, error=f"gave up after {job.attempts - 1} attempts that never finished")
            return
        log.info("document %s: parsing %s (%s)", doc.id, doc.filename, doc.kind)
        started = time.perf_counter()
        try:
            chunks = self._chunks_of(doc.sha256, doc.kind, doc.filename)
        except RagError as exc:
            log.warning("document %s: failed: %s", doc.id, exc)
            self.store.finish_job(job, error=str(exc))
            return
        except Exception as exc:  # a parser bug must fail this document, never the worker
            log.exception("document %s: unexpected error", doc.id)
            self.store.finish_job(job, error=f"could not process {doc.filename}: {type(exc).__name__}: {exc}")
            return
        if not self.store.replace_chunks(doc.id, chunks):
            self.store.finish_job(job)
            return
        self.sync_index()
        self.store.finish_job(job)
        log.info("document %s: indexed %d chunks in %.2fs", doc.id, len(chunks), time.perf_counter() - started)

    def _chunks_of(self, sha256: str, kind: str, filename: str) -> list[NewChunk]:
        ingest = self.settings.ingest
        markdown = parse_to_markdown(self.settings.storage.uploads_dir / sha256, kind, pdf_parser=ingest.pdf_parser)
        pieces = chunk_markdown(markdown, ingest.chunk_size, ingest.chunk_overlap)
        if not pieces:
            raise EmptyDocument(f"{filename} contains no text")
        vectors = self.embedder.embed([piece.text_to_embed for piece in pieces])
        return [
            NewChunk(position=p.position, section=p.section, text=p.text, embedding=v)
            for p, v in zip(pieces, vectors, strict=True)
        ]

    @contextmanager
    def _lease_kept(self, job: Job) -> Iterator[None]:
        """Renew the job's lease while it runs, so only a dead worker's jobs are taken again."""
        lease = self.settings.ingest.lease_seconds
        done = threading.Event()

        def heartbeat() -> None:
            while not done.wait(lease / 3):
                self.store.renew_lease(job.id, lease)

        thread = threading.Thread(target=heartbeat, name=f"lease-{job.id}", daemon=True)
        thread.start()
        try:
            yield
        finally:
            done.set()
            thread.join()
