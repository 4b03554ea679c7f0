"""Server-Sent Events: the wire format, and a blocking iterator streamed that stops when the client goes."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from typing import TypeVar

import anyio
from fastapi import Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import iterate_in_threadpool

log = logging.getLogger(__name__)

T = TypeVar("T")


def sse_event(data: object, event: str | None = None) -> str:
    """One event; `data` is sent as one line of JSON (or as is when it is already a string)."""
    payload = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {payload}\n\n"


def sse_response(events: AsyncIterator[str]) -> StreamingResponse:
    # no-cache and X-Accel-Buffering: proxies (nginx) would otherwise hold the events back.
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(events, media_type="text/event-stream", headers=headers)


async def stream_in_thread(request: Request, start: Callable[[threading.Event], Iterator[T]]) -> AsyncIterator[T]:
    """Items of `start(stop)`, each fetched in a worker thread; `stop` is set once the client disconnects.

    Starlette cancels the response when it sees the disconnect first; either way `stop` is set, so the
    generation ends after its current token instead of running on for nobody."""
    stop = threading.Event()
    items = start(stop)
    try:
        async for item in iterate_in_threadpool(items):
            if await request.is_disconnected():
                log.info("the client disconnected; generation stopped")
                return
            yield item
    except (anyio.get_cancelled_exc_class(), GeneratorExit):
        log.info("the client disconnected; generation stopped")
        raise
    finally:
        stop.set()
        close = getattr(items, "close", None)
        if close is not None:
            # Shielded: after a cancellation the generator must still be closed, in a thread because
            # closing it waits for the generation thread to finish its current token.
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(close)
