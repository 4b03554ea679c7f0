"""The ingestion worker: takes jobs from the store's queue, parses, chunks, embeds and writes the index."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from app.components import check_embedder
from app.config import Settings
from app.embedding import Embedder
from app.errors import EmptyDocument, RagError
from app.index import open_index_writer
from app.jobs import Job
from app.store import NewChunk, Store
from ingest.chunking import TextChunk, chunk_markdown
from ingest.isolation import parse_isolated
from ingest.metrics import WorkerMetrics

log = logging.getLogger(__name__)

WORKER_ID = f"{socket.gethostname()}:{os.getpid()}"


class Worker:
    def __init__(
        self, settings: Settings, store: Store, embedder: Embedder, metrics: WorkerMetrics | None = None
    ) -> None:
        self.settings = settings
        self.store = store
        self.embedder = embedder
        self.metrics = metrics or WorkerMetrics()
        self.index = open_index_writer(settings, embedder.dim)

    def run(self, stop: threading.Event) -> None:
        log.info("worker %s started; data in %s", WORKER_ID, self.settings.storage.data_dir)
        check_embedder(self.store, self.embedder)
        beating = threading.Thread(target=self._beat, args=(stop,), name="worker-heartbeat", daemon=True)
        beating.start()
        # First repair what a crash may have left: chunks stored but not indexed, or an index lost.
        self.index.sync(self.store)
        while not stop.is_set():
            if not self.run_once():
                stop.wait(self.settings.ingest.poll_seconds)
        log.info("worker stopped")

    def _beat(self, stop: threading.Event) -> None:
        started_at = time.time()
        while True:
            try:
                self.store.record_heartbeat(WORKER_ID, started_at)
            except Exception:  # a busy database: the next beat tries again
                log.warning("could not record the heartbeat", exc_info=True)
            if stop.wait(self.settings.ingest.heartbeat_seconds):
                return

    def run_once(self) -> bool:
        """Process a batch of queued jobs with one index write; False when the queue is empty."""
        jobs = self._claim_batch()
        if not jobs:
            return False
        with self._leases_kept(jobs):
            parsed: dict[int, tuple[str, int, list[TextChunk]]] = {}  # job id -> (document id, version, chunks)
            errors: dict[int, str | None] = {}
            for job in jobs:
                result = self._parse(job) if job.kind == "ingest" else None
                if isinstance(result, tuple):
                    parsed[job.id] = result
                else:
                    errors[job.id] = result
            errors.update(self._embed_and_store(parsed))
            with self.metrics.stage_seconds.labels("index").time():
                self.index.sync(self.store)
            # Only now that the index holds their vectors do the documents count as indexed.
            for job in jobs:
                self.store.jobs.finish(job, error=errors[job.id])
                if job.kind == "ingest":
                    self.metrics.documents.labels("failed" if errors[job.id] else "indexed").inc()
        self.metrics.batches.inc()
        return True

    def _claim_batch(self) -> list[Job]:
        jobs: list[Job] = []
        while len(jobs) < self.settings.ingest.batch_size:
            job = self.store.jobs.claim_next(self.settings.ingest.lease_seconds)
            if job is None:
                break
            jobs.append(job)
        return jobs

    def _parse(self, job: Job) -> tuple[str, int, list[TextChunk]] | str | None:
        """(document id, version, chunks) of the job's document version; why it failed, if it did; None if it
        was deleted."""
        versions = self.store.document_versions(job.document_id) if job.document_id else []
        doc = next((v for v in versions if v.version == job.version), None)
        if doc is None:  # deleted while queued
            return None
        if job.attempts > self.settings.ingest.max_attempts:
            return f"{doc.filename}: gave up after {job.attempts - 1} attempts that never finished"
        log.info("document %s: parsing %s (%s), version %d", doc.document_id, doc.filename, doc.kind, doc.version)
        started = time.perf_counter()
        ingest = self.settings.ingest
        try:
            path = self.settings.storage.uploads_dir / doc.sha256
            markdown = parse_isolated(
                path, doc.kind, ingest.pdf_parser, ingest.parse_timeout_seconds, ingest.parse_memory_bytes
            )
            pieces = chunk_markdown(markdown, ingest.chunk_size, ingest.chunk_overlap)
            if not pieces:
                raise EmptyDocument("the document contains no text")
        except RagError as exc:
            log.warning("document %s: failed: %s", doc.document_id, exc)
            return f"{doc.filename}: {exc}"
        except Exception as exc:  # a parser bug must fail this document, never the worker
            log.exception("document %s: unexpected error", doc.document_id)
            return f"{doc.filename}: could not be processed ({type(exc).__name__}: {exc})"
        seconds = time.perf_counter() - started
        self.metrics.stage_seconds.labels("parse").observe(seconds)
        log.info("document %s: %d chunks in %.2fs", doc.document_id, len(pieces), seconds)
        return doc.document_id, doc.version, pieces

    def _embed_and_store(self, parsed: dict[int, tuple[str, int, list[TextChunk]]]) -> dict[int, str | None]:
        """Embed every parsed document's chunks in one call (the embedder batches similar lengths together:
        1.17x faster than one call per document on the Python docs) and store them; the errors by job id."""
        texts = [piece.text_to_embed for _, _, pieces in parsed.values() for piece in pieces]
        try:
            with self.metrics.stage_seconds.labels("embed").time():
                vectors = iter(self.embedder.embed(texts)) if texts else iter(())
        except Exception as exc:  # the model failed: these documents fail, the worker goes on
            log.exception("embedding %d chunks failed", len(texts))
            return dict.fromkeys(parsed, f"could not be embedded ({type(exc).__name__}: {exc})")
        for doc_id, version, pieces in parsed.values():
            chunks = [NewChunk(p.position, p.section, p.text, next(vectors)) for p in pieces]
            self.store.replace_chunks(doc_id, chunks, version)
        self.metrics.chunks.inc(len(texts))
        return dict.fromkeys(parsed)

    @contextmanager
    def _leases_kept(self, jobs: list[Job]) -> Iterator[None]:
        """Renew the jobs' leases while they run, so only a dead worker's jobs are taken again."""
        lease = self.settings.ingest.lease_seconds
        done = threading.Event()

        def heartbeat() -> None:
            while not done.wait(lease / 3):
                for job in jobs:
                    self.store.jobs.renew_lease(job.id, lease)

        thread = threading.Thread(target=heartbeat, name="lease-heartbeat", daemon=True)
        thread.start()
        try:
            yield
        finally:
            done.set()
            thread.join()
