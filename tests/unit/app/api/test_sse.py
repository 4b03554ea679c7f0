"""The SSE answer stream on its own: a client that goes away stops the generation, a failure is an event."""

from __future__ import annotations

import inspect
import threading
from collections.abc import Iterator

import anyio

from app.answering import Answer, AnswerStream
from app.api.sse import answer_events, sse_event
from app.errors import GeneratorBusy


class ClientGoneAfter:
    """Stands in for the request: the client disconnects after `checks` looks."""

    def __init__(self, checks: int) -> None:
        self.checks = checks

    async def is_disconnected(self) -> bool:
        self.checks -= 1
        return self.checks < 0


class Spelling:
    def token(self, text: str) -> str:
        return f"token:{text}"

    def done(self, answer: Answer) -> str:
        return f"done:{answer.text}"

    def error(self, detail: str) -> str:
        return f"error:{detail}"


def collect(request: object, start: object) -> list[str]:
    async def run() -> list[str]:
        return [event async for event in answer_events(request, start, Spelling())]

    return anyio.run(run)


def test_a_client_that_goes_away_stops_and_closes_the_generation() -> None:
    seen: dict[str, object] = {}

    def start(stop: threading.Event) -> AnswerStream:
        def tokens() -> Iterator[str]:
            for i in range(1000):
                if stop.is_set():
                    return
                yield f"t{i} "

        seen["stop"], seen["tokens"] = stop, tokens()
        return AnswerStream([], seen["tokens"], lambda text: Answer(text, []))

    events = collect(ClientGoneAfter(3), start)
    assert events == ["token:t0 ", "token:t1 ", "token:t2 "]  # no `done`: nobody is listening
    assert seen["stop"].is_set() and inspect.getgeneratorstate(seen["tokens"]) == inspect.GEN_CLOSED


def test_the_whole_answer_ends_the_stream_and_a_failure_becomes_an_error_event() -> None:
    def answered(stop: threading.Event) -> AnswerStream:
        return AnswerStream([], iter(["Within ", "30 days."]), lambda text: Answer(text.upper(), []))

    assert collect(ClientGoneAfter(99), answered) == ["token:Within ", "token:30 days.", "done:WITHIN 30 DAYS."]

    def busy(stop: threading.Event) -> AnswerStream:
        raise GeneratorBusy("busy; retry later")

    def broken(stop: threading.Event) -> AnswerStream:
        return AnswerStream([], iter(["a"]), lambda text: 1 / 0)

    assert collect(ClientGoneAfter(99), busy) == ["error:busy; retry later"]
    assert collect(ClientGoneAfter(99), broken) == ["token:a", "error:answering failed; see the server log"]


def test_an_event_is_one_line_of_json_after_its_name() -> None:
    assert sse_event({"text": "é"}, "token") == 'event: token\ndata: {"text": "é"}\n\n'
    assert sse_event("[DONE]") == "data: [DONE]\n\n"
