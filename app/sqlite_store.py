"""The embedded store in one SQLite file (WAL), shared by the API and the worker: documents, tags, chunks
with their vectors, and the job queue, written in the same transactions."""

from __future__ import annotations

import sqlite3
import time
import uuid
from collections.abc import Sequence
from contextlib import AbstractContextManager
from pathlib import Path

import numpy as np

from app.database import Database
from app.jobs import Clock, Job
from app.store import Chunk, Document, NewChunk, WorkerHeartbeat, searchable_text

SCHEMA = """
CREATE TABLE IF NOT EXISTS documents (
    id TEXT PRIMARY KEY,
    filename TEXT NOT NULL,
    kind TEXT NOT NULL,
    sha256 TEXT NOT NULL UNIQUE,
    size_bytes INTEGER NOT NULL,
    status TEXT NOT NULL,
    error TEXT,
    chunk_count INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    indexed_at REAL
);
-- AUTOINCREMENT: a chunk id is also a FAISS id, so ids must never be reused.
CREATE TABLE IF NOT EXISTS chunks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    document_id TEXT NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    section TEXT NOT NULL,
    text TEXT NOT NULL,
    embedding BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS chunks_document ON chunks(document_id);
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
    status TEXT NOT NULL DEFAULT 'queued',
    attempts INTEGER NOT NULL DEFAULT 0,
    lease_until REAL,
    error TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_status ON jobs(status, id);
-- One row per worker process, beating while it runs (GET /ready shows them).
CREATE TABLE IF NOT EXISTS workers (
    id TEXT PRIMARY KEY,
    started_at REAL NOT NULL,
    heartbeat_at REAL NOT NULL
);
-- Facts about the whole store, e.g. which embedder made its vectors.
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""

FORGET_WORKERS_AFTER_SECONDS = 24 * 3600

# Tags joined with the unit separator, which no tag contains.
SELECT_DOCUMENTS = (
    "SELECT d.*, (SELECT group_concat(t.tag, char(31)) FROM document_tags t WHERE t.document_id = d.id) AS tags"
    " FROM documents d"
)


class SQLiteStore:
    """Documents and chunks; `jobs` is the queue in the same database. Opens nothing until first used."""

    def __init__(self, path: Path, clock: Clock = time.time) -> None:
        self.path = path
        self.database = Database(path, SCHEMA)
        self.jobs = SQLiteJobQueue(self.database, clock)
        self.clock = clock

    def _connection(self) -> sqlite3.Connection:
        return self.database.connection()

    def _transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        return self.database.transaction()

    def close(self) -> None:
        self.database.close()

    # Documents

    def add_document(
        self, filename: str, kind: str, sha256: str, size_bytes: int, tags: Sequence[str] = ()
    ) -> tuple[Document, bool]:
        now = self.clock()
        with self._transaction() as db:
            row = db.execute("SELECT id FROM documents WHERE sha256 = ?", (sha256,)).fetchone()
            created = row is None
            doc_id = uuid.uuid4().hex if created else row["id"]
            if created:
                db.execute(
                    "INSERT INTO documents (id, filename, kind, sha256, size_bytes, status, created_at, updated_at)"
                    " VALUES (?, ?, ?, ?, ?, 'queued', ?, ?)",
                    (doc_id, filename, kind, sha256, size_bytes, now, now),
                )
                _enqueue(db, "ingest", doc_id, now)
            db.executemany(
                "INSERT OR IGNORE INTO document_tags (document_id, tag) VALUES (?, ?)", [(doc_id, t) for t in tags]
            )
            row = db.execute(f"{SELECT_DOCUMENTS} WHERE d.id = ?", (doc_id,)).fetchone()
        return _document(row), created

    def get_document(self, doc_id: str) -> Document | None:
        row = self._connection().execute(f"{SELECT_DOCUMENTS} WHERE d.id = ?", (doc_id,)).fetchone()
        return _document(row) if row else None

    def list_documents(self) -> list[Document]:
        rows = self._connection().execute(f"{SELECT_DOCUMENTS} ORDER BY d.created_at, d.id").fetchall()
        return [_document(row) for row in rows]

    def delete_document(self, doc_id: str) -> bool:
        now = self.clock()
        with self._transaction() as db:
            deleted = db.execute("DELETE FROM documents WHERE id = ?", (doc_id,)).rowcount
            if deleted:
                _enqueue(db, "prune", None, now)
        return bool(deleted)

    # Chunks

    def replace_chunks(self, doc_id: str, chunks: list[NewChunk]) -> bool:
        """Swap a document's chunks in one transaction; False when the document was deleted meanwhile."""
        with self._transaction() as db:
            if db.execute("SELECT 1 FROM documents WHERE id = ?", (doc_id,)).fetchone() is None:
                return False
            db.execute("DELETE FROM chunks WHERE document_id = ?", (doc_id,))
            db.executemany(
                "INSERT INTO chunks (document_id, position, section, text, embedding) VALUES (?, ?, ?, ?, ?)",
                [
                    (
                        doc_id,
                        c.position,
                        c.section,
                        c.text,
                        np.asarray(c.embedding, dtype=np.float32).tobytes(),
                    )
                    for c in chunks
                ],
            )
            db.execute(
                "UPDATE documents SET chunk_count = ?, updated_at = ? WHERE id = ?",
                (len(chunks), self.clock(), doc_id),
            )
        return True

    def claim_embedder(self, name: str) -> str:
        with self._transaction() as db:  # the API and the worker may claim at the same moment: the first wins
            db.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('embedder', ?)", (name,))
            return str(db.execute("SELECT value FROM meta WHERE key = 'embedder'").fetchone()[0])

    def record_heartbeat(self, worker_id: str, started_at: float) -> None:
        now = self.clock()
        with self._transaction() as db:
            db.execute(
                "INSERT INTO workers (id, started_at, heartbeat_at) VALUES (?, ?, ?)"
                " ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at",
                (worker_id, started_at, now),
            )
            db.execute("DELETE FROM workers WHERE heartbeat_at < ?", (now - FORGET_WORKERS_AFTER_SECONDS,))

    def workers(self) -> list[WorkerHeartbeat]:
        rows = self._connection().execute("SELECT * FROM workers ORDER BY heartbeat_at DESC").fetchall()
        return [WorkerHeartbeat(**row) for row in rows]

    def document_counts(self) -> dict[str, int]:
        rows = self._connection().execute("SELECT status, count(*) FROM documents GROUP BY status")
        return {row[0]: row[1] for row in rows}

    def chunk_ids(self) -> set[int]:
        return {row[0] for row in self._connection().execute("SELECT id FROM chunks")}

    def chunk_texts(self) -> tuple[np.ndarray, list[str]]:
        rows = self._connection().execute("SELECT id, section, text FROM chunks ORDER BY id").fetchall()
        ids = np.asarray([row[0] for row in rows], dtype=np.int64)
        return ids, [searchable_text(row[1], row[2]) for row in rows]

    def chunk_vectors(self, ids: list[int]) -> tuple[np.ndarray, np.ndarray]:
        db = self._connection()
        found_ids, vectors = [], []
        for start in range(0, len(ids), 500):
            batch = ids[start : start + 500]
            marks = ",".join("?" * len(batch))
            for row in db.execute(f"SELECT id, embedding FROM chunks WHERE id IN ({marks})", batch):
                found_ids.append(row[0])
                vectors.append(np.frombuffer(row[1], dtype=np.float32))
        if not vectors:
            return np.empty(0, dtype=np.int64), np.empty((0, 0), dtype=np.float32)
        return np.asarray(found_ids, dtype=np.int64), np.vstack(vectors)

    def filtered_chunk_ids(self, document_ids: Sequence[str] | None, tags: Sequence[str] | None) -> set[int]:
        query = "SELECT c.id FROM chunks c JOIN documents d ON d.id = c.document_id WHERE d.status = 'indexed'"
        params: list[str] = []
        if document_ids is not None:
            query += f" AND d.id IN ({','.join('?' * len(document_ids))})"
            params += document_ids
        if tags is not None:
            query += f" AND d.id IN (SELECT document_id FROM document_tags WHERE tag IN ({','.join('?' * len(tags))}))"
            params += tags
        return {row[0] for row in self._connection().execute(query, params)}

    def searchable_chunks(self, ids: list[int]) -> dict[int, Chunk]:
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))
        rows = self._connection().execute(
            "SELECT c.id, c.document_id, d.filename, c.position, c.section, c.text"
            " FROM chunks c JOIN documents d ON d.id = c.document_id"
            f" WHERE c.id IN ({marks}) AND d.status = 'indexed'",
            ids,
        )
        return {row["id"]: Chunk(**row) for row in rows}


class SQLiteJobQueue:
    def __init__(self, database: Database, clock: Clock = time.time) -> None:
        self.database = database
        self.clock = clock

    def claim_next(self, lease_seconds: float) -> Job | None:
        now = self.clock()
        with self.database.transaction() as db:
            row = db.execute(
                "SELECT id, kind, document_id, attempts FROM jobs"
                " WHERE status = 'queued' OR (status = 'running' AND lease_until < ?)"
                " ORDER BY id LIMIT 1",
                (now,),
            ).fetchone()
            if row is None:
                return None
            db.execute(
                "UPDATE jobs SET status = 'running', attempts = attempts + 1, lease_until = ?, updated_at = ?"
                " WHERE id = ?",
                (now + lease_seconds, now, row["id"]),
            )
            if row["document_id"] is not None:
                db.execute(
                    "UPDATE documents SET status = 'processing', updated_at = ? WHERE id = ?",
                    (now, row["document_id"]),
                )
        return Job(id=row["id"], kind=row["kind"], document_id=row["document_id"], attempts=row["attempts"] + 1)

    def pending(self) -> int:
        row = self.database.connection().execute("SELECT count(*) FROM jobs WHERE status IN ('queued', 'running')")
        return int(row.fetchone()[0])

    def renew_lease(self, job_id: int, lease_seconds: float) -> None:
        with self.database.transaction() as db:
            db.execute("UPDATE jobs SET lease_until = ? WHERE id = ?", (self.clock() + lease_seconds, job_id))

    def finish(self, job: Job, error: str | None = None) -> None:
        now = self.clock()
        status = "failed" if error else "done"
        with self.database.transaction() as db:
            db.execute(
                "UPDATE jobs SET status = ?, error = ?, lease_until = NULL, updated_at = ? WHERE id = ?",
                (status, error, now, job.id),
            )
            if job.document_id is not None:
                db.execute(
                    "UPDATE documents SET status = ?, error = ?, updated_at = ?, indexed_at = ? WHERE id = ?",
                    ("failed" if error else "indexed", error, now, None if error else now, job.document_id),
                )


def _enqueue(db: sqlite3.Connection, kind: str, document_id: str | None, now: float) -> None:
    """Queue a job inside the caller's transaction, so it exists exactly when the change that needs it does."""
    db.execute(
        "INSERT INTO jobs (kind, document_id, created_at, updated_at) VALUES (?, ?, ?, ?)",
        (kind, document_id, now, now),
    )


def _document(row: sqlite3.Row) -> Document:
    tags = tuple(sorted(row["tags"].split("\x1f"))) if row["tags"] else ()
    return Document(**{**dict(row), "tags": tags})
