"""`python -m ingest`: run the ingestion worker until SIGINT or SIGTERM."""

from __future__ import annotations

import logging
import signal
import threading

from app.config import Settings
from app.embedding import build_embedder
from app.errors import ModelUnavailable
from app.logs import configure_logging
from app.store import open_store
from ingest.worker import Worker


def main() -> None:
    configure_logging()
    settings = Settings()
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    store = open_store(settings.storage)
    try:
        Worker(settings, store, build_embedder(settings.embedding)).run(stop)
    except ModelUnavailable as exc:  # a configuration to fix, not a bug: the message, without a traceback
        raise SystemExit(f"the worker cannot start: {exc}") from None
    finally:
        store.close()
        logging.getLogger(__name__).info("bye")


if __name__ == "__main__":
    main()
