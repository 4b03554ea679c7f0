"""The durable job queue beside the store: ingest a document, or prune deleted chunks from the index.

A job is claimed with a lease that its worker renews while it runs; a job whose lease ran out (its worker
died) is claimed again by the next worker that asks."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass

from app.database import Database

SCHEMA = """
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
"""

Clock = Callable[[], float]  # seconds since the epoch; time.time, or a test's own


@dataclass(frozen=True)
class Job:
    id: int
    kind: str  # "ingest" (document_id set) or "prune" (drop vectors of deleted chunks)
    document_id: str | None
    attempts: int


def enqueue(db: sqlite3.Connection, kind: str, document_id: str | None, now: float) -> None:
    """Queue a job inside the caller's transaction, so it exists exactly when the change that needs it does."""
    db.execute(
        "INSERT INTO jobs (kind, document_id, created_at, updated_at) VALUES (?, ?, ?, ?)",
        (kind, document_id, now, now),
    )


class JobQueue:
    def __init__(self, database: Database, clock: Clock = time.time) -> None:
        self.database = database
        self.clock = clock

    def claim_next(self, lease_seconds: float) -> Job | None:
        """Take the oldest queued job, or one whose worker stopped renewing its lease."""
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

    def renew_lease(self, job_id: int, lease_seconds: float) -> None:
        with self.database.transaction() as db:
            db.execute("UPDATE jobs SET lease_until = ? WHERE id = ?", (self.clock() + lease_seconds, job_id))

    def finish(self, job: Job, error: str | None = None) -> None:
        """Mark a job done (and its document indexed), or failed with a readable reason."""
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
