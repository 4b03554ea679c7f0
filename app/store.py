"""The store: documents, their tags and chunks (with vectors), and the job queue beside them.

`Store` is what the API, the worker, the eval and fine-tuning need; `open_store` builds the implementation
`storage.backend` names (SQLite, in app/sqlite_store.py, the embedded default)."""

from __future__ import annotations

import re
import time
from collections.abc import Collection, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np

from app.config import StorageSettings
from app.errors import InvalidRequest
from app.jobs import Clock, JobQueue


def searchable_text(section: str, text: str) -> str:
    """What retrieval matches a chunk on: its heading path carries meaning the paragraph leaves implicit."""
    return f"{section}\n{text}" if section else text


# Tags, collection and key names: short and plain.
LABEL = re.compile(r"[\w .:-]{1,64}")


def checked_label(what: str, value: str) -> str:
    if not LABEL.fullmatch(value):
        raise InvalidRequest(f"{what} {value!r} is not allowed: use up to 64 letters, digits, spaces or . _ : -")
    return value


DEFAULT_COLLECTION = "default"
ALL_COLLECTIONS = "*"  # in a key's collections: every one


@dataclass(frozen=True)
class Document:
    id: str
    filename: str
    kind: str
    sha256: str
    size_bytes: int
    status: str
    error: str | None
    chunk_count: int
    created_at: float
    updated_at: float
    indexed_at: float | None
    tags: tuple[str, ...] = ()
    version: int = 1  # the latest upload, which filename ... indexed_at describe
    indexed_version: int | None = None  # the version whose chunks answer questions
    collection: str = DEFAULT_COLLECTION


@dataclass(frozen=True)
class DocumentVersion:
    document_id: str
    version: int
    filename: str
    kind: str
    sha256: str
    size_bytes: int
    status: str  # queued, processing, indexed, failed, replaced (by a newer indexed version), superseded
    error: str | None
    created_at: float
    indexed_at: float | None


@dataclass(frozen=True)
class ApiKey:
    name: str
    scope: str  # read, write or admin (app/access.py)
    collections: tuple[str, ...]  # ("*",): every collection
    created_at: float
    revoked_at: float | None = None


# What an upload did: a new document, a new version of the document with its name, or nothing (same bytes).
UploadOutcome = Literal["created", "new_version", "duplicate"]


@dataclass(frozen=True)
class Chunk:
    id: int
    document_id: str
    filename: str
    position: int
    section: str
    text: str
    page: int | None = None  # where it starts, in documents that have pages (PDF)


@dataclass(frozen=True)
class NewChunk:
    position: int
    section: str
    text: str
    embedding: np.ndarray
    page: int | None = None


@dataclass(frozen=True)
class WorkerHeartbeat:
    id: str  # host:pid
    started_at: float
    heartbeat_at: float


class Store(Protocol):
    @property
    def location(self) -> str:
        """Where the store lives (a file, or a server), for messages."""
        ...

    @property
    def jobs(self) -> JobQueue: ...

    def close(self) -> None: ...

    def add_document(
        self,
        filename: str,
        kind: str,
        sha256: str,
        size_bytes: int,
        tags: Sequence[str] = (),
        collection: str = DEFAULT_COLLECTION,
    ) -> tuple[Document, UploadOutcome]:
        """Insert a document and its ingest job, or a new version of the collection's latest document named
        `filename`; the same bytes again in the collection return the existing document (tags added)."""
        ...

    def add_version(
        self, doc_id: str, filename: str, kind: str, sha256: str, size_bytes: int
    ) -> tuple[Document, UploadOutcome]:
        """A new version of the document (its bytes unchanged: a duplicate). DocumentNotFound, or Conflict
        when the bytes are another document's."""
        ...

    def document_versions(self, doc_id: str) -> list[DocumentVersion]:
        """Every version of the document, the first first."""
        ...

    def get_document(self, doc_id: str) -> Document | None: ...

    def list_documents(self, collections: Sequence[str] | None = None) -> list[Document]:
        """Every document, or those in `collections`."""
        ...

    def delete_document(self, doc_id: str) -> bool:
        """Delete a document and its chunks, and queue the removal of their vectors from the index."""
        ...

    def replace_chunks(self, doc_id: str, chunks: list[NewChunk], version: int | None = None) -> bool:
        """Store the chunks of one version of a document (default: its latest); those of its indexed version stay
        until this one is indexed (`jobs.finish`), and the index takes the newest. False when the document was
        deleted meanwhile, or a newer version is indexed already."""
        ...

    def claim_embedder(self, name: str) -> str:
        """Record `name` as the embedder of the stored vectors unless one is recorded; return the recorded one."""
        ...

    def record_heartbeat(self, worker_id: str, started_at: float) -> None:
        """A worker is alive now (workers silent for a day are forgotten)."""
        ...

    def workers(self) -> list[WorkerHeartbeat]:
        """Workers by their last heartbeat, the latest first."""
        ...

    def document_counts(self) -> dict[str, int]:
        """How many documents have each status."""
        ...

    def chunk_ids(self) -> set[int]:
        """The chunks an index holds: each document's newest stored version."""
        ...

    def index_writer_turn(self) -> AbstractContextManager[None]:
        """Held by whoever writes a shared index (Qdrant): workers on any machine take turns."""
        ...

    def last_chunk_change(self) -> int:
        """The number of the latest change to any document's chunks (0 before any)."""
        ...

    def chunk_changes(self, after: int) -> tuple[int, set[str]]:
        """(the latest change's number, the documents whose chunks changed) since change `after`."""
        ...

    def newest_chunks(self, document_ids: Collection[str] | None = None) -> dict[str, list[int]]:
        """The chunk ids an index holds for each of `document_ids` (default: every document) that has any."""
        ...

    def chunk_contents(self, ids: list[int]) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """(ids, vectors, searchable texts) of the given chunks that still exist, by id: what an index holds."""
        ...

    def filtered_chunk_ids(
        self,
        document_ids: Sequence[str] | None,
        tags: Sequence[str] | None,
        collections: Sequence[str] | None = None,
    ) -> set[int]:
        """Chunk ids of indexed documents among `document_ids`, carrying any of `tags`, in one of `collections`
        (each when given)."""
        ...

    def add_key(self, key: ApiKey, key_sha256: str) -> None:
        """Conflict when a key of that name exists (revoked ones included)."""
        ...

    def key_by_hash(self, key_sha256: str) -> ApiKey | None:
        """The key with this hash, unless revoked."""
        ...

    def list_keys(self) -> list[ApiKey]: ...

    def revoke_key(self, name: str) -> bool:
        """False when no such key is active."""
        ...

    def searchable_chunks(self, ids: list[int]) -> dict[int, Chunk]:
        """The chunks among `ids` whose document is indexed (deleted or re-processing ones drop out)."""
        ...


def open_store(settings: StorageSettings, clock: Clock = time.time) -> Store:
    """The store `settings.backend` names; nothing is opened until it is first used."""
    match settings.backend:
        case "sqlite":
            from app.sqlite_store import SQLiteStore

            return SQLiteStore(settings.database_path, clock)
        case "postgres":
            from app.postgres_store import PostgresStore

            return PostgresStore(settings.database_url, clock)
