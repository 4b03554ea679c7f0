"""/v1 in-process: OpenAI's shapes for models, completions, streamed chunks and errors; follow-ups; adapters."""

from __future__ import annotations

import json

from fastapi.testclient import TestClient

from app.answering import Answer
from app.api.routes.openai import sources_block
from app.generation.fake import FakeGenerator
from app.retrieval import RetrievedChunk
from app.store import Chunk

PASSWORDS = "How many characters must a password have?"


def chat(client: TestClient, *messages: tuple[str, str], **extra: object):
    payload = {"model": "docqa", "messages": [{"role": r, "content": c} for r, c in messages], **extra}
    return client.post("/v1/chat/completions", json=payload)


def test_the_models_are_docqa_then_one_per_adapter(client: TestClient) -> None:
    models = client.get("/v1/models").json()
    assert models["object"] == "list"
    assert [m["id"] for m in models["data"]] == ["docqa", "reader"]


def test_a_completion_has_the_answer_its_sources_and_the_citations(client: TestClient, policies: dict) -> None:
    body = chat(client, ("user", PASSWORDS)).json()
    assert body["object"] == "chat.completion" and body["model"] == "docqa"
    content = body["choices"][0]["message"]["content"]
    answer, sources = content.split("\n\nSources:\n")
    assert "14 characters" in answer
    assert sources.startswith("[1] security.md — Passwords") and '"Passwords must be at least 14' in sources
    assert body["citations"][0]["filename"] == "security.md"


def test_a_streamed_completion_is_openai_chunks_then_done(client: TestClient, policies: dict) -> None:
    response = chat(client, ("user", PASSWORDS), stream=True)
    payloads = [block.removeprefix("data: ") for block in response.text.strip().split("\n\n")]
    assert payloads[-1] == "[DONE]"
    chunks = [json.loads(payload) for payload in payloads[:-1]]
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert {chunk["object"] for chunk in chunks} == {"chat.completion.chunk"}
    text = "".join(chunk["choices"][0]["delta"].get("content", "") for chunk in chunks)
    assert "14 characters" in text and "Sources:\n[1] security.md" in text
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop" and chunks[-1]["citations"]


def test_a_follow_up_is_searched_and_asked_with_the_earlier_question(
    client: TestClient, generator: FakeGenerator, policies: dict
) -> None:
    body = chat(client, ("user", PASSWORDS), ("assistant", "14 characters."), ("user", "And how often changed?")).json()
    prompt = generator.calls[-1][0][-1]["content"]
    assert f"{PASSWORDS} And how often changed?" in prompt
    assert body["citations"][0]["filename"] == "security.md"


def test_a_model_named_after_an_adapter_answers_with_it(
    client: TestClient, generator: FakeGenerator, policies: dict
) -> None:
    payload = {"model": "reader", "messages": [{"role": "user", "content": PASSWORDS}]}
    assert client.post("/v1/chat/completions", json=payload).json()["model"] == "reader"
    assert generator.calls[-1][1] == "reader"


def test_errors_come_in_openai_shape(client: TestClient) -> None:
    not_user = chat(client, ("assistant", "Hello"))
    assert not_user.status_code == 422
    assert not_user.json()["error"]["message"] == "the last message must be the user's question"
    invalid = client.post("/v1/chat/completions", json={"messages": []})
    assert invalid.status_code == 422
    error = invalid.json()["error"]
    assert error["type"] == "invalid_request_error" and "messages" in error["message"]


def test_the_sources_block_names_section_and_page_where_a_document_has_pages() -> None:
    def cited(section: str, page: int | None) -> RetrievedChunk:
        return RetrievedChunk(Chunk(1, "d", "travel.pdf", 0, section, "Hotels cost 150 euros.", page), 0.8)

    answer = Answer("150 euros [1].", [cited("Travel > Hotels", 2), cited("", 3), cited("", None)])
    assert sources_block(answer).split("Sources:\n")[1].splitlines() == [
        "[1] travel.pdf — Travel > Hotels, p. 2",
        "[2] travel.pdf — p. 3",
        "[3] travel.pdf",
    ]
