"""The store in SQL, for any database that speaks it through `SqlDatabase`: SQLite (app/sqlite_store.py, the
embedded default) and PostgreSQL (app/postgres_store.py). Queries use `?` placeholders and SQL both accept."""

from __future__ import annotations

import time
import uuid
from collections.abc import Collection, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from app.errors import Conflict, DocumentNotFound
from app.jobs import Clock, Job
from app.store import (
    DEFAULT_COLLECTION,
    ApiKey,
    Chunk,
    Document,
    DocumentVersion,
    NewChunk,
    UploadOutcome,
    WorkerHeartbeat,
    searchable_text,
)


class Row(Protocol):
    """A result row, by column name or position (sqlite3.Row, or the PostgreSQL store's rows)."""

    def __getitem__(self, key: str | int) -> Any: ...

    def keys(self) -> list[str]: ...


class Cursor(Protocol):
    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class Executor(Protocol):
    """What a transaction runs statements on."""

    def execute(self, sql: str, params: Any = ..., /) -> Cursor: ...

    def executemany(self, sql: str, params: Any, /) -> Any: ...


class SqlDatabase(Protocol):
    @property
    def tags_aggregate(self) -> str:
        """Joins t.tag with chr(31) per document."""
        ...

    @property
    def skip_locked(self) -> str:
        """Appended to the query that claims a job: "" or " FOR UPDATE SKIP LOCKED"."""
        ...

    @property
    def integrity_error(self) -> type[Exception]: ...

    def transaction(self) -> AbstractContextManager[Executor]: ...

    def serialize(self, db: Executor, key: str) -> None:
        """Make transactions that name the same `key` take turns (where writers do not already)."""
        ...

    def read(self, sql: str, params: Sequence[object] = ()) -> Sequence[Row]:
        """Run one query outside any transaction and fetch every row."""
        ...

    def hold(self, key: str) -> AbstractContextManager[None]:
        """Hold `key` for the block, waiting while another process (of any machine using the database) holds it."""
        ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class ColumnTypes:
    """Where the two databases' DDL differ."""

    serial: str  # an integer primary key that is never reused
    integer: str  # 64-bit
    real: str
    blob: str


SQLITE_TYPES = ColumnTypes("INTEGER PRIMARY KEY AUTOINCREMENT", "INTEGER", "REAL", "BLOB")
POSTGRES_TYPES = ColumnTypes("BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY", "BIGINT", "DOUBLE PRECISION", "BYTEA")


def documents_table(types: ColumnTypes, name: str = "documents") -> str:
    return f"""
CREATE TABLE IF NOT EXISTS {name} (
    id TEXT PRIMARY KEY,
    collection TEXT NOT NULL DEFAULT 'default',
    filename TEXT NOT NULL,
    kind TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    size_bytes {types.integer} NOT NULL,
    status TEXT NOT NULL,
    error TEXT,
    chunk_count INTEGER NOT NULL DEFAULT 0,
    created_at {types.real} NOT NULL,
    updated_at {types.real} NOT NULL,
    indexed_at {types.real},
    version INTEGER NOT NULL DEFAULT 1,  -- the latest upload; filename ... indexed_at describe it
    indexed_version INTEGER,  -- the version whose chunks answer questions; NULL until one is indexed
    UNIQUE (collection, sha256)  -- the same bytes again in a collection are the same document
);
"""


def versions_table(types: ColumnTypes) -> str:
    return f"""
-- Every upload of a document, its latest version included: its history.
CREATE TABLE IF NOT EXISTS document_versions (
    document_id TEXT NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    version INTEGER NOT NULL,
    filename TEXT NOT NULL,
    kind TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    size_bytes {types.integer} NOT NULL,
    status TEXT NOT NULL,  -- queued, processing, indexed, failed; replaced (by a newer indexed version),
    error TEXT,            -- superseded (a newer version was uploaded before this one was processed)
    created_at {types.real} NOT NULL,
    indexed_at {types.real},
    PRIMARY KEY (document_id, version)
);
"""


def schema(types: ColumnTypes) -> str:
    """The store's tables, as each database spells them."""
    return (
        documents_table(types)
        + f"""
CREATE INDEX IF NOT EXISTS documents_collection_filename ON documents(collection, filename);
-- Never reused: a chunk id is also a FAISS id.
CREATE TABLE IF NOT EXISTS chunks (
    id {types.serial},
    document_id TEXT NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    section TEXT NOT NULL,
    text TEXT NOT NULL,
    embedding {types.blob} NOT NULL,
    version INTEGER NOT NULL DEFAULT 1,
    page INTEGER  -- where the chunk starts, in documents that have pages
);
CREATE INDEX IF NOT EXISTS chunks_document_version ON chunks(document_id, version);
CREATE TABLE IF NOT EXISTS document_tags (
    document_id TEXT NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    tag TEXT NOT NULL,
    PRIMARY KEY (document_id, tag)
);
CREATE INDEX IF NOT EXISTS document_tags_tag ON document_tags(tag);
CREATE TABLE IF NOT EXISTS jobs (
    id {types.serial},
    kind TEXT NOT NULL,
    document_id TEXT REFERENCES documents(id) ON DELETE CASCADE,
    version INTEGER,  -- of the document, for ingest jobs
    status TEXT NOT NULL DEFAULT 'queued',
    attempts INTEGER NOT NULL DEFAULT 0,
    lease_until {types.real},
    error TEXT,
    created_at {types.real} NOT NULL,
    updated_at {types.real} NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_status ON jobs(status, id);
"""
        + versions_table(types)
        + f"""
-- One row per worker process, beating while it runs (GET /ready shows them).
CREATE TABLE IF NOT EXISTS workers (
    id TEXT PRIMARY KEY,
    started_at {types.real} NOT NULL,
    heartbeat_at {types.real} NOT NULL
);
-- API keys, by the SHA-256 of the key (keys are random, so a fast hash is enough); see app/access.py.
CREATE TABLE IF NOT EXISTS api_keys (
    name TEXT PRIMARY KEY,
    key_sha256 TEXT NOT NULL UNIQUE,
    scope TEXT NOT NULL,
    collections TEXT NOT NULL,  -- comma-separated; * is every collection
    created_at {types.real} NOT NULL,
    revoked_at {types.real}
);
-- One row each time a document's chunks change, numbered in commit order: an index reads the documents changed
-- since it last looked, so indexing a batch costs the batch, not the corpus.
CREATE TABLE IF NOT EXISTS chunk_changes (
    seq {types.serial},
    document_id TEXT NOT NULL
);
-- Facts about the whole store, e.g. which embedder made its vectors; created last.
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""
    )


FORGET_WORKERS_AFTER_SECONDS = 24 * 3600

# The chunks an index holds: each document's newest stored version (the indexed one, or the one about to be).
NEWEST_VERSION = "NOT EXISTS (SELECT 1 FROM chunks n WHERE n.document_id = c.document_id AND n.version > c.version)"

# Tags joined with the unit separator, which no tag contains ({} is the database's string aggregate).
SELECT_DOCUMENTS = "SELECT d.*, (SELECT {} FROM document_tags t WHERE t.document_id = d.id) AS tags FROM documents d"


class SqlStore:
    """Documents and chunks; `jobs` is the queue in the same database, written in the same transactions."""

    def __init__(self, database: SqlDatabase, location: str, clock: Clock = time.time) -> None:
        self.location = location
        self.database = database
        self.jobs = SqlJobQueue(database, clock)
        self.clock = clock
        self._select_documents = SELECT_DOCUMENTS.format(database.tags_aggregate)

    def _read(self, sql: str, params: Sequence[object] = ()) -> Sequence[Row]:
        return self.database.read(sql, params)

    def _transaction(self) -> AbstractContextManager[Executor]:
        return self.database.transaction()

    def close(self) -> None:
        self.database.close()

    def index_writer_turn(self) -> AbstractContextManager[None]:
        return self.database.hold("index-writer")

    # Documents

    def add_document(
        self,
        filename: str,
        kind: str,
        sha256: str,
        size_bytes: int,
        tags: Sequence[str] = (),
        collection: str = DEFAULT_COLLECTION,
    ) -> tuple[Document, UploadOutcome]:
        now = self.clock()
        with self._transaction() as db:
            self.database.serialize(db, collection)
            same_bytes = db.execute(
                "SELECT id FROM documents WHERE collection = ? AND sha256 = ?", (collection, sha256)
            ).fetchone()
            same_name = db.execute(
                "SELECT id, version FROM documents WHERE collection = ? AND filename = ?"
                " ORDER BY created_at DESC LIMIT 1",
                (collection, filename),
            ).fetchone()
            outcome: UploadOutcome
            if same_bytes is not None:
                doc_id, outcome = same_bytes["id"], "duplicate"
            elif same_name is not None:
                doc_id, outcome = same_name["id"], "new_version"
                _new_version(db, doc_id, same_name["version"] + 1, filename, kind, sha256, size_bytes, now)
            else:
                doc_id, outcome = uuid.uuid4().hex, "created"
                db.execute(
                    "INSERT INTO documents (id, collection, filename, kind, sha256, size_bytes, status, created_at,"
                    " updated_at) VALUES (?, ?, ?, ?, ?, ?, 'queued', ?, ?)",
                    (doc_id, collection, filename, kind, sha256, size_bytes, now, now),
                )
                _new_version(db, doc_id, 1, filename, kind, sha256, size_bytes, now)
            db.executemany(
                "INSERT INTO document_tags (document_id, tag) VALUES (?, ?) ON CONFLICT DO NOTHING",
                [(doc_id, t) for t in tags],
            )
            row = db.execute(f"{self._select_documents} WHERE d.id = ?", (doc_id,)).fetchone()
        return _document(row), outcome

    def add_version(
        self, doc_id: str, filename: str, kind: str, sha256: str, size_bytes: int
    ) -> tuple[Document, UploadOutcome]:
        now = self.clock()
        with self._transaction() as db:
            self.database.serialize(db, doc_id)
            current = db.execute("SELECT version, sha256, collection FROM documents WHERE id = ?", (doc_id,)).fetchone()
            if current is None:
                raise DocumentNotFound(f"no document with id {doc_id}")
            outcome: UploadOutcome = "duplicate"
            if current["sha256"] != sha256:
                other = db.execute(
                    "SELECT id FROM documents WHERE collection = ? AND sha256 = ?", (current["collection"], sha256)
                ).fetchone()
                if other is not None:
                    raise Conflict(f"these bytes are already document {other['id']}; delete it first")
                _new_version(db, doc_id, current["version"] + 1, filename, kind, sha256, size_bytes, now)
                outcome = "new_version"
            row = db.execute(f"{self._select_documents} WHERE d.id = ?", (doc_id,)).fetchone()
        return _document(row), outcome

    def document_versions(self, doc_id: str) -> list[DocumentVersion]:
        rows = self._read("SELECT * FROM document_versions WHERE document_id = ? ORDER BY version", (doc_id,))
        return [DocumentVersion(**row) for row in rows]

    def get_document(self, doc_id: str) -> Document | None:
        rows = self._read(f"{self._select_documents} WHERE d.id = ?", (doc_id,))
        return _document(rows[0]) if rows else None

    def list_documents(self, collections: Sequence[str] | None = None) -> list[Document]:
        query, params = self._select_documents, list(collections or ())
        if collections is not None and not collections:
            return []
        if collections is not None:
            query += f" WHERE d.collection IN ({','.join('?' * len(params))})"
        return [_document(row) for row in self._read(f"{query} ORDER BY d.created_at, d.id", params)]

    def delete_document(self, doc_id: str) -> bool:
        now = self.clock()
        with self._transaction() as db:
            deleted = db.execute("DELETE FROM documents WHERE id = ?", (doc_id,)).rowcount
            if deleted:
                _enqueue(db, "prune", None, now)
                _record_chunk_change(self.database, db, doc_id)
        return bool(deleted)

    # Chunks

    def replace_chunks(self, doc_id: str, chunks: list[NewChunk], version: int | None = None) -> bool:
        with self._transaction() as db:
            doc = db.execute("SELECT version, indexed_version FROM documents WHERE id = ?", (doc_id,)).fetchone()
            if doc is None:
                return False
            version = doc["version"] if version is None else version
            indexed = doc["indexed_version"]
            if indexed is not None and version < indexed:  # a newer version is indexed already
                return False
            # The indexed version's chunks stay until this version is indexed: the index swaps them in one go.
            db.execute(
                "DELETE FROM chunks WHERE document_id = ?"
                " AND (version = ? OR (version IS DISTINCT FROM ? AND version < ?))",
                (doc_id, version, indexed, version),
            )
            db.executemany(
                "INSERT INTO chunks (document_id, version, position, section, text, embedding, page)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        doc_id,
                        version,
                        c.position,
                        c.section,
                        c.text,
                        np.asarray(c.embedding, dtype=np.float32).tobytes(),
                        c.page,
                    )
                    for c in chunks
                ],
            )
            db.execute(
                "UPDATE documents SET chunk_count = ?, updated_at = ? WHERE id = ? AND version = ?",
                (len(chunks), self.clock(), doc_id, version),
            )
            _record_chunk_change(self.database, db, doc_id)
        return True

    def claim_embedder(self, name: str) -> str:
        with self._transaction() as db:  # the API and the worker may claim at the same moment: the first wins
            db.execute("INSERT INTO meta (key, value) VALUES ('embedder', ?) ON CONFLICT DO NOTHING", (name,))
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
        return [WorkerHeartbeat(**row) for row in self._read("SELECT * FROM workers ORDER BY heartbeat_at DESC")]

    def document_counts(self) -> dict[str, int]:
        return {row[0]: row[1] for row in self._read("SELECT status, count(*) FROM documents GROUP BY status")}

    def chunk_ids(self) -> set[int]:
        return {row[0] for row in self._read(f"SELECT id FROM chunks c WHERE {NEWEST_VERSION}")}

    def last_chunk_change(self) -> int:
        return int(self._read("SELECT coalesce(max(seq), 0) FROM chunk_changes")[0][0])

    def chunk_changes(self, after: int) -> tuple[int, set[str]]:
        rows = self._read("SELECT seq, document_id FROM chunk_changes WHERE seq > ? ORDER BY seq", (after,))
        return (rows[-1][0] if rows else after), {row[1] for row in rows}

    def newest_chunks(self, document_ids: Collection[str] | None = None) -> dict[str, list[int]]:
        query = f"SELECT document_id, id FROM chunks c WHERE {NEWEST_VERSION}"
        if document_ids is None:
            rows = self._read(query)
        else:
            rows = self._read_in(f"{query} AND document_id IN ({{}})", sorted(document_ids))
        chunks: dict[str, list[int]] = {}
        for row in rows:
            chunks.setdefault(row[0], []).append(row[1])
        return chunks

    def chunk_contents(self, ids: list[int]) -> tuple[np.ndarray, np.ndarray, list[str]]:
        query = "SELECT id, embedding, section, text FROM chunks WHERE id IN ({})"
        rows = sorted(self._read_in(query, ids), key=lambda row: row[0])
        if not rows:
            return np.empty(0, dtype=np.int64), np.empty((0, 0), dtype=np.float32), []
        found_ids = np.asarray([row[0] for row in rows], dtype=np.int64)
        vectors = np.vstack([np.frombuffer(row[1], dtype=np.float32) for row in rows])
        return found_ids, vectors, [searchable_text(row[2], row[3]) for row in rows]

    def _read_in(self, query: str, values: Sequence[object]) -> list[Row]:
        """`query` with its `IN ({})` filled for `values`, 500 at a time (databases cap a query's parameters)."""
        rows: list[Row] = []
        for start in range(0, len(values), 500):
            batch = values[start : start + 500]
            rows += self._read(query.format(",".join("?" * len(batch))), batch)
        return rows

    def filtered_chunk_ids(
        self,
        document_ids: Sequence[str] | None,
        tags: Sequence[str] | None,
        collections: Sequence[str] | None = None,
    ) -> set[int]:
        if any(values is not None and not values for values in (document_ids, tags, collections)):
            return set()  # nothing can match (and SQL has no empty IN list)
        query = "SELECT c.id FROM chunks c JOIN documents d ON d.id = c.document_id WHERE d.indexed_version IS NOT NULL"
        params: list[str] = []
        if collections is not None:
            query += f" AND d.collection IN ({','.join('?' * len(collections))})"
            params += collections
        if document_ids is not None:
            query += f" AND d.id IN ({','.join('?' * len(document_ids))})"
            params += document_ids
        if tags is not None:
            query += f" AND d.id IN (SELECT document_id FROM document_tags WHERE tag IN ({','.join('?' * len(tags))}))"
            params += tags
        return {row[0] for row in self._read(query, params)}

    # API keys

    def add_key(self, key: ApiKey, key_sha256: str) -> None:
        try:
            with self._transaction() as db:
                db.execute(
                    "INSERT INTO api_keys (name, key_sha256, scope, collections, created_at) VALUES (?, ?, ?, ?, ?)",
                    (key.name, key_sha256, key.scope, ",".join(key.collections), key.created_at),
                )
        except self.database.integrity_error:
            raise Conflict(f"a key named {key.name!r} exists already; revoke it or pick another name") from None

    def key_by_hash(self, key_sha256: str) -> ApiKey | None:
        rows = self._read("SELECT * FROM api_keys WHERE key_sha256 = ? AND revoked_at IS NULL", (key_sha256,))
        return _key(rows[0]) if rows else None

    def list_keys(self) -> list[ApiKey]:
        return [_key(row) for row in self._read("SELECT * FROM api_keys ORDER BY created_at")]

    def revoke_key(self, name: str) -> bool:
        with self._transaction() as db:
            revoked = db.execute(
                "UPDATE api_keys SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL", (self.clock(), name)
            ).rowcount
        return bool(revoked)

    def searchable_chunks(self, ids: list[int]) -> dict[int, Chunk]:
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))
        rows = self._read(
            "SELECT c.id, c.document_id, d.filename, c.position, c.section, c.text, c.page"
            " FROM chunks c JOIN documents d ON d.id = c.document_id"
            f" WHERE c.id IN ({marks}) AND d.indexed_version IS NOT NULL",
            ids,
        )
        return {row["id"]: Chunk(**row) for row in rows}


class SqlJobQueue:
    def __init__(self, database: SqlDatabase, clock: Clock = time.time) -> None:
        self.database = database
        self.clock = clock

    def claim_next(self, lease_seconds: float) -> Job | None:
        now = self.clock()
        with self.database.transaction() as db:
            row = db.execute(
                "SELECT id, kind, document_id, version, attempts FROM jobs"
                " WHERE status = 'queued' OR (status = 'running' AND lease_until < ?)"
                f" ORDER BY id LIMIT 1{self.database.skip_locked}",
                (now,),
            ).fetchone()
            if row is None:
                return None
            db.execute(
                "UPDATE jobs SET status = 'running', attempts = attempts + 1, lease_until = ?, updated_at = ?"
                " WHERE id = ?",
                (now + lease_seconds, now, row["id"]),
            )
            job = Job(row["id"], row["kind"], row["document_id"], row["attempts"] + 1, row["version"])
            if job.document_id is not None:
                _set_version_status(db, job, "processing", None, now)
        return job

    def pending(self) -> int:
        return int(self.database.read("SELECT count(*) FROM jobs WHERE status IN ('queued', 'running')")[0][0])

    def renew_lease(self, job_id: int, lease_seconds: float) -> None:
        with self.database.transaction() as db:
            db.execute("UPDATE jobs SET lease_until = ? WHERE id = ?", (self.clock() + lease_seconds, job_id))

    def finish(self, job: Job, error: str | None = None) -> None:
        now = self.clock()
        with self.database.transaction() as db:
            db.execute(
                "UPDATE jobs SET status = ?, error = ?, lease_until = NULL, updated_at = ? WHERE id = ?",
                ("failed" if error else "done", error, now, job.id),
            )
            if job.document_id is None:
                return
            doc = db.execute("SELECT indexed_version FROM documents WHERE id = ?", (job.document_id,)).fetchone()
            if doc is None:  # deleted meanwhile
                return
            if error:
                _set_version_status(db, job, "failed", error, now)
                if doc["indexed_version"] != job.version:  # its chunks, if stored, must not be served
                    db.execute(
                        "DELETE FROM chunks WHERE document_id = ? AND version = ?", (job.document_id, job.version)
                    )
                    _enqueue(db, "prune", None, now)
                    _record_chunk_change(self.database, db, job.document_id)
                return
            if doc["indexed_version"] is not None and job.version < doc["indexed_version"]:
                _set_version_status(db, job, "replaced", None, now)  # a newer version was indexed first
                return
            _set_version_status(db, job, "indexed", None, now)
            # The index now holds this version's chunks: the older version's leave the store and the history.
            db.execute("DELETE FROM chunks WHERE document_id = ? AND version < ?", (job.document_id, job.version))
            db.execute(
                "UPDATE document_versions SET status = 'replaced' WHERE document_id = ? AND version < ?"
                " AND status = 'indexed'",
                (job.document_id, job.version),
            )
            db.execute("UPDATE documents SET indexed_version = ? WHERE id = ?", (job.version, job.document_id))


def _record_chunk_change(database: SqlDatabase, db: Executor, document_id: str) -> None:
    """Log a change of `document_id`'s chunks; last in its transaction, since concurrent writers of the log take
    turns from here to their commit, so the log's numbers are in commit order and a reader misses none."""
    database.serialize(db, "chunk_changes")
    db.execute("INSERT INTO chunk_changes (document_id) VALUES (?)", (document_id,))


def _enqueue(db: Executor, kind: str, document_id: str | None, now: float, version: int | None = None) -> None:
    """Queue a job inside the caller's transaction, so it exists exactly when the change that needs it does."""
    db.execute(
        "INSERT INTO jobs (kind, document_id, version, created_at, updated_at) VALUES (?, ?, ?, ?, ?)",
        (kind, document_id, version, now, now),
    )


def _new_version(
    db: Executor, doc_id: str, version: int, filename: str, kind: str, sha256: str, size: int, now: float
) -> None:
    """Make `version` the document's latest and queue it; the indexed version answers until it is indexed."""
    db.execute(
        "UPDATE documents SET version = ?, filename = ?, kind = ?, sha256 = ?, size_bytes = ?, status = 'queued',"
        " error = NULL, updated_at = ? WHERE id = ?",
        (version, filename, kind, sha256, size, now, doc_id),
    )
    db.execute(
        "INSERT INTO document_versions (document_id, version, filename, kind, sha256, size_bytes, status, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?, 'queued', ?)",
        (doc_id, version, filename, kind, sha256, size, now),
    )
    # A version still waiting in the queue is not worth parsing any more: its job takes the new one instead.
    waiting = db.execute(
        "SELECT id, version FROM jobs WHERE document_id = ? AND kind = 'ingest' AND status = 'queued'", (doc_id,)
    ).fetchone()
    if waiting is None:
        _enqueue(db, "ingest", doc_id, now, version)
        return
    db.execute("UPDATE jobs SET version = ?, updated_at = ? WHERE id = ?", (version, now, waiting["id"]))
    db.execute(
        "UPDATE document_versions SET status = 'superseded' WHERE document_id = ? AND version = ?",
        (doc_id, waiting["version"]),
    )


def _set_version_status(db: Executor, job: Job, status: str, error: str | None, now: float) -> None:
    """The status of the job's version; the document's own status follows its latest version only."""
    indexed_at = now if status == "indexed" else None
    db.execute(
        "UPDATE document_versions SET status = ?, error = ?, indexed_at = ? WHERE document_id = ? AND version = ?",
        (status, error, indexed_at, job.document_id, job.version),
    )
    db.execute(
        "UPDATE documents SET status = ?, error = ?, updated_at = ?, indexed_at = coalesce(?, indexed_at)"
        " WHERE id = ? AND version = ?",
        (status, error, now, indexed_at, job.document_id, job.version),
    )


def _document(row: Row) -> Document:
    tags = tuple(sorted(row["tags"].split("\x1f"))) if row["tags"] else ()
    return Document(**{**dict(row), "tags": tags})


def _key(row: Row) -> ApiKey:
    return ApiKey(row["name"], row["scope"], tuple(row["collections"].split(",")), row["created_at"], row["revoked_at"])
