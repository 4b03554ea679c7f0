"""Ask a question; get a grounded answer with its sources, whole or streamed as Server-Sent Events."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from app.answering import Answer, Answerer, AnswerStream, clean_question
from app.api.deps import AUTH_ERRORS, AnswererDep, ReadAccess, SettingsDep
from app.api.schemas import AskRequest, AskResponse, Citation, ErrorResponse
from app.api.sse import answer_events, sse_event, sse_response
from app.errors import InvalidRequest
from app.retrieval import Filters

router = APIRouter(tags=["ask"])

STREAM_DESCRIPTION = """With `"stream": true`: `text/event-stream`, one `event: token` per generated piece
(`data: {"text": ...}`), then `event: done` with the same object as the JSON answer (its `answer` is the
verified one, which may replace the streamed text: see `verified`), or `event: error`
(`data: {"detail": ...}`) when answering fails after the stream started."""


@router.post(
    "/ask",
    response_model=AskResponse,
    responses={
        **AUTH_ERRORS,
        200: {"content": {"text/event-stream": {}}, "description": STREAM_DESCRIPTION},
        404: {"model": ErrorResponse, "description": "Unknown adapter"},
        422: {"model": ErrorResponse},
        503: {"model": ErrorResponse},
    },
    summary="Answer a question from the indexed documents, with citations",
)
def ask(
    request: AskRequest, http_request: Request, answerer: AnswererDep, settings: SettingsDep, access: ReadAccess
) -> AskResponse | StreamingResponse:
    question = clean_question(request.question, settings.server.max_question_chars)
    top_k = request.top_k or settings.retrieval.top_k
    if top_k > settings.retrieval.max_top_k:
        raise InvalidRequest(f"top_k must be at most {settings.retrieval.max_top_k}")
    filters = Filters(request.document_ids, request.tags, access.visible(request.collections))
    answerer.check_adapter(request.adapter)
    if request.stream:
        return sse_response(_events(http_request, answerer, question, top_k, filters, request.adapter))
    return _response(answerer.answer(question, top_k, filters, request.adapter))


def _response(answer: Answer) -> AskResponse:
    return AskResponse(
        answer=answer.text, verified=answer.verified, citations=Citation.all_of(answer), timings_ms=answer.timings_ms
    )


class AskEvents:
    def token(self, text: str) -> str:
        return sse_event({"text": text}, "token")

    def done(self, answer: Answer) -> str:
        return sse_event(_response(answer).model_dump(), "done")

    def error(self, detail: str) -> str:
        return sse_event({"detail": detail}, "error")


def _events(
    http_request: Request, answerer: Answerer, question: str, top_k: int, filters: Filters, adapter: str | None
) -> AsyncIterator[str]:
    def start(stop: threading.Event) -> AnswerStream:
        return answerer.stream(question, top_k, filters, stop, adapter)

    return answer_events(http_request, start, AskEvents())
