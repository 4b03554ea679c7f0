"""Document versions in the store (SQLite and PostgreSQL): the indexed version answers until the next one is
indexed, then the index swaps them in one generation; failures and quick re-uploads leave the right version
answering."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest

from app.errors import Conflict, DocumentNotFound
from app.sqlite_store import SQLiteStore
from app.store import NewChunk, Store
from tests.unit.app.conftest import StoreOpener


@pytest.fixture
def store(open_store_under_test: StoreOpener) -> Store:
    return open_store_under_test()


def chunks(*texts: str) -> list[NewChunk]:
    return [NewChunk(i, "Policy", text, np.ones(4, dtype=np.float32)) for i, text in enumerate(texts)]


def ingest(store: Store, texts: tuple[str, ...], error: str | None = None) -> set[int]:
    """What the worker does with the next job: store the chunks of its version, then finish it."""
    job = store.jobs.claim_next(60)
    assert job is not None and job.kind == "ingest"
    if error is None:
        assert store.replace_chunks(job.document_id, chunks(*texts), job.version)
    store.jobs.finish(job, error)
    return store.chunk_ids()


def served_texts(store: Store, ids: set[int]) -> list[str]:
    return sorted(c.text for c in store.searchable_chunks(sorted(ids)).values())


def test_a_new_version_answers_only_once_indexed_and_then_alone(store: Store) -> None:
    doc, outcome = store.add_document("travel.md", "md", "v1", 10)
    v1_ids = ingest(store, ("hotels up to 150",))
    assert outcome == "created" and served_texts(store, v1_ids) == ["hotels up to 150"]

    again, outcome = store.add_document("travel.md", "md", "v2", 12)
    assert outcome == "new_version" and again.id == doc.id
    assert (again.version, again.indexed_version, again.status) == (2, 1, "queued")
    assert served_texts(store, store.chunk_ids()) == ["hotels up to 150"]  # v1 answers meanwhile

    job = store.jobs.claim_next(60)
    assert job is not None and job.version == 2
    store.replace_chunks(doc.id, chunks("hotels up to 180"), job.version)
    # What the next index generation holds: v2 only. The generation being served (v1's ids) still answers.
    v2_ids = store.chunk_ids()
    assert served_texts(store, v2_ids) == ["hotels up to 180"] and served_texts(store, v1_ids) == ["hotels up to 150"]
    store.jobs.finish(job)
    assert served_texts(store, v1_ids | v2_ids) == ["hotels up to 180"]
    indexed = store.get_document(doc.id)
    assert (indexed.version, indexed.indexed_version, indexed.status, indexed.chunk_count) == (2, 2, "indexed", 1)
    history = store.document_versions(doc.id)
    assert [(v.version, v.sha256, v.status) for v in history] == [(1, "v1", "replaced"), (2, "v2", "indexed")]


def test_a_version_that_fails_leaves_the_indexed_one_answering(store: Store) -> None:
    doc, _ = store.add_document("travel.md", "md", "v1", 10)
    ingest(store, ("hotels up to 150",))
    store.add_document("travel.md", "md", "v2", 12)
    ids = ingest(store, (), error="travel.md: could not be read")
    assert served_texts(store, ids) == ["hotels up to 150"]
    failed = store.get_document(doc.id)
    assert (failed.status, failed.error, failed.indexed_version) == ("failed", "travel.md: could not be read", 1)
    assert [v.status for v in store.document_versions(doc.id)] == ["indexed", "failed"]


def test_a_version_replaced_before_it_was_processed_is_never_parsed(store: Store) -> None:
    doc, _ = store.add_document("travel.md", "md", "v1", 10)
    store.add_document("travel.md", "md", "v2", 12)  # v1 still queued
    job = store.jobs.claim_next(60)
    assert job is not None and job.version == 2 and store.jobs.claim_next(60) is None
    assert [v.status for v in store.document_versions(doc.id)] == ["superseded", "processing"]


def test_same_bytes_are_a_duplicate_and_put_checks_its_document(store: Store) -> None:
    doc, _ = store.add_document("travel.md", "md", "v1", 10)
    other, _ = store.add_document("other.md", "md", "o1", 10)
    assert store.add_document("travel.md", "md", "v1", 10)[1] == "duplicate"
    assert store.add_version(doc.id, "travel.md", "md", "v1", 10)[1] == "duplicate"
    renamed, outcome = store.add_version(doc.id, "travel-2026.md", "md", "v2", 11)
    assert outcome == "new_version" and (renamed.filename, renamed.version) == ("travel-2026.md", 2)
    with pytest.raises(Conflict, match=other.id):
        store.add_version(doc.id, "travel.md", "md", "o1", 10)
    with pytest.raises(DocumentNotFound):
        store.add_version("nope", "travel.md", "md", "v3", 10)


def test_a_sqlite_database_from_before_versions_is_upgraded_in_place(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    old = sqlite3.connect(path)
    old.executescript(BEFORE_VERSIONS)
    old.executescript(
        "INSERT INTO documents VALUES ('d1', 'travel.md', 'md', 'v1', 10, 'indexed', NULL, 1, 1.0, 1.0, 1.0);"
        "INSERT INTO chunks (document_id, position, section, text, embedding)"
        "  VALUES ('d1', 0, 'Policy', 'hotels up to 150', zeroblob(16));"
        "INSERT INTO jobs (kind, document_id, status, created_at, updated_at) VALUES ('ingest', 'd1', 'done', 1, 1);"
    )
    old.close()
    store = SQLiteStore(path)
    doc = store.get_document("d1")
    assert (doc.version, doc.indexed_version, doc.collection) == (1, 1, "default")
    assert served_texts(store, store.chunk_ids()) == ["hotels up to 150"]
    assert [(v.version, v.status) for v in store.document_versions("d1")] == [(1, "indexed")]
    assert store.add_document("travel.md", "md", "v2", 12)[1] == "new_version"
    assert served_texts(store, ingest(store, ("hotels up to 180",))) == ["hotels up to 180"]
    store.close()
    assert SQLiteStore(path).get_document("d1").indexed_version == 2  # reopening migrates nothing twice


# The layout of the store before document versions (PRAGMA user_version 0).
BEFORE_VERSIONS = """
CREATE TABLE documents (
    id TEXT PRIMARY KEY, filename TEXT NOT NULL, kind TEXT NOT NULL, sha256 TEXT NOT NULL UNIQUE,
    size_bytes INTEGER NOT NULL, status TEXT NOT NULL, error TEXT, chunk_count INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL, updated_at REAL NOT NULL, indexed_at REAL
);
CREATE TABLE chunks (
    id INTEGER PRIMARY KEY AUTOINCREMENT, document_id TEXT NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    position INTEGER NOT NULL, section TEXT NOT NULL, text TEXT NOT NULL, embedding BLOB NOT NULL
);
CREATE INDEX chunks_document ON chunks(document_id);
CREATE TABLE document_tags (
    document_id TEXT NOT NULL REFERENCES documents(id) ON DELETE CASCADE, tag TEXT NOT NULL,
    PRIMARY KEY (document_id, tag)
);
CREATE TABLE jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL,
    document_id TEXT REFERENCES documents(id) ON DELETE CASCADE, status TEXT NOT NULL DEFAULT 'queued',
    attempts INTEGER NOT NULL DEFAULT 0, lease_until REAL, error TEXT, created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
