"""`python -m ingest`: run the ingestion worker until SIGINT or SIGTERM."""

from __future__ import annotations

import logging
import signal
import threading

from app.config import Settings
from app.embedding import build_embedder
from app.errors import ModelUnavailable
from app.index import separate_process_problem
from app.logs import configure_logging
from app.store import open_store
from ingest.metrics import WorkerMetrics
from ingest.worker import Worker

log = logging.getLogger(__name__)


def main() -> None:
    configure_logging()
    settings = Settings()
    if problem := separate_process_problem(settings):
        raise SystemExit(f"the worker cannot start: {problem}")
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    store = open_store(settings.storage)
    metrics = WorkerMetrics()
    if settings.ingest.metrics_port:
        try:
            metrics.serve(settings.ingest.metrics_host, settings.ingest.metrics_port)
        except OSError as exc:  # metrics are for operators: ingestion goes on without them
            log.warning(
                "no metrics endpoint: %s:%d: %s (set ingest.metrics_port, 0 for none)",
                settings.ingest.metrics_host, settings.ingest.metrics_port, exc,
            )  # fmt: skip
    try:
        Worker(settings, store, build_embedder(settings.embedding, settings.storage.model_cache_dir), metrics).run(stop)
    except ModelUnavailable as exc:  # a configuration to fix, not a bug: the message, without a traceback
        raise SystemExit(f"the worker cannot start: {exc}") from None
    finally:
        store.close()
        log.info("bye")


if __name__ == "__main__":
    main()
