"""The job queue of the SQLite store: order, leases (on a clock the tests move), failures with a reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.sqlite_store import SQLiteStore
from app.store import Store
from tests.clock import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(tmp_path: Path, clock: FakeClock) -> Store:
    return SQLiteStore(tmp_path / "db.sqlite3", clock=clock)


def test_jobs_are_claimed_in_order_and_finishing_indexes_the_document(store: Store) -> None:
    a, _ = store.add_document("a.txt", "txt", "h-a", 1)
    b, _ = store.add_document("b.txt", "txt", "h-b", 1)
    job = store.jobs.claim_next(60)
    assert job.document_id == a.id and job.attempts == 1
    assert store.get_document(a.id).status == "processing"
    store.jobs.finish(job)
    assert store.get_document(a.id).status == "indexed"
    assert store.jobs.claim_next(60).document_id == b.id


def test_a_job_whose_lease_expired_is_taken_again(store: Store, clock: FakeClock) -> None:
    store.add_document("a.txt", "txt", "h-a", 1)
    first = store.jobs.claim_next(lease_seconds=30)
    assert store.jobs.claim_next(60) is None
    clock.advance(31)  # its worker died and stopped renewing
    again = store.jobs.claim_next(60)
    assert (again.id, again.attempts) == (first.id, 2)


def test_a_renewed_lease_keeps_the_job(store: Store, clock: FakeClock) -> None:
    store.add_document("a.txt", "txt", "h-a", 1)
    job = store.jobs.claim_next(lease_seconds=30)
    clock.advance(20)
    store.jobs.renew_lease(job.id, 30)
    clock.advance(20)
    assert store.jobs.claim_next(60) is None


def test_failed_job_records_a_readable_error_and_others_go_on(store: Store) -> None:
    a, _ = store.add_document("a.docx", "docx", "h-a", 1)
    b, _ = store.add_document("b.txt", "txt", "h-b", 1)
    store.jobs.finish(store.jobs.claim_next(60), error="a.docx could not be read")
    failed = store.get_document(a.id)
    assert (failed.status, failed.error) == ("failed", "a.docx could not be read")
    assert store.jobs.claim_next(60).document_id == b.id
