"""generator.backend openai end to end: the API and worker processes answering through a real llama.cpp server
(llama-cpp-python[server]) that serves the packaged GGUF."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.config import GeneratorSettings
from app.generation.gguf import lora_to_gguf
from app.generation.openai_backend import OpenAIGenerator
from tests.e2e.conftest import REPO, RunningService, wait_for_status
from tests.llama_server import BASE_ALIAS, LlamaServer, packaged_gguf

QUESTION = "How many days do customers have to request a refund?"
REFUND_POLICY_MD = b"""# Refund Policy

## Eligibility

Customers can request a full refund within 30 days of purchase.
"""


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    """The base model, and the shipped reader adapter converted to GGUF (`python -m finetune gguf`) over it."""
    folder = tmp_path_factory.mktemp("llama")
    reader = folder / "reader.gguf"
    lora_to_gguf(REPO / "adapters" / "reader", packaged_gguf(), reader)
    server = LlamaServer(folder, {BASE_ALIAS: None, "reader": reader})
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def client(llama_server: LlamaServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    extra_env = {
        "RAG_GENERATOR__BACKEND": "openai",
        "RAG_GENERATOR__BASE_URL": llama_server.url,
        "RAG_GENERATOR__MODEL": BASE_ALIAS,
    }
    running = RunningService(tmp_path_factory.mktemp("openai-data"), extra_env=extra_env)
    running.start()
    try:
        with httpx.Client(base_url=running.url, timeout=120) as client:
            uploaded = client.post("/documents", files=[("files", ("refund_policy.md", REFUND_POLICY_MD))])
            doc_id = uploaded.json()["documents"][0]["id"]
            assert wait_for_status(client, doc_id, {"indexed", "failed"})["status"] == "indexed"
            yield client
    finally:
        running.stop()


def test_the_answer_comes_from_the_server_with_its_source(client: httpx.Client) -> None:
    assert client.get("/ready").json()["generator"] == BASE_ALIAS
    response = client.post("/ask", json={"question": QUESTION})
    assert response.status_code == 200, response.text
    answer = response.json()
    assert "30" in answer["answer"]
    assert answer["citations"][0]["filename"] == "refund_policy.md"


def test_the_server_streams_tokens_then_the_whole_answer(client: httpx.Client) -> None:
    with client.stream("POST", "/ask", json={"question": QUESTION, "stream": True}) as response:
        assert response.status_code == 200
        lines = list(response.iter_lines())
    events = [line.removeprefix("event: ") for line in lines if line.startswith("event: ")]
    data = [json.loads(line.removeprefix("data: ")) for line in lines if line.startswith("data: ")]
    assert events[-1] == "done" and len(events) > 3  # pieces as the server sends them, not one block
    done = data[-1]
    assert "30" in done["answer"] and done["citations"][0]["filename"] == "refund_policy.md"
    if done["verified"]:  # else the done event carries the replacement for the streamed text
        assert "".join(piece["text"] for piece in data[:-1]) == done["answer"]


def test_the_shipped_reader_answers_through_the_server_as_it_does_in_process(client: httpx.Client) -> None:
    """The reader's GGUF over the server: the short cited answer it was trained to give (in-process: test_adapters)."""
    (reader,) = client.get("/adapters").json()["adapters"]
    assert reader["served_as"] == "reader" and reader["path"] == str(REPO / "adapters" / "reader")
    base = client.post("/ask", json={"question": QUESTION}).json()
    tuned = client.post("/ask", json={"question": QUESTION, "adapter": "reader"}).json()
    assert "30 days" in tuned["answer"] and tuned["verified"] is True
    assert tuned["answer"] != base["answer"]
    assert client.post("/ask", json={"question": QUESTION, "adapter": "nope"}).status_code == 404


def test_the_openai_api_in_front_of_an_openai_server(client: httpx.Client) -> None:
    body = {"model": "docqa", "messages": [{"role": "user", "content": QUESTION}]}
    response = client.post("/v1/chat/completions", json=body)
    assert response.status_code == 200, response.text
    content = response.json()["choices"][0]["message"]["content"]
    assert "30" in content and "refund_policy.md" in content


def test_setting_stop_ends_the_stream_after_the_current_piece(llama_server: LlamaServer, tmp_path: Path) -> None:
    settings = GeneratorSettings(backend="openai", base_url=llama_server.url, model=BASE_ALIAS, max_sentences=0)
    generator = OpenAIGenerator(settings)
    messages = [{"role": "user", "content": "Count from 1 to 100, one number per line."}]
    stop = threading.Event()
    pieces = []
    for piece in generator.stream(messages, stop):
        pieces.append(piece)
        stop.set()
    assert len(pieces) == 1
    assert generator.unavailable() is None
    assert len(generator.generate(messages)) > 10  # the server answers the next request in full
