from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from app.store import NewChunk, Store


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "db.sqlite3")


def chunk(position: int, text: str) -> NewChunk:
    return NewChunk(position=position, section="Policy > Part", text=text, embedding=np.ones(4, dtype=np.float32))


def test_same_bytes_are_the_same_document_with_one_job(store: Store) -> None:
    first, created = store.add_document("a.txt", "txt", "hash1", 10)
    again, created_again = store.add_document("b.txt", "txt", "hash1", 10)
    assert (created, created_again) == (True, False)
    assert again.id == first.id and again.filename == "a.txt"
    assert store.claim_next_job(60) is not None
    assert store.claim_next_job(60) is None


def test_jobs_are_claimed_in_order_and_finishing_indexes_the_document(store: Store) -> None:
    a, _ = store.add_document("a.txt", "txt", "h-a", 1)
    b, _ = store.add_document("b.txt", "txt", "h-b", 1)
    job = store.claim_next_job(60)
    assert job.document_id == a.id and job.attempts == 1
    assert store.get_document(a.id).status == "processing"
    store.finish_job(job)
    assert store.get_document(a.id).status == "indexed"
    assert store.claim_next_job(60).document_id == b.id


def test_a_job_whose_lease_expired_is_taken_again(store: Store) -> None:
    store.add_document("a.txt", "txt", "h-a", 1)
    first = store.claim_next_job(lease_seconds=0.05)
    assert store.claim_next_job(60) is None
    time.sleep(0.1)
    again = store.claim_next_job(60)
    assert (again.id, again.attempts) == (first.id, 2)


def test_a_renewed_lease_keeps_the_job(store: Store) -> None:
    store.add_document("a.txt", "txt", "h-a", 1)
    job = store.claim_next_job(lease_seconds=0.05)
    store.renew_lease(job.id, 60)
    time.sleep(0.1)
    assert store.claim_next_job(60) is None


def test_failed_job_records_a_readable_error_and_others_go_on(store: Store) -> None:
    a, _ = store.add_document("a.docx", "docx", "h-a", 1)
    b, _ = store.add_document("b.txt", "txt", "h-b", 1)
    store.finish_job(store.claim_next_job(60), error="a.docx could not be read")
    failed = store.get_document(a.id)
    assert (failed.status, failed.error) == ("failed", "a.docx could not be read")
    assert store.claim_next_job(60).document_id == b.id


def test_chunks_are_searchable_only_while_their_document_is_indexed(store: Store) -> None:
    doc, _ = store.add_document("a.txt", "txt", "h-a", 1)
    job = store.claim_next_job(60)
    assert store.replace_chunks(doc.id, [chunk(0, "one"), chunk(1, "two")])
    ids = sorted(store.chunk_ids())
    assert store.searchable_chunks(ids) == {}  # still processing
    store.finish_job(job)
    found = store.searchable_chunks(ids)
    assert [found[i].text for i in ids] == ["one", "two"]
    assert found[ids[0]].filename == "a.txt" and found[ids[0]].section == "Policy > Part"
    assert store.get_document(doc.id).chunk_count == 2


def test_replacing_chunks_never_reuses_ids(store: Store) -> None:
    doc, _ = store.add_document("a.txt", "txt", "h-a", 1)
    store.replace_chunks(doc.id, [chunk(0, "old")])
    old_ids = store.chunk_ids()
    store.replace_chunks(doc.id, [chunk(0, "new")])
    assert store.chunk_ids().isdisjoint(old_ids)


def test_delete_removes_chunks_and_queues_a_prune(store: Store) -> None:
    doc, _ = store.add_document("a.txt", "txt", "h-a", 1)
    store.finish_job(store.claim_next_job(60))
    store.replace_chunks(doc.id, [chunk(0, "gone")])
    assert store.delete_document(doc.id)
    assert store.get_document(doc.id) is None and store.chunk_ids() == set()
    assert store.claim_next_job(60).kind == "prune"
    assert not store.delete_document(doc.id)


def test_chunks_for_a_deleted_document_are_not_stored(store: Store) -> None:
    doc, _ = store.add_document("a.txt", "txt", "h-a", 1)
    store.delete_document(doc.id)
    assert not store.replace_chunks(doc.id, [chunk(0, "late")])
    assert store.chunk_ids() == set()


def test_everything_survives_reopening(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    store = Store(path)
    doc, _ = store.add_document("a.txt", "txt", "h-a", 1)
    store.replace_chunks(doc.id, [chunk(0, "kept")])
    store.close()
    reopened = Store(path)
    assert reopened.get_document(doc.id).filename == "a.txt"
    ids, vectors = reopened.chunk_vectors(sorted(reopened.chunk_ids()))
    assert vectors.shape == (1, 4) and len(ids) == 1
