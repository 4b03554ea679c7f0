"""The job queue (SQLite and PostgreSQL): order, leases (on a clock the tests move), failures with a reason,
workers that claim at once."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from app.store import Store
from tests.clock import FakeClock
from tests.unit.app.conftest import StoreOpener


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(open_store_under_test: StoreOpener, clock: FakeClock) -> Store:
    return open_store_under_test(clock)


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


def test_workers_claiming_at_once_never_take_the_same_job(open_store_under_test: StoreOpener) -> None:
    first = open_store_under_test()
    for n in range(40):
        first.add_document(f"{n}.txt", "txt", f"h-{n}", 1)
    workers = [open_store_under_test() for _ in range(4)]  # as four worker processes would

    def claim_all(store: Store) -> list[int]:
        claimed = []
        while (job := store.jobs.claim_next(60)) is not None:
            claimed.append(job.id)
        return claimed

    with ThreadPoolExecutor(max_workers=4) as pool:
        claims = list(pool.map(claim_all, workers))
    every = [job for claimed in claims for job in claimed]
    assert len(every) == len(set(every)) == 40
