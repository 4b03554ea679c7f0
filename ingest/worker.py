"""The ingestion worker: takes jobs from the store's queue, parses, chunks, embeds and writes the index.

It holds up to `ingest.batch_size` jobs at a time (their leases renewed while held). Their documents are parsed
smallest first, `ingest.parse_workers` at once, each in a child process of its own. What is parsed is embedded and
indexed with one index write once nothing else is being parsed, or once it has waited `ingest.batch_wait_seconds`
for a slow document: a huge or hostile file delays the others by seconds, not by its own parse time."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass

from app.components import check_embedder
from app.config import Settings
from app.embedding import Embedder
from app.errors import EmptyDocument, RagError
from app.index import open_index_writer
from app.jobs import Job
from app.store import DocumentVersion, NewChunk, Store
from ingest.chunking import TextChunk, chunk_markdown
from ingest.isolation import parse_isolated, start_parse_server
from ingest.metrics import WorkerMetrics
from ingest.parsing import ParseOptions

log = logging.getLogger(__name__)

WORKER_ID = f"{socket.gethostname()}:{os.getpid()}"

Chunks = tuple[str, int, list[TextChunk]]  # document id, version, its chunks
Parsed = Chunks | str | None  # the chunks, why parsing failed, or nothing to index (a prune job, a deleted document)


@dataclass
class Held:
    """A claimed job, the document version it processes (None: a prune job, or the document was deleted), and
    once parsed, the outcome."""

    job: Job
    source: DocumentVersion | None
    parsing: Future[Parsed] | None = None
    parsed: Parsed = None
    parsed_at: float | None = None  # monotonic; None while not parsed


class Worker:
    def __init__(
        self, settings: Settings, store: Store, embedder: Embedder, metrics: WorkerMetrics | None = None
    ) -> None:
        self.settings = settings
        self.store = store
        self.embedder = embedder
        self.metrics = metrics or WorkerMetrics()
        self.index = open_index_writer(settings, embedder.dim)
        self._held: dict[int, Held] = {}  # by job id
        self._held_lock = threading.Lock()  # the keeper thread reads what is held
        self._parsers = ThreadPoolExecutor(settings.ingest.parse_workers, thread_name_prefix="parse")
        self._closing = threading.Event()  # stops the keeper, and the parse children still running
        self._keeper: threading.Thread | None = None

    def run(self, stop: threading.Event) -> None:
        log.info("worker %s started; data in %s", WORKER_ID, self.settings.storage.data_dir)
        check_embedder(self.store, self.embedder)
        start_parse_server()  # before the first heartbeat: a worker that says it is alive is ready to parse
        self._keep(heartbeat=True)
        try:
            # First repair what a crash may have left: chunks stored but not indexed, or an index lost.
            self.index.sync(self.store)
            while not stop.is_set():
                if not self.run_once():
                    stop.wait(self.settings.ingest.poll_seconds)
        finally:
            self.close()
        log.info("worker stopped")

    def close(self) -> None:
        """Stop at once: parse children are killed, and the jobs held go back to the queue when their leases end."""
        self._closing.set()
        self._parsers.shutdown(wait=True, cancel_futures=True)

    def run_once(self) -> bool:
        """Claim jobs, start parsing, index what is parsed when it is time; False when nothing is queued or held."""
        self._keep(heartbeat=False)
        self._claim()
        if not self._held:
            return False
        self._start_parsing()
        running = [h.parsing for h in self._held.values() if h.parsing is not None and h.parsed_at is None]
        wait_seconds = self.settings.ingest.batch_wait_seconds
        wait(running, timeout=wait_seconds, return_when=FIRST_COMPLETED)
        now = time.monotonic()
        for held in self._held.values():
            if held.parsed_at is None and (held.source is None or (held.parsing and held.parsing.done())):
                held.parsed = held.parsing.result() if held.parsing else None
                held.parsed_at = now
        ready = [h for h in self._held.values() if h.parsed_at is not None]
        waited = now - min((h.parsed_at for h in ready if h.parsed_at is not None), default=now)
        if ready and (len(ready) == len(self._held) or waited >= wait_seconds):
            self._index(ready)
        return True

    def _claim(self) -> None:
        while len(self._held) < self.settings.ingest.batch_size:
            job = self.store.jobs.claim_next(self.settings.ingest.lease_seconds)
            if job is None:
                return
            source = None
            if job.document_id is not None:
                versions = self.store.document_versions(job.document_id)
                source = next((v for v in versions if v.version == job.version), None)
            with self._held_lock:
                self._held[job.id] = Held(job, source)

    def _start_parsing(self) -> None:
        """Smallest documents first: a large one then holds up nothing that is small."""
        running = sum(1 for h in self._held.values() if h.parsing is not None and not h.parsing.done())
        waiting = [h for h in self._held.values() if h.source is not None and h.parsing is None]
        waiting.sort(key=lambda h: h.source.size_bytes if h.source else 0)
        for held in waiting[: max(0, self.settings.ingest.parse_workers - running)]:
            held.parsing = self._parsers.submit(self._parse, held.job, held.source)

    def _index(self, ready: list[Held]) -> None:
        """Embed and store what was parsed, write one index generation, then finish those jobs."""
        parsed = {h.job.id: h.parsed for h in ready if isinstance(h.parsed, tuple)}
        errors = {h.job.id: h.parsed for h in ready if not isinstance(h.parsed, tuple)}
        errors.update(self._embed_and_store(parsed))
        with self.metrics.stage_seconds.labels("index").time():
            self.index.sync(self.store)
        # Only now that the index holds their vectors do the documents count as indexed.
        for held in ready:
            self.store.jobs.finish(held.job, error=errors[held.job.id])
            if held.job.kind == "ingest":
                self.metrics.documents.labels("failed" if errors[held.job.id] else "indexed").inc()
            with self._held_lock:
                del self._held[held.job.id]
        self.metrics.batches.inc()

    def _parse(self, job: Job, doc: DocumentVersion | None) -> Parsed:
        """In a pool thread: the chunks of the job's document version, or why it failed."""
        if doc is None:
            return None
        if job.attempts > self.settings.ingest.max_attempts:
            return f"{doc.filename}: gave up after {job.attempts - 1} attempts that never finished"
        log.info("document %s: parsing %s (%s), version %d", doc.document_id, doc.filename, doc.kind, doc.version)
        started = time.perf_counter()
        ingest = self.settings.ingest
        try:
            markdown = parse_isolated(
                self.settings.storage.uploads_dir / doc.sha256,
                doc.kind,
                ParseOptions(ingest.pdf_parser, ingest.ocr_languages),
                ingest.parse_timeout_seconds,
                ingest.parse_memory_bytes,
                self._closing,
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

    def _embed_and_store(self, parsed: dict[int, Chunks]) -> dict[int, str | None]:
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
            chunks = [NewChunk(p.position, p.section, p.text, next(vectors), p.page) for p in pieces]
            self.store.replace_chunks(doc_id, chunks, version)
        self.metrics.chunks.inc(len(texts))
        return dict.fromkeys(parsed)

    def _keep(self, heartbeat: bool) -> None:
        """Start the thread that renews the held jobs' leases (and, in a worker process, sends its heartbeat)."""
        if self._keeper is None:
            self._keeper = threading.Thread(target=self._keeping, args=(heartbeat,), name="keeper", daemon=True)
            self._keeper.start()

    def _keeping(self, heartbeat: bool) -> None:
        ingest = self.settings.ingest
        started_at, last_beat = time.time(), float("-inf")
        while True:
            try:
                with self._held_lock:
                    jobs = [held.job for held in self._held.values()]
                for job in jobs:
                    self.store.jobs.renew_lease(job.id, ingest.lease_seconds)
                if heartbeat and time.monotonic() - last_beat >= ingest.heartbeat_seconds:
                    self.store.record_heartbeat(WORKER_ID, started_at)
                    last_beat = time.monotonic()
            except Exception:  # a busy database: the next round tries again
                log.warning("could not renew leases or send the heartbeat", exc_info=True)
            if self._closing.wait(min(ingest.lease_seconds / 3, ingest.heartbeat_seconds)):
                return
