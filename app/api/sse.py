"""Server-Sent Events: the wire format, and a streamed answer that stops generating when the client goes."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import AsyncIterator, Callable
from typing import Protocol

import anyio
from fastapi import Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import iterate_in_threadpool

from app.answering import Answer, AnswerStream
from app.errors import RagError

log = logging.getLogger(__name__)


def sse_event(data: object, event: str | None = None) -> str:
    """One event; `data` is sent as one line of JSON (or as is when it is already a string)."""
    payload = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {payload}\n\n"


def sse_response(events: AsyncIterator[str]) -> StreamingResponse:
    # no-cache and X-Accel-Buffering: proxies (nginx) would otherwise hold the events back.
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(events, media_type="text/event-stream", headers=headers)


class AnswerEvents(Protocol):
    """How one API spells the events of a streamed answer."""

    def token(self, text: str) -> str: ...

    def done(self, answer: Answer) -> str: ...

    def error(self, detail: str) -> str: ...


async def answer_events(
    request: Request, start: Callable[[threading.Event], AnswerStream], spell: AnswerEvents
) -> AsyncIterator[str]:
    """`start(stop)` run in a worker thread, its pieces as they are generated, then its finished answer; a
    failure after the response began becomes an error event. `stop` is set once the client disconnects.

    Starlette cancels the response when it sees the disconnect first; either way `stop` is set, so the
    generation ends after its current token instead of running on for nobody."""
    stop = threading.Event()
    stream: AnswerStream | None = None
    try:
        stream = await anyio.to_thread.run_sync(start, stop)
        async for piece in iterate_in_threadpool(iter(stream)):
            if await request.is_disconnected():
                log.info("the client disconnected; generation stopped")
                return
            yield spell.token(piece)
        yield spell.done(await anyio.to_thread.run_sync(stream.finish))
    except (anyio.get_cancelled_exc_class(), GeneratorExit):
        log.info("the client disconnected; generation stopped")
        raise
    except RagError as exc:
        yield spell.error(str(exc))
    except Exception:
        log.exception("answering failed after the stream started")
        yield spell.error("answering failed; see the server log")
    finally:
        stop.set()
        if stream is not None:
            # Shielded: after a cancellation the generation must still be closed, in a thread because
            # closing it waits for the generation thread to finish its current token.
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(stream.close)
