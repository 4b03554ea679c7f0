"""Ask a question; get a grounded answer with its sources."""

from __future__ import annotations

from fastapi import APIRouter

from app.api.deps import AnswererDep, SettingsDep
from app.api.schemas import AskRequest, AskResponse, Citation, ErrorResponse
from app.errors import InvalidRequest
from app.retrieval import Filters

router = APIRouter(tags=["ask"])


@router.post(
    "/ask",
    response_model=AskResponse,
    responses={422: {"model": ErrorResponse}, 503: {"model": ErrorResponse}},
    summary="Answer a question from the indexed documents, with citations",
)
def ask(request: AskRequest, answerer: AnswererDep, settings: SettingsDep) -> AskResponse:
    question = request.question.strip()
    max_chars, max_top_k = settings.server.max_question_chars, settings.retrieval.max_top_k
    if not question:
        raise InvalidRequest("the question is empty")
    if len(question) > max_chars:
        raise InvalidRequest(f"the question is longer than {max_chars} characters")
    top_k = request.top_k or settings.retrieval.top_k
    if top_k > max_top_k:
        raise InvalidRequest(f"top_k must be at most {max_top_k}")
    filters = Filters(document_ids=request.document_ids, tags=request.tags)
    answer = answerer.answer(question, top_k, filters)
    citations = [
        Citation(
            document_id=found.chunk.document_id,
            filename=found.chunk.filename,
            section=found.chunk.section,
            text=found.chunk.text,
            score=round(found.score, 4),
        )
        for found in answer.citations
    ]
    return AskResponse(answer=answer.text, citations=citations, timings_ms=answer.timings_ms)
