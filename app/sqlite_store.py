"""The embedded store in one SQLite file (WAL), shared by the API and the worker: documents, tags, chunks
with their vectors, and the job queue (the queries are app/sql_store.py's)."""

from __future__ import annotations

import time
from pathlib import Path

from app.database import Database
from app.jobs import Clock
from app.sql_store import SqlStore

VERSIONS_TABLE = """
-- Every upload of a document, its latest version included: the history GET /documents/{id} shows.
CREATE TABLE IF NOT EXISTS document_versions (
    document_id TEXT NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    version INTEGER NOT NULL,
    filename TEXT NOT NULL,
    kind TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    size_bytes INTEGER NOT NULL,
    status TEXT NOT NULL,  -- queued, processing, indexed, failed; replaced (by a newer indexed version),
    error TEXT,            -- superseded (a newer version was uploaded before this one was processed)
    created_at REAL NOT NULL,
    indexed_at REAL,
    PRIMARY KEY (document_id, version)
);
"""


def documents_table(name: str) -> str:
    return f"""
CREATE TABLE IF NOT EXISTS {name} (
    id TEXT PRIMARY KEY,
    collection TEXT NOT NULL DEFAULT 'default',
    filename TEXT NOT NULL,
    kind TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    size_bytes INTEGER NOT NULL,
    status TEXT NOT NULL,
    error TEXT,
    chunk_count INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    indexed_at REAL,
    version INTEGER NOT NULL DEFAULT 1,  -- the latest upload; filename ... indexed_at describe it
    indexed_version INTEGER,  -- the version whose chunks answer questions; NULL until one is indexed
    UNIQUE (collection, sha256)  -- the same bytes again in a collection are the same document
);
"""


SCHEMA = (
    documents_table("documents")
    + """
CREATE INDEX IF NOT EXISTS documents_collection_filename ON documents(collection, filename);
-- AUTOINCREMENT: a chunk id is also a FAISS id, so ids must never be reused.
CREATE TABLE IF NOT EXISTS chunks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    document_id TEXT NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    section TEXT NOT NULL,
    text TEXT NOT NULL,
    embedding BLOB NOT NULL,
    version INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX IF NOT EXISTS chunks_document_version ON chunks(document_id, version);
CREATE TABLE IF NOT EXISTS document_tags (
    document_id TEXT NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    tag TEXT NOT NULL,
    PRIMARY KEY (document_id, tag)
);
CREATE INDEX IF NOT EXISTS document_tags_tag ON document_tags(tag);
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    document_id TEXT REFERENCES documents(id) ON DELETE CASCADE,
    version INTEGER,  -- of the document, for ingest jobs
    status TEXT NOT NULL DEFAULT 'queued',
    attempts INTEGER NOT NULL DEFAULT 0,
    lease_until REAL,
    error TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_status ON jobs(status, id);
VERSIONS_TABLE
-- One row per worker process, beating while it runs (GET /ready shows them).
CREATE TABLE IF NOT EXISTS workers (
    id TEXT PRIMARY KEY,
    started_at REAL NOT NULL,
    heartbeat_at REAL NOT NULL
);
-- API keys, by the SHA-256 of the key (keys are random, so a fast hash is enough); see app/access.py.
CREATE TABLE IF NOT EXISTS api_keys (
    name TEXT PRIMARY KEY,
    key_sha256 TEXT NOT NULL UNIQUE,
    scope TEXT NOT NULL,
    collections TEXT NOT NULL,  -- comma-separated; * is every collection
    created_at REAL NOT NULL,
    revoked_at REAL
);
-- Facts about the whole store, e.g. which embedder made its vectors.
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""
).replace("VERSIONS_TABLE", VERSIONS_TABLE)

# Each brings a database of the previous layout to the next (PRAGMA user_version counts those applied).
MIGRATIONS = [
    # 1: document versions
    """
    ALTER TABLE documents ADD COLUMN version INTEGER NOT NULL DEFAULT 1;
    ALTER TABLE documents ADD COLUMN indexed_version INTEGER;
    UPDATE documents SET indexed_version = 1 WHERE status = 'indexed';
    ALTER TABLE chunks ADD COLUMN version INTEGER NOT NULL DEFAULT 1;
    ALTER TABLE jobs ADD COLUMN version INTEGER;
    UPDATE jobs SET version = 1 WHERE document_id IS NOT NULL;
    DROP INDEX IF EXISTS chunks_document;
    """
    + VERSIONS_TABLE
    + """
    INSERT INTO document_versions
        SELECT id, 1, filename, kind, sha256, size_bytes, status, error, created_at, indexed_at FROM documents;
    """,
    # 2: collections (the same bytes may be a document in each collection: the table is rebuilt for its UNIQUE)
    documents_table("documents_with_collection")
    + """
    INSERT INTO documents_with_collection (id, filename, kind, sha256, size_bytes, status, error, chunk_count,
                                           created_at, updated_at, indexed_at, version, indexed_version)
        SELECT id, filename, kind, sha256, size_bytes, status, error, chunk_count,
               created_at, updated_at, indexed_at, version, indexed_version FROM documents;
    DROP TABLE documents;
    ALTER TABLE documents_with_collection RENAME TO documents;
    """,
]


class SQLiteStore(SqlStore):
    """Opens nothing until first used."""

    def __init__(self, path: Path, clock: Clock = time.time) -> None:
        super().__init__(Database(path, SCHEMA, MIGRATIONS), path, clock)
