"""generator.backend openai when its server is down: the real OpenAI client against a port nobody listens on.
Answers through a real server (llama.cpp's) are tested end to end in tests/e2e/test_openai_backend.py."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from app.components import Models
from app.config import Settings
from app.embedding.fake import FakeEmbedder
from app.errors import ModelUnavailable
from app.generation import build_generator
from app.main import create_app


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again when this returns: nothing listens there


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    """The conftest's client (its fixtures upload through this one), with a generator whose server is down."""
    down = settings.generator.model_copy(
        update={"backend": "openai", "base_url": f"http://127.0.0.1:{closed_port()}/v1", "max_retries": 0}
    )
    settings = settings.model_copy(update={"generator": down})
    generator = build_generator(settings.generator, settings.storage.model_cache_dir)
    app = create_app(settings, Models(embedder=FakeEmbedder(), generator=generator))
    with TestClient(app) as client:
        yield client


def test_a_server_that_is_down_makes_ask_and_ready_503_with_what_to_do(client: TestClient, policies: dict) -> None:
    ask = client.post("/ask", json={"question": "How long must passwords be?"})
    assert ask.status_code == 503
    assert "cannot reach the generator server at http://127.0.0.1:" in ask.json()["detail"]
    assert "generator.base_url" in ask.json()["detail"]
    ready = client.get("/ready")
    assert ready.status_code == 503 and "cannot reach" in ready.json()["error"]
    assert client.get("/health").status_code == 200


def test_a_stream_from_a_server_that_is_down_ends_with_an_error_event(client: TestClient, policies: dict) -> None:
    with client.stream("POST", "/ask", json={"question": "How long must passwords be?", "stream": True}) as r:
        body = r.read().decode()
    assert "event: error" in body and "cannot reach the generator server" in body


def test_the_adapters_say_which_model_the_server_is_asked_for(client: TestClient) -> None:
    (reader,) = client.get("/adapters").json()["adapters"]
    assert reader["name"] == "reader" and reader["served_as"] == "reader"


def test_the_openai_backend_needs_a_base_url(settings: Settings) -> None:
    with pytest.raises(ModelUnavailable, match="generator.base_url is not set"):
        build_generator(settings.generator.model_copy(update={"backend": "openai"}), settings.storage.model_cache_dir)
