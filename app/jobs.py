"""The durable job queue: ingest a document, or prune deleted chunks from the index.

A job is claimed with a lease that its worker renews while it runs; a job whose lease ran out (its worker
died) is claimed again by the next worker that asks."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

Clock = Callable[[], float]  # seconds since the epoch; time.time, or a test's own


@dataclass(frozen=True)
class Job:
    id: int
    kind: str  # "ingest" (document_id set) or "prune" (drop vectors of deleted chunks)
    document_id: str | None
    attempts: int
    version: int | None = None  # the document version an ingest job processes


class JobQueue(Protocol):
    def claim_next(self, lease_seconds: float) -> Job | None:
        """Take the oldest queued job, or one whose worker stopped renewing its lease."""
        ...

    def pending(self) -> int:
        """Jobs queued or running: the queue depth."""
        ...

    def renew_lease(self, job_id: int, lease_seconds: float) -> None: ...

    def finish(self, job: Job, error: str | None = None) -> None:
        """Mark a job done (and its document version indexed, replacing the one indexed before), or failed with
        a readable reason (an indexed earlier version goes on answering)."""
        ...
