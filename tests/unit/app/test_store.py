"""The store, on SQLite and on PostgreSQL: documents, tags, chunks, deletes, reopening; SQLite's connections."""

from __future__ import annotations

import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from app.sqlite_store import SQLiteStore
from app.store import NewChunk, Store
from tests.unit.app.conftest import StoreOpener


@pytest.fixture
def store(open_store_under_test: StoreOpener) -> Store:
    return open_store_under_test()


def chunk(position: int, text: str) -> NewChunk:
    return NewChunk(position=position, section="Policy > Part", text=text, embedding=np.ones(4, dtype=np.float32))


def test_same_bytes_are_the_same_document_with_one_job(store: Store) -> None:
    first, outcome = store.add_document("a.txt", "txt", "hash1", 10)
    again, outcome_again = store.add_document("b.txt", "txt", "hash1", 10)
    assert (outcome, outcome_again) == ("created", "duplicate")
    assert again.id == first.id and again.filename == "a.txt"
    assert store.jobs.claim_next(60) is not None
    assert store.jobs.claim_next(60) is None


def test_chunks_are_searchable_only_while_their_document_is_indexed(store: Store) -> None:
    doc, _ = store.add_document("a.txt", "txt", "h-a", 1)
    job = store.jobs.claim_next(60)
    assert store.replace_chunks(doc.id, [chunk(0, "one"), chunk(1, "two")])
    ids = sorted(store.chunk_ids())
    assert store.searchable_chunks(ids) == {}  # still processing
    store.jobs.finish(job)
    found = store.searchable_chunks(ids)
    assert [found[i].text for i in ids] == ["one", "two"]
    assert found[ids[0]].filename == "a.txt" and found[ids[0]].section == "Policy > Part"
    assert store.get_document(doc.id).chunk_count == 2


def test_a_chunk_keeps_the_page_it_starts_on(store: Store) -> None:
    doc, _ = store.add_document("a.pdf", "pdf", "h-a", 1)
    job = store.jobs.claim_next(60)
    paged = NewChunk(0, "Travel", "on page three", np.ones(4, dtype=np.float32), page=3)
    store.replace_chunks(doc.id, [paged, chunk(1, "without pages")])
    store.jobs.finish(job)
    found = store.searchable_chunks(sorted(store.chunk_ids())).values()
    assert sorted((c.text, c.page) for c in found) == [("on page three", 3), ("without pages", None)]


def test_replacing_chunks_never_reuses_ids(store: Store) -> None:
    doc, _ = store.add_document("a.txt", "txt", "h-a", 1)
    store.replace_chunks(doc.id, [chunk(0, "old")])
    old_ids = store.chunk_ids()
    store.replace_chunks(doc.id, [chunk(0, "new")])
    assert store.chunk_ids().isdisjoint(old_ids)


def test_delete_removes_chunks_and_queues_a_prune(store: Store) -> None:
    doc, _ = store.add_document("a.txt", "txt", "h-a", 1)
    store.jobs.finish(store.jobs.claim_next(60))
    store.replace_chunks(doc.id, [chunk(0, "gone")])
    assert store.delete_document(doc.id)
    assert store.get_document(doc.id) is None and store.chunk_ids() == set()
    assert store.jobs.claim_next(60).kind == "prune"
    assert not store.delete_document(doc.id)


def test_chunks_for_a_deleted_document_are_not_stored(store: Store) -> None:
    doc, _ = store.add_document("a.txt", "txt", "h-a", 1)
    store.delete_document(doc.id)
    assert not store.replace_chunks(doc.id, [chunk(0, "late")])
    assert store.chunk_ids() == set()


def test_every_change_to_a_documents_chunks_is_logged_in_order(store: Store) -> None:
    assert store.last_chunk_change() == 0 and store.chunk_changes(0) == (0, set())
    a, _ = store.add_document("a.txt", "txt", "h-a", 1)
    b, _ = store.add_document("b.txt", "txt", "h-b", 1)
    store.replace_chunks(a.id, [chunk(0, "a1"), chunk(1, "a2")])
    seen = store.last_chunk_change()
    store.replace_chunks(b.id, [chunk(0, "b1")])
    assert store.chunk_changes(seen) == (store.last_chunk_change(), {b.id})
    assert store.newest_chunks([a.id, b.id, "no-such-document"]) == {
        a.id: sorted(store.newest_chunks()[a.id]),
        b.id: store.newest_chunks()[b.id],
    }
    assert len(store.newest_chunks([a.id])[a.id]) == 2
    seen = store.last_chunk_change()
    store.delete_document(a.id)
    latest, changed = store.chunk_changes(seen)
    assert changed == {a.id} and latest > seen and store.newest_chunks([a.id]) == {}
    ids = store.newest_chunks()[b.id]
    found_ids, vectors, texts = store.chunk_contents([*ids, 10_000])  # a chunk that does not exist is left out
    assert (found_ids.tolist(), texts) == (ids, ["Policy > Part\nb1"]) and vectors.shape == (1, 4)


def test_index_writers_take_turns(open_store_under_test: StoreOpener) -> None:
    first, second = open_store_under_test(), open_store_under_test()  # as two workers would
    entered = threading.Event()

    def write_next() -> None:
        with second.index_writer_turn():
            entered.set()

    with first.index_writer_turn():
        waiting = threading.Thread(target=write_next)
        waiting.start()
        assert not entered.wait(0.5)
    assert entered.wait(10)
    waiting.join()


def test_everything_survives_reopening(open_store_under_test: StoreOpener) -> None:
    store = open_store_under_test()
    doc, _ = store.add_document("a.txt", "txt", "h-a", 1)
    store.replace_chunks(doc.id, [chunk(0, "kept")])
    store.close()
    reopened = open_store_under_test()
    assert reopened.get_document(doc.id).filename == "a.txt"
    ids, vectors, _ = reopened.chunk_contents(sorted(reopened.chunk_ids()))
    assert vectors.shape == (1, 4) and len(ids) == 1


def test_every_threads_connection_is_closed(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "db.sqlite3")
    store.add_document("a.txt", "txt", "h-a", 1)
    with ThreadPoolExecutor(max_workers=3) as pool:
        connections = list(pool.map(lambda _: store.database.connection(), range(3)))
    store.close()
    for db in {id(c): c for c in connections}.values():
        with pytest.raises(sqlite3.ProgrammingError, match="closed"):
            db.execute("SELECT 1")
    assert store.get_document(store.list_documents()[0].id) is not None  # reopened on use


def test_constructing_a_store_touches_no_file(tmp_path: Path) -> None:
    SQLiteStore(tmp_path / "later" / "db.sqlite3")
    assert not (tmp_path / "later").exists()


def test_the_first_embedder_to_claim_the_store_is_the_one_recorded(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "db.sqlite3")
    assert store.claim_embedder("sentence-transformers:packaged:all-MiniLM-L6-v2") == (
        "sentence-transformers:packaged:all-MiniLM-L6-v2"
    )
    assert store.claim_embedder("sentence-transformers:BAAI/bge-small-en") == (
        "sentence-transformers:packaged:all-MiniLM-L6-v2"
    )
    store.close()
    reopened = SQLiteStore(tmp_path / "db.sqlite3")
    assert reopened.claim_embedder("fake:256") == "sentence-transformers:packaged:all-MiniLM-L6-v2"
