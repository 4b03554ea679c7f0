"""Prometheus metrics of the API, served at GET /metrics (the worker serves its own: ingest/metrics.py).

Counted as things happen: requests by route, answers by outcome, the stages of each answer, generated tokens.
Read from the store and the index at each scrape: queue depth, documents by status, index size and generation,
the workers' heartbeats."""

from __future__ import annotations

import time
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from app.answering import Answer
from app.index import SearchIndex
from app.prompt import NO_ANSWER
from app.store import Store

# Seconds: from a cached search (milliseconds) to a long answer on a slow CPU.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32)


class ApiMetrics:
    def __init__(self, store: Store, index: SearchIndex) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "docqa_http_requests", "HTTP requests by route and status", ["method", "route", "status"],
            registry=self.registry,
        )  # fmt: skip
        self.request_seconds = Histogram(
            "docqa_http_request_duration_seconds", "Time to the response's start (streams go on after it)",
            ["method", "route"], buckets=LATENCY_BUCKETS, registry=self.registry,
        )  # fmt: skip
        self.stage_seconds = Histogram(
            "docqa_answer_stage_duration_seconds", "Each stage of an answer: embed, search, fuse, rerank, generate, "
            "verify", ["stage"], buckets=LATENCY_BUCKETS, registry=self.registry,
        )  # fmt: skip
        self.answers = Counter(
            "docqa_answers", "Answers by outcome: answered (verified), declined, unverified (not backed by its "
            "blocks: replaced by a quote or the refusal, or kept with answer.verify off)", ["outcome"],
            registry=self.registry,
        )  # fmt: skip
        self.generated_tokens = Counter(
            "docqa_generated_tokens", "Generated stream pieces: tokens (llama-cpp, openai), words (transformers)",
            registry=self.registry,
        )  # fmt: skip
        self.generation_seconds = Counter(
            "docqa_generation_seconds", "Time spent generating; tokens/s = rate(tokens) / rate(this)",
            registry=self.registry,
        )  # fmt: skip
        self.registry.register(_StoreAndIndex(store, index))

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.request_seconds.labels(method, route).observe(seconds)

    def observe_answer(self, answer: Answer, generated_tokens: int) -> None:
        for stage, ms in answer.timings_ms.items():
            self.stage_seconds.labels(stage).observe(ms / 1000)
        if "generate" in answer.timings_ms:
            self.generated_tokens.inc(generated_tokens)
            self.generation_seconds.inc(answer.timings_ms["generate"] / 1000)
        outcome = "unverified" if not answer.verified else "declined" if answer.text == NO_ANSWER else "answered"
        self.answers.labels(outcome).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _StoreAndIndex(Collector):
    def __init__(self, store: Store, index: SearchIndex) -> None:
        self.store = store
        self.index = index

    def collect(self) -> Iterator[GaugeMetricFamily]:
        queued = self.store.jobs.pending()
        yield GaugeMetricFamily("docqa_queue_jobs", "Ingest and prune jobs queued or running", queued)
        documents = GaugeMetricFamily("docqa_documents", "Documents by status", labels=["status"])
        for status, count in sorted(self.store.document_counts().items()):
            documents.add_metric([status], count)
        yield documents
        snapshot = self.index.current()
        yield GaugeMetricFamily("docqa_index_chunks", "Chunks in the served index", snapshot.size if snapshot else 0)
        generation = snapshot.generation if snapshot else 0
        yield GaugeMetricFamily("docqa_index_generation", "The served index generation (0: none yet)", generation)
        workers = self.store.workers()
        if workers:
            yield GaugeMetricFamily(
                "docqa_worker_heartbeat_age_seconds", "Since the last heartbeat of any worker",
                time.time() - workers[0].heartbeat_at,
            )  # fmt: skip
