"""Request and response models of the HTTP API (they are what /docs shows)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from app.answering import Answer
from app.generation import AdapterInfo
from app.quotes import Quote
from app.retrieval import RetrievedChunk
from app.store import DEFAULT_COLLECTION, Document

DocumentStatus = Literal["queued", "processing", "indexed", "failed"]


class DocumentOut(BaseModel):
    id: str
    collection: str = Field(DEFAULT_COLLECTION, description="Set at upload; keys see only their collections")
    filename: str
    kind: str = Field(description="Document type judged from its content: pdf, docx, html, md, txt, ...")
    status: DocumentStatus
    size_bytes: int
    chunk_count: int
    error: str | None = Field(None, description="Why processing failed, when status is failed")
    tags: list[str] = Field(default_factory=list, description="Labels given at upload, usable as /ask filters")
    created_at: float = Field(description="Unix time of the first upload")
    updated_at: float
    indexed_at: float | None = None
    version: int = Field(1, description="The latest upload of this document, which the fields above describe")
    indexed_version: int | None = Field(
        None, description="The version that answers questions (an older one until the latest is indexed)"
    )

    @classmethod
    def of(cls, doc: Document) -> DocumentOut:
        return cls.model_validate(doc, from_attributes=True)


class VersionOut(BaseModel):
    version: int
    filename: str
    kind: str
    sha256: str
    size_bytes: int
    status: Literal["queued", "processing", "indexed", "failed", "replaced", "superseded"] = Field(
        description="replaced: a newer version was indexed after it; superseded: a newer one was uploaded "
        "before it was processed"
    )
    error: str | None = None
    created_at: float
    indexed_at: float | None = None


class DocumentDetail(DocumentOut):
    versions: list[VersionOut] = Field(description="Every upload of this document, the first first")


class UploadedFile(BaseModel):
    """One file of an upload: accepted (id and status set) or rejected (status and error say why)."""

    id: str | None = None
    filename: str
    collection: str | None = None
    status: DocumentStatus | Literal["rejected"]
    duplicate: bool = Field(False, description="The same bytes were uploaded before; nothing is re-processed")
    version: int | None = None
    new_version: bool = Field(
        False,
        description="A new version of the document with this name (or the id of PUT /documents/{id}): it "
        "replaces the one indexed before once it is indexed itself",
    )
    error: str | None = None
    error_status: int | None = Field(None, description="HTTP status this file alone would get: 413, 415, 422")
    attachment_of: str | None = Field(None, description="For a file attached to an uploaded e-mail: its document id")


class UploadResponse(BaseModel):
    documents: list[UploadedFile]


class DocumentList(BaseModel):
    documents: list[DocumentOut]


class AskRequest(BaseModel):
    question: str = Field(min_length=1, examples=["How many days do I have to ask for a refund?"])
    top_k: int | None = Field(None, ge=1, description="How many chunks to retrieve; default from config")
    document_ids: list[str] | None = Field(None, description="Only search these documents")
    tags: list[str] | None = Field(None, description="Only search documents carrying at least one of these tags")
    collections: list[str] | None = Field(
        None, description="Only search these collections (default: every one the key sees)"
    )
    stream: bool = Field(
        False,
        description="Answer as Server-Sent Events: `token` events with the text as it is generated, then `done` "
        "with the whole answer (or `error`)",
    )
    adapter: str | None = Field(
        None,
        description="Answer with this adapter (GET /adapters); default: generator.default_adapter, else the base model",
    )


class QuoteOut(BaseModel):
    text: str = Field(description="The sentence of the chunk that best supports the answer")
    start: int = Field(description="Offset of the quote in the citation's `text`: text[start:end] == quote")
    end: int


class Citation(BaseModel):
    document_id: str
    filename: str
    section: str = Field(description='Heading path of the chunk, e.g. "Refund Policy > Eligibility"')
    page: int | None = Field(None, description="The page the chunk starts on, in documents with pages (PDF)")
    text: str
    score: float = Field(description="Cosine similarity of question and chunk")
    quote: QuoteOut | None = Field(None, description="Evidence inside `text`, for the blocks the answer cites")

    @classmethod
    def of(cls, found: RetrievedChunk, quote: Quote | None = None) -> Citation:
        chunk = found.chunk
        return cls(
            document_id=chunk.document_id,
            filename=chunk.filename,
            section=chunk.section,
            page=chunk.page,
            text=chunk.text,
            score=round(found.score, 4),
            quote=QuoteOut(text=quote.text, start=quote.start, end=quote.end) if quote else None,
        )

    @classmethod
    def all_of(cls, answer: Answer) -> list[Citation]:
        return [cls.of(found, answer.quotes.get(n)) for n, found in enumerate(answer.citations, start=1)]


class AskResponse(BaseModel):
    answer: str
    verified: bool = Field(
        description="Whether the generated answer was backed by its cited blocks; when false, `answer` is the "
        "replacement answer.verify chose (a quote or the refusal), unless verification is off"
    )
    citations: list[Citation] = Field(description="The context blocks the answer was built from, as [1], [2]...")
    timings_ms: dict[str, float]


class AdapterOut(BaseModel):
    name: str
    path: Path
    card: dict[str, Any] | None = Field(description="The adapter_card.json training wrote beside the adapter, if any")
    default: bool = Field(description="Requests that name no adapter are answered with this one")
    served_as: str | None = Field(
        description="The model name the generator server is asked for (generator.backend openai); null in-process"
    )

    @classmethod
    def of(cls, adapter: AdapterInfo) -> AdapterOut:
        return cls.model_validate(adapter, from_attributes=True)


class AdapterList(BaseModel):
    adapters: list[AdapterOut]


class ErrorResponse(BaseModel):
    detail: str


class Health(BaseModel):
    status: Literal["ok"]


class WorkerOut(BaseModel):
    id: str = Field(description="host:pid of the worker process")
    started_at: float
    seconds_since_heartbeat: float


class Readiness(BaseModel):
    ready: bool = Field(description="questions can be answered (workers do not count: they ingest)")
    index_generation: int | None
    indexed_chunks: int
    generator: str | None
    error: str | None = None
    queued_jobs: int = Field(0, description="ingest and prune jobs queued or running")
    workers: list[WorkerOut] = Field([], description="workers that sent a heartbeat lately")
    seconds_since_worker_heartbeat: float | None = Field(
        None, description="since the last heartbeat of any worker; None if none ever ran on this data"
    )
