"""The embedded store in one SQLite file (WAL), shared by the API and the worker: documents, tags, chunks
with their vectors, and the job queue (the queries are app/sql_store.py's)."""

from __future__ import annotations

import time
from pathlib import Path

from app.database import Database
from app.jobs import Clock
from app.sql_store import SQLITE_TYPES, SqlStore, documents_table, schema, versions_table

SCHEMA = schema(SQLITE_TYPES)

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
    + versions_table(SQLITE_TYPES)
    + """
    INSERT INTO document_versions
        SELECT id, 1, filename, kind, sha256, size_bytes, status, error, created_at, indexed_at FROM documents;
    """,
    # 2: collections (the same bytes may be a document in each collection: the table is rebuilt for its UNIQUE)
    documents_table(SQLITE_TYPES, "documents_with_collection")
    + """
    INSERT INTO documents_with_collection (id, filename, kind, sha256, size_bytes, status, error, chunk_count,
                                           created_at, updated_at, indexed_at, version, indexed_version)
        SELECT id, filename, kind, sha256, size_bytes, status, error, chunk_count,
               created_at, updated_at, indexed_at, version, indexed_version FROM documents;
    DROP TABLE documents;
    ALTER TABLE documents_with_collection RENAME TO documents;
    """,
    # 3: the page a chunk starts on
    "ALTER TABLE chunks ADD COLUMN page INTEGER;",
]


class SQLiteStore(SqlStore):
    """Opens nothing until first used."""

    def __init__(self, path: Path, clock: Clock = time.time) -> None:
        super().__init__(Database(path, SCHEMA, MIGRATIONS), str(path), clock)
