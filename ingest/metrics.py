"""Prometheus metrics of the worker, served on ingest.metrics_host:ingest.metrics_port by `python -m ingest`."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server

from app.metrics import LATENCY_BUCKETS


class WorkerMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.documents = Counter(
            "docqa_worker_documents", "Documents finished, by outcome (indexed, failed)", ["outcome"],
            registry=self.registry,
        )  # fmt: skip
        self.chunks = Counter("docqa_worker_chunks", "Chunks embedded and stored", registry=self.registry)
        self.stage_seconds = Histogram(
            "docqa_worker_stage_duration_seconds", "parse (per document), embed and index (per batch)", ["stage"],
            buckets=LATENCY_BUCKETS, registry=self.registry,
        )  # fmt: skip
        self.batches = Counter("docqa_worker_batches", "Batches of jobs processed", registry=self.registry)

    def serve(self, host: str, port: int) -> None:
        """Serve /metrics from a background thread."""
        start_http_server(port, addr=host, registry=self.registry)
