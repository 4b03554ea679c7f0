"""Streamed answers (Server-Sent Events from POST /ask) and the OpenAI-compatible API, through real processes."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
from openai import OpenAI

from tests.e2e.conftest import RunningService, wait_for_status, wait_until

NO_ANSWER = "The documents do not contain the answer."
WARRANTY_POLICY_MD = b"""# Warranty Policy

## Laptops

Laptops are covered by the warranty for 3 years from the delivery date.

## Phones

Phones are covered by the warranty for 2 years from the delivery date.
"""
# Catches a follow-up about phones that lost its topic (warranty) on the way to retrieval.
RECYCLING_POLICY_MD = b"""# Recycling Policy

## Phones

Old phones can be dropped off for recycling at the front desk.
"""


@pytest.fixture(scope="module")
def documents(client: httpx.Client) -> dict[str, str]:
    files = [
        ("files", ("warranty_policy.md", WARRANTY_POLICY_MD)),
        ("files", ("recycling_policy.md", RECYCLING_POLICY_MD)),
    ]
    response = client.post("/documents", files=files)
    assert response.status_code == 202, response.text
    uploaded = response.json()["documents"]
    for doc in uploaded:
        assert wait_for_status(client, doc["id"], {"indexed", "failed"})["status"] == "indexed"
    return {d["filename"]: d["id"] for d in uploaded}


@pytest.fixture(scope="module")
def openai_client(service: RunningService) -> Iterator[OpenAI]:
    with OpenAI(base_url=f"{service.url}/v1", api_key="unused", timeout=120, max_retries=0) as client:
        yield client


def sse_events(lines: Iterator[str]) -> Iterator[tuple[str, dict]]:
    """(event, data) pairs of a text/event-stream."""
    event = "message"
    for line in lines:
        if line.startswith("event: "):
            event = line.removeprefix("event: ")
        elif line.startswith("data: "):
            yield event, json.loads(line.removeprefix("data: "))
            event = "message"


def ask_streaming(client: httpx.Client, question: str) -> list[tuple[str, dict]]:
    with client.stream("POST", "/ask", json={"question": question, "stream": True}) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        return list(sse_events(response.iter_lines()))


def test_ask_streams_tokens_then_the_whole_answer(client: httpx.Client, documents: dict[str, str]) -> None:
    events = ask_streaming(client, "How long is the warranty for laptops?")
    *tokens, (last, done) = events
    assert last == "done"
    assert len(tokens) > 3 and {name for name, _ in tokens} == {"token"}
    assert "".join(data["text"] for _, data in tokens) == done["answer"]
    assert "3" in done["answer"]
    first = done["citations"][0]
    assert (first["document_id"], first["section"]) == (documents["warranty_policy.md"], "Warranty Policy > Laptops")
    assert done["timings_ms"]["generate"] > 0


def test_a_streamed_question_without_an_answer_is_one_token_and_done(
    client: httpx.Client, documents: dict[str, str]
) -> None:
    events = ask_streaming(client, "Which planet in the solar system has the most moons?")
    assert events[0] == ("token", {"text": NO_ANSWER})
    assert events[1][0] == "done" and len(events) == 2
    assert (events[1][1]["answer"], events[1][1]["citations"]) == (NO_ANSWER, [])


def test_an_invalid_streamed_question_gets_422_json(client: httpx.Client) -> None:
    response = client.post("/ask", json={"question": "  ", "stream": True})
    assert response.status_code == 422
    assert "empty" in response.json()["detail"]


def test_a_client_that_goes_away_stops_the_generation(
    service: RunningService, client: httpx.Client, documents: dict[str, str]
) -> None:
    stopped_before = service.log("api").count("generation stopped")
    with client.stream("POST", "/ask", json={"question": "How long is the warranty for phones?", "stream": True}) as r:
        next(event for event, _ in sse_events(r.iter_lines()) if event == "token")
    wait_until(lambda: service.log("api").count("generation stopped") > stopped_before, 30, "the generation to stop")


def test_openai_client_lists_the_model(openai_client: OpenAI) -> None:
    assert [model.id for model in openai_client.models.list()] == ["docqa", "reader"]


def test_openai_client_gets_an_answer_with_sources(openai_client: OpenAI, documents: dict[str, str]) -> None:
    response = openai_client.chat.completions.create(
        model="docqa",
        messages=[{"role": "user", "content": "How long is the warranty for phones?"}],
        temperature=0.3,  # accepted and ignored, like OpenAI's other parameters
    )
    content = response.choices[0].message.content
    assert "2" in content
    sources = content[content.index("Sources:") :].splitlines()
    assert sources[1] == "[1] warranty_policy.md — Warranty Policy > Phones"
    assert "2 years" in sources[2]  # the evidence quote of the cited block, under it
    citations = response.model_extra["citations"]
    assert citations[0]["document_id"] == documents["warranty_policy.md"]


def test_openai_client_streams_an_answer(openai_client: OpenAI, documents: dict[str, str]) -> None:
    chunks = list(
        openai_client.chat.completions.create(
            model="docqa",
            messages=[{"role": "user", "content": "How long is the warranty for laptops?"}],
            stream=True,
        )
    )
    content = "".join(chunk.choices[0].delta.content or "" for chunk in chunks)
    assert "3" in content and "Sources:\n[1] warranty_policy.md" in content
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert chunks[-1].model_extra["citations"][0]["document_id"] == documents["warranty_policy.md"]


def test_a_follow_up_question_is_searched_with_the_earlier_one(
    openai_client: OpenAI, documents: dict[str, str]
) -> None:
    def first_cited(messages: list[dict[str, str]]) -> str | None:
        response = openai_client.chat.completions.create(model="docqa", messages=messages)
        citations = response.model_extra["citations"]
        return citations[0]["document_id"] if citations else None

    follow_up = {"role": "user", "content": "And for phones?"}
    # Alone, the follow-up has lost its topic: the warranty policy is not what it finds.
    assert first_cited([follow_up]) != documents["warranty_policy.md"]
    conversation = [
        {"role": "user", "content": "How long is the warranty for laptops?"},
        {"role": "assistant", "content": "The warranty for laptops is 3 years [1]."},
        follow_up,
    ]
    assert first_cited(conversation) == documents["warranty_policy.md"]


def test_openai_errors_come_in_openai_shape(service: RunningService) -> None:
    response = httpx.post(f"{service.url}/v1/chat/completions", json={"messages": []})
    assert response.status_code == 422
    assert response.json()["error"]["type"] == "invalid_request_error"
    response = httpx.post(
        f"{service.url}/v1/chat/completions", json={"messages": [{"role": "assistant", "content": "Hello"}]}
    )
    assert response.status_code == 422
    assert "user" in response.json()["error"]["message"]
