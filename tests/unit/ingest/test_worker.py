"""The worker against a real store, real embeddings and real FAISS files in a temporary data dir."""

from __future__ import annotations

import hashlib
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from app.config import Settings
from app.embedding import Embedder
from app.embedding.sentence_transformers_backend import SentenceTransformersEmbedder
from app.errors import ModelUnavailable
from app.faiss_index import FaissLiveIndex
from app.segments import latest_generation
from app.sqlite_store import SQLiteStore
from app.store import NewChunk, Store
from ingest.worker import Worker
from tests.clock import FakeClock

REFUNDS = b"# Refund Policy\n\n## Eligibility\n\nRefunds are accepted within 30 days of purchase.\n"
LAPTOPS = b"# Security\n\n## Laptops\n\nLaptops lock after five minutes.\n\n## Passwords\n\nAt least 14 characters.\n"


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    return SentenceTransformersEmbedder(Settings().embedding)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings().with_data_dir(tmp_path)


def upload(store: Store, settings: Settings, filename: str, content: bytes, kind: str = "md") -> str:
    sha = hashlib.sha256(content).hexdigest()
    settings.storage.uploads_dir.mkdir(parents=True, exist_ok=True)
    (settings.storage.uploads_dir / sha).write_bytes(content)
    return store.add_document(filename, kind, sha, len(content))[0].id


def drain(worker: Worker) -> None:
    while worker.run_once():
        pass


def test_documents_are_indexed_and_searchable(settings: Settings, embedder: Embedder) -> None:
    store = SQLiteStore(settings.storage.database_path)
    refunds = upload(store, settings, "refunds.md", REFUNDS)
    upload(store, settings, "security.md", LAPTOPS)
    worker = Worker(settings, store, embedder)
    drain(worker)
    assert store.get_document(refunds).status == "indexed"
    assert store.get_document(refunds).chunk_count == 1
    snapshot = FaissLiveIndex(settings.storage.index_dir).current()
    hits = snapshot.dense_search(embedder.embed(["how long to get a refund"])[0], 3)
    assert snapshot.lexical_search("refund", 3)[0].chunk_id == hits[0].chunk_id
    best = store.searchable_chunks([hits[0].chunk_id])[hits[0].chunk_id]
    assert (best.document_id, best.section) == (refunds, "Refund Policy > Eligibility")


def test_a_failing_document_records_its_error_and_the_next_one_indexes(settings: Settings, embedder: Embedder) -> None:
    store = SQLiteStore(settings.storage.database_path)
    empty = upload(store, settings, "empty.md", b"# Only a title\n")
    good = upload(store, settings, "refunds.md", REFUNDS)
    drain(Worker(settings, store, embedder))
    failed = store.get_document(empty)
    assert failed.status == "failed" and "empty.md" in failed.error
    assert store.get_document(good).status == "indexed"


def test_deleting_removes_the_vectors_from_the_next_generation(settings: Settings, embedder: Embedder) -> None:
    store = SQLiteStore(settings.storage.database_path)
    refunds = upload(store, settings, "refunds.md", REFUNDS)
    upload(store, settings, "security.md", LAPTOPS)
    worker = Worker(settings, store, embedder)
    drain(worker)
    store.delete_document(refunds)
    drain(worker)
    snapshot = FaissLiveIndex(settings.storage.index_dir).current()
    assert snapshot.chunk_ids() == store.chunk_ids()
    assert snapshot.lexical_search("refunds", 5) == []


def test_a_restarted_worker_reuses_the_index_and_rebuilds_a_lost_one(settings: Settings, embedder: Embedder) -> None:
    store = SQLiteStore(settings.storage.database_path)
    upload(store, settings, "refunds.md", REFUNDS)
    drain(Worker(settings, store, embedder))
    generation = latest_generation(settings.storage.index_dir)

    def restart() -> None:
        stop = threading.Event()
        stop.set()  # run() repairs the index first, then sees the stop
        Worker(settings, store, embedder).run(stop)

    restart()
    assert latest_generation(settings.storage.index_dir) == generation  # nothing changed, nothing written
    shutil.rmtree(settings.storage.index_dir)
    restart()
    assert FaissLiveIndex(settings.storage.index_dir).current().chunk_ids() == store.chunk_ids() != set()


def test_a_job_interrupted_after_storing_chunks_is_redone_cleanly(settings: Settings, embedder: Embedder) -> None:
    clock = FakeClock()
    store = SQLiteStore(settings.storage.database_path, clock=clock)
    doc = upload(store, settings, "refunds.md", REFUNDS)
    worker = Worker(settings, store, embedder)
    # Another worker died mid-job: it claimed the job and stored chunks, then its lease ran out.
    store.jobs.claim_next(lease_seconds=30)
    store.replace_chunks(doc, [NewChunk(0, "", "stale", embedder.embed(["stale"])[0])])
    clock.advance(31)
    drain(worker)
    assert store.get_document(doc).status == "indexed"
    texts = [c.text for c in store.searchable_chunks(sorted(store.chunk_ids())).values()]
    assert texts == ["Refunds are accepted within 30 days of purchase."]
    assert FaissLiveIndex(settings.storage.index_dir).current().chunk_ids() == store.chunk_ids()


def test_queued_documents_are_indexed_together_with_one_index_write(settings: Settings, embedder: Embedder) -> None:
    store = SQLiteStore(settings.storage.database_path)
    worker = Worker(settings, store, embedder)
    before = worker.index.sync(store)  # the empty index's first generation
    ids = [upload(store, settings, f"policy{i}.md", REFUNDS + f"\nVersion {i}.\n".encode()) for i in range(3)]
    drain(worker)
    assert latest_generation(settings.storage.index_dir) == before + 1
    assert {store.get_document(doc_id).status for doc_id in ids} == {"indexed"}
    assert not worker.run_once()


def test_a_slow_document_does_not_hold_up_small_ones_queued_after_it(settings: Settings, embedder: Embedder) -> None:
    """Parsing smallest first, and indexing what is parsed after batch_wait_seconds: two documents that take
    seconds to parse (the test's stand-in for huge or hostile files) and a small one queued after them."""
    from tests.documents import refund_policy_docx

    quick = settings.model_copy(
        update={"ingest": settings.ingest.model_copy(update={"batch_wait_seconds": 0.3, "parse_workers": 1})}
    )
    store = SQLiteStore(settings.storage.database_path)
    slow = [upload(store, settings, f"slow{i}.docx", refund_policy_docx() + bytes(i), "docx") for i in range(2)]
    small = upload(store, settings, "refunds.md", REFUNDS)
    worker = Worker(quick, store, embedder)
    release = threading.Event()
    parse = worker._parse

    def slow_docx(job, doc):  # type: ignore[no-untyped-def]
        if doc.kind == "docx":
            release.wait(30)
        return parse(job, doc)

    worker._parse = slow_docx  # type: ignore[method-assign]
    while store.get_document(small).status != "indexed":
        assert worker.run_once()
    assert {store.get_document(doc).status for doc in slow} == {"processing"}  # still parsing, or waiting
    release.set()
    drain(worker)
    assert {store.get_document(doc).status for doc in slow} == {"indexed"}


def test_stopping_kills_a_parse_in_progress_at_once(settings: Settings, embedder: Embedder) -> None:
    from tests.documents import docx_bomb

    store = SQLiteStore(settings.storage.database_path)
    upload(store, settings, "huge.docx", docx_bomb(100_000_000), "docx")  # about 20 s to parse
    worker = Worker(settings, store, embedder)
    stop = threading.Event()
    runner = threading.Thread(target=worker.run, args=(stop,))
    runner.start()
    while not any(h.parsing for h in worker._held.values()):
        time.sleep(0.01)
    started = time.monotonic()
    stop.set()
    runner.join(10)
    assert not runner.is_alive() and time.monotonic() - started < 5


def test_the_worker_refuses_a_store_whose_vectors_another_embedder_made(settings: Settings, embedder: Embedder) -> None:
    store = SQLiteStore(settings.storage.database_path)
    store.claim_embedder("sentence-transformers:BAAI/bge-small-en")
    with pytest.raises(ModelUnavailable, match="made by sentence-transformers:BAAI/bge-small-en"):
        Worker(settings, store, embedder).run(threading.Event())
    assert latest_generation(settings.storage.index_dir) is None  # it wrote nothing


def test_a_batch_of_documents_is_embedded_in_one_call_each_chunk_with_its_own_vector(
    settings: Settings, embedder: Embedder
) -> None:
    calls: list[int] = []

    class Counting:
        dim, name = embedder.dim, embedder.name

        def embed(self, texts: list[str]) -> np.ndarray:
            calls.append(len(texts))
            return embedder.embed(texts)

    store = SQLiteStore(settings.storage.database_path)
    ids = [upload(store, settings, name, text) for name, text in [("refunds.md", REFUNDS), ("security.md", LAPTOPS)]]
    drain(Worker(settings, store, Counting()))
    assert calls == [3]  # one chunk of refunds, two of security
    for chunk_id in store.chunk_ids():
        (_, vector, _), text = store.chunk_contents([chunk_id]), store.searchable_chunks([chunk_id])[chunk_id]
        expected = embedder.embed([f"{text.section}\n{text.text}"])[0]
        assert float(vector[0] @ expected) > 0.999, text.section
    assert all(store.get_document(doc).status == "indexed" for doc in ids)


def test_a_document_that_parses_too_long_fails_alone(settings: Settings, embedder: Embedder) -> None:
    from tests.documents import refund_policy_docx

    slow = settings.model_copy(update={"ingest": settings.ingest.model_copy(update={"parse_timeout_seconds": 0.001})})
    store = SQLiteStore(settings.storage.database_path)
    docx = upload(store, settings, "refunds.docx", refund_policy_docx(), kind="docx")
    drain(Worker(slow, store, embedder))
    failed = store.get_document(docx)
    assert failed.status == "failed" and "ingest.parse_timeout_seconds" in failed.error
    text = upload(store, settings, "refunds.md", REFUNDS)
    drain(Worker(settings, store, embedder))  # the worker, with time enough, goes on with the next one
    assert store.get_document(text).status == "indexed"
