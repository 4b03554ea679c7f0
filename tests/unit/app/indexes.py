"""A small corpus in a real SQLite store, indexed by the writer of one index backend (the index tests' helper)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from app.config import Settings
from app.index import IndexView, open_index, open_index_writer
from app.sqlite_store import SQLiteStore
from app.store import NewChunk


def unit(*values: float) -> np.ndarray:
    vector = np.asarray(values, dtype=np.float32)
    return vector / np.linalg.norm(vector)


class Corpus:
    def __init__(self, tmp_path: Path, backend: str = "faiss") -> None:
        settings = Settings().with_data_dir(tmp_path)
        self.settings = settings.model_copy(update={"index": settings.index.model_copy(update={"backend": backend})})
        self.store = SQLiteStore(self.settings.storage.database_path)
        self.index_dir = self.settings.storage.index_dir
        self.writer = open_index_writer(self.settings, 3)
        self.index = open_index(self.settings)
        self.documents = 0

    def add(self, *chunks: tuple[str, np.ndarray], name: str | None = None) -> str:
        """A document (a new version when `name` exists) with these chunks, stored as the worker would."""
        self.documents += 1
        name = name or f"doc{self.documents}.md"
        doc, _ = self.store.add_document(name, "md", f"sha-{self.documents}", 1)
        job = self.store.jobs.claim_next(60)
        assert job is not None
        self.store.replace_chunks(doc.id, [NewChunk(i, "", text, v) for i, (text, v) in enumerate(chunks)], job.version)
        self.store.jobs.finish(job)
        return doc.id

    def ids(self, document_id: str) -> list[int]:
        return self.store.newest_chunks([document_id])[document_id]

    def sync(self) -> int | None:
        return self.writer.sync(self.store)

    def current(self) -> IndexView:
        view = self.index.current()
        assert view is not None
        return view
