"""An OpenAI-compatible face for the same answering path: GET /v1/models and POST /v1/chat/completions."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any, Literal

from fastapi import APIRouter, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field

from app.answering import Answer, Answerer, AnswerStream, clean_question, standalone_question
from app.api.deps import NEEDS_READ, AnswererDep, ReadAccess, SettingsDep
from app.api.schemas import Citation
from app.api.sse import answer_events, sse_event, sse_response
from app.errors import InvalidRequest, RagError, describe_validation_errors
from app.retrieval import Filters

log = logging.getLogger(__name__)

MODEL_ID = "docqa"
STARTED = int(time.time())


class OpenAIErrors(APIRoute):
    """Errors of these routes in OpenAI's shape, `{"error": {"message", "type", "code"}}`, which its
    clients turn into readable exceptions."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def with_openai_errors(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError as exc:
                return _error(422, describe_validation_errors(exc.errors()))
            except RagError as exc:
                return _error(exc.status_code, str(exc))

        return with_openai_errors


router = APIRouter(prefix="/v1", tags=["openai"], route_class=OpenAIErrors)


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str
    generator: str = Field(description="The configured generator model behind this id")


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class ContentPart(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: str
    text: str | None = None


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")
    role: str
    content: str | list[ContentPart] | None = None

    @property
    def text(self) -> str:
        if isinstance(self.content, list):
            return " ".join(part.text for part in self.content if part.type == "text" and part.text)
        return self.content or ""


class ChatRequest(BaseModel):
    # OpenAI's other parameters (temperature, max_tokens, n, ...) are accepted and ignored.
    model_config = ConfigDict(extra="ignore")
    model: str = Field(
        MODEL_ID, description="An adapter's name answers with that adapter; any other name with the default model"
    )
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class Choice(BaseModel):
    index: int = 0
    message: AssistantMessage
    finish_reason: Literal["stop"] = "stop"


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    citations: list[Citation] = Field(description="Not in OpenAI's API: the sources, as in POST /ask")


@router.get(
    "/models",
    response_model=ModelList,
    dependencies=[NEEDS_READ],
    summary="The configured generator over your documents, then one per adapter",
)
def list_models(settings: SettingsDep) -> ModelList:
    generator = settings.generator
    cards = [ModelCard(id=MODEL_ID, created=STARTED, owned_by="docqa", generator=generator.model)]
    for name in generator.adapters:
        cards.append(ModelCard(id=name, created=STARTED, owned_by="docqa", generator=f"{generator.model}+{name}"))
    return ModelList(data=cards)


@router.post(
    "/chat/completions",
    response_model=ChatCompletion,
    responses={200: {"content": {"text/event-stream": {}}, "description": "With `stream: true`: OpenAI's chunks"}},
    summary="OpenAI-compatible chat completion, answered from the indexed documents",
)
def chat_completions(
    request: ChatRequest, http_request: Request, answerer: AnswererDep, settings: SettingsDep, access: ReadAccess
) -> ChatCompletion | StreamingResponse:
    """The last message is the question (it must be the user's); earlier user messages make a
    follow-up standalone: the last two are put before it, for retrieval and for the generator.
    System and assistant messages are not used (the grounded prompt is the service's own).

    Sources come twice: a "Sources:" block appended to the answer text (`[1] filename — section, p. 3`),
    readable in any chat client, and the structured `citations` (as in POST /ask) as an extra
    top-level field of the response, or of the last chunk when streaming."""
    *earlier, last = request.messages
    if last.role != "user":
        raise InvalidRequest("the last message must be the user's question")
    question = clean_question(last.text, settings.server.max_question_chars)
    question = standalone_question(question, [m.text for m in earlier if m.role == "user"])
    top_k = settings.retrieval.top_k
    # A model named after an adapter answers with it; "docqa" and any other name with the default.
    adapter = request.model if request.model in answerer.generator.adapters else None
    head = {"id": f"chatcmpl-{uuid.uuid4().hex}", "created": int(time.time()), "model": adapter or MODEL_ID}
    filters = Filters(collections=access.visible(None))  # every collection the key sees
    if request.stream:
        return sse_response(_chunks(http_request, answerer, question, top_k, filters, adapter, head))
    answer = answerer.answer(question, top_k, filters, adapter)
    return ChatCompletion(
        **head,
        choices=[Choice(message=AssistantMessage(content=answer.text + sources_block(answer)))],
        citations=Citation.all_of(answer),
    )


def sources_block(answer: Answer) -> str:
    """`[n] filename — section, p. N`, and under each cited block its evidence quote."""
    lines = []
    for n, found in enumerate(answer.citations, start=1):
        chunk = found.chunk
        where = [part for part in (chunk.section, "" if chunk.page is None else f"p. {chunk.page}") if part]
        lines.append(f"[{n}] {chunk.filename}" + (f" — {', '.join(where)}" if where else ""))
        if n in answer.quotes:
            lines.append(f'    "{answer.quotes[n].text}"')
    return "\n\nSources:\n" + "\n".join(lines) if lines else ""


class ChunkEvents:
    """A streamed answer as OpenAI's chunks; the sources, the citations and the end come with the answer."""

    def __init__(self, head: dict[str, Any]) -> None:
        self.head = head

    def chunk(self, delta: dict[str, str], finish_reason: str | None = None, **extra: object) -> str:
        choice = {"index": 0, "delta": delta, "finish_reason": finish_reason}
        return sse_event({**self.head, "object": "chat.completion.chunk", "choices": [choice], **extra})

    def token(self, text: str) -> str:
        return self.chunk({"content": text})

    def done(self, answer: Answer) -> str:
        events = []
        if answer.generated is not None:  # the streamed text failed verification: say what replaces it
            events.append(self.chunk({"content": f"\n\nNot backed by the documents; instead: {answer.text}"}))
        if answer.citations:
            events.append(self.chunk({"content": sources_block(answer)}))
        citations = [citation.model_dump() for citation in Citation.all_of(answer)]
        events.append(self.chunk({}, "stop", citations=citations))
        return "".join(events)

    def error(self, detail: str) -> str:
        return sse_event({"error": {"message": detail, "type": "server_error", "code": None}})


async def _chunks(
    http_request: Request,
    answerer: Answerer,
    question: str,
    top_k: int,
    filters: Filters,
    adapter: str | None,
    head: dict[str, Any],
) -> AsyncIterator[str]:
    def start(stop: threading.Event) -> AnswerStream:
        return answerer.stream(question, top_k, filters, stop, adapter)

    events = ChunkEvents(head)
    yield events.chunk({"role": "assistant", "content": ""})
    async for event in answer_events(http_request, start, events):
        yield event
    yield sse_event("[DONE]")


def _error(status: int, message: str) -> JSONResponse:
    kind = "invalid_request_error" if status < 500 else "server_error"
    return JSONResponse(status_code=status, content={"error": {"message": message, "type": kind, "code": None}})
