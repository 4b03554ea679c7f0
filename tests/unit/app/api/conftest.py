"""The API in-process: the real app, store and index over a temporary data dir, with the fake embedder and
generator, so that every route and rule is exercised in milliseconds. Parsing and chunking are the worker's
(tested in tests/unit/ingest and end to end); `index_queued` stands in for them with a paragraph split."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.components import Models
from app.config import Settings
from app.embedding.fake import FakeEmbedder
from app.generation.fake import FakeGenerator
from app.index import open_index_writer
from app.main import create_app
from app.service import Service
from app.store import NewChunk
from tests.documents import HOLIDAY_POLICY_TXT, SECURITY_POLICY_MD, TRAVEL_POLICY_HTML

HEADING = re.compile(r"^#+\s*(.+)$")
HTML_HEADING = re.compile(r"<h[1-6][^>]*>(.*?)</h[1-6]>", re.IGNORECASE | re.DOTALL)
TAG = re.compile(r"<[^>]+>")

POLICIES = {
    "security.md": SECURITY_POLICY_MD,
    "holidays.txt": HOLIDAY_POLICY_TXT,
    "travel.html": TRAVEL_POLICY_HTML,
}


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings().with_data_dir(tmp_path)


@pytest.fixture
def generator(settings: Settings) -> FakeGenerator:
    return FakeGenerator(settings.generator)


@pytest.fixture
def client(settings: Settings, generator: FakeGenerator) -> Iterator[TestClient]:
    app = create_app(settings, Models(embedder=FakeEmbedder(), generator=generator))
    with TestClient(app) as client:
        yield client


def service_of(client: TestClient) -> Service:
    return client.app.state.service


def index_queued(client: TestClient) -> None:
    """What the worker does, with a paragraph split for parsing: each queued document's paragraphs become
    chunks under their heading, then one index generation holds them."""
    service = service_of(client)
    store, settings, embedder = service.store, service.settings, FakeEmbedder()
    while (job := store.jobs.claim_next(lease_seconds=60)) is not None:
        if job.document_id is not None:
            doc = store.get_document(job.document_id)
            text = (settings.storage.uploads_dir / doc.sha256).read_text(encoding="utf-8", errors="replace")
            pieces = _paragraphs(TAG.sub("\n", HTML_HEADING.sub(r"\n\n# \1\n\n", text)))
            vectors = embedder.embed([f"{section}\n{body}" for section, body in pieces])
            pairs = enumerate(zip(pieces, vectors, strict=True))
            chunks = [NewChunk(i, section, body, vector) for i, ((section, body), vector) in pairs]
            store.replace_chunks(doc.id, chunks)
        store.jobs.finish(job)
    open_index_writer(settings, embedder.dim).sync(store)


def _paragraphs(text: str) -> list[tuple[str, str]]:
    section, pieces = "", []
    for block in re.split(r"\n\s*\n", text):
        block = block.strip()
        if not block:
            continue
        if match := HEADING.match(block):
            section = match.group(1)
        else:
            pieces.append((section, " ".join(block.split())))
    return pieces


@pytest.fixture
def upload(client: TestClient) -> Callable[..., dict[str, str]]:
    """Upload files through POST /documents and index them; their ids by filename."""

    def upload_and_index(files: dict[str, bytes], tags: str | None = None) -> dict[str, str]:
        parts = [("files", (name, content)) for name, content in files.items()]
        response = client.post("/documents", files=parts, data={"tags": tags} if tags else None)
        assert response.status_code == 202, response.text
        index_queued(client)
        return {doc["filename"]: doc["id"] for doc in response.json()["documents"]}

    return upload_and_index


@pytest.fixture
def policies(upload: Callable[..., dict[str, str]]) -> dict[str, str]:
    return upload(POLICIES)
