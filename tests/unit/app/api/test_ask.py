"""POST /ask in-process: citations, abstention, filters, adapters, verification, validation and SSE framing."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient

from app.generation.fake import FakeGenerator
from app.prompt import NO_ANSWER

PASSWORDS = "How many characters must a password have?"


def events(response) -> list[tuple[str, dict]]:
    """(event, data) pairs of a text/event-stream body."""
    parsed = []
    for block in response.text.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines())
        parsed.append((fields.get("event", "message"), json.loads(fields["data"])))
    return parsed


def test_before_any_document_the_answer_says_so_without_citations(client: TestClient) -> None:
    body = client.post("/ask", json={"question": PASSWORDS}).json()
    assert body["answer"] == NO_ANSWER and body["citations"] == []
    assert "generate" not in body["timings_ms"]  # no generation is spent on it


def test_the_answer_holds_the_fact_and_cites_its_document_with_a_quote(client: TestClient, policies: dict) -> None:
    response = client.post("/ask", json={"question": PASSWORDS})
    assert response.status_code == 200 and response.headers["x-request-id"]
    body = response.json()
    assert "14 characters" in body["answer"] and body["verified"]
    cited = body["citations"][0]
    assert (cited["filename"], cited["document_id"], cited["section"]) == (
        "security.md",
        policies["security.md"],
        "Passwords",
    )
    assert "14 characters" in cited["quote"]["text"]
    assert cited["text"][cited["quote"]["start"] : cited["quote"]["end"]] == cited["quote"]["text"]
    assert {"embed", "search", "generate"} <= body["timings_ms"].keys()


def test_a_question_the_documents_do_not_answer_is_declined(client: TestClient, policies: dict) -> None:
    body = client.post("/ask", json={"question": "Which stock exchange lists the company's shares?"}).json()
    assert body["answer"] == NO_ANSWER and body["citations"] == []


def test_filters_restrict_the_search_to_documents_and_tags(client: TestClient, upload: Callable) -> None:
    ids = upload({"security.md": b"# Security\n\nPasswords must have 14 characters.\n"}, tags="it")
    upload({"old.md": b"# Old security\n\nPasswords must have 8 characters.\n"}, tags="archive")
    only_it = client.post("/ask", json={"question": PASSWORDS, "tags": ["it"]}).json()
    assert {c["filename"] for c in only_it["citations"]} == {"security.md"}
    archived = client.post("/ask", json={"question": PASSWORDS, "tags": ["archive"]}).json()
    assert "8 characters" in archived["answer"]
    by_id = client.post("/ask", json={"question": PASSWORDS, "document_ids": [ids["security.md"]]}).json()
    assert {c["filename"] for c in by_id["citations"]} == {"security.md"}


def test_a_deleted_document_is_never_cited_again(client: TestClient, policies: dict) -> None:
    client.delete(f"/documents/{policies['security.md']}")
    body = client.post("/ask", json={"question": PASSWORDS}).json()
    assert "security.md" not in {c["filename"] for c in body["citations"]}


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"question": "   "}, "the question is empty"),
        ({"question": "x" * 2001}, "longer than 2000 characters"),
        ({"question": PASSWORDS, "top_k": 21}, "top_k must be at most 20"),
        ({"question": PASSWORDS, "top_k": 0}, "top_k"),
        ({}, "body.question: Field required"),
    ],
)
def test_an_invalid_question_gets_a_readable_error(client: TestClient, payload: dict, message: str) -> None:
    response = client.post("/ask", json=payload)
    assert response.status_code in (400, 422), response.text
    assert message in response.json()["detail"]


def test_the_adapter_a_request_names_is_the_one_that_answers(
    client: TestClient, generator: FakeGenerator, policies: dict
) -> None:
    client.post("/ask", json={"question": PASSWORDS})
    assert generator.calls[-1][1] == "reader"  # the configured default
    unknown = client.post("/ask", json={"question": PASSWORDS, "adapter": "nope"})
    assert unknown.status_code == 404 and "the adapters are: reader" in unknown.json()["detail"]
    streamed = client.post("/ask", json={"question": PASSWORDS, "adapter": "nope", "stream": True})
    assert streamed.status_code == 404 and streamed.headers["content-type"].startswith("application/json")


def test_an_answer_its_blocks_do_not_back_is_replaced_by_a_quote(
    client: TestClient, generator: FakeGenerator, policies: dict
) -> None:
    generator.reply = lambda messages, adapter: "Passwords need 99 characters [1]."
    body = client.post("/ask", json={"question": PASSWORDS}).json()
    assert not body["verified"] and "99" not in body["answer"] and "14 characters" in body["answer"]


def test_a_stream_is_tokens_then_the_whole_answer(client: TestClient, policies: dict) -> None:
    response = client.post("/ask", json={"question": PASSWORDS, "stream": True})
    assert response.headers["content-type"].startswith("text/event-stream")
    *tokens, (kind, done) = events(response)
    assert kind == "done" and {name for name, _ in tokens} == {"token"} and len(tokens) > 3
    assert "".join(data["text"] for _, data in tokens) == done["answer"]
    assert done["verified"] and done["citations"][0]["filename"] == "security.md"


def test_a_streamed_replacement_comes_in_the_done_event(
    client: TestClient, generator: FakeGenerator, policies: dict
) -> None:
    generator.reply = lambda messages, adapter: "Passwords need 99 characters [1]."
    *tokens, (_, done) = events(client.post("/ask", json={"question": PASSWORDS, "stream": True}))
    assert "99" in "".join(data["text"] for _, data in tokens)
    assert not done["verified"] and "14 characters" in done["answer"]


def test_a_streamed_question_without_an_answer_is_one_token_and_done(client: TestClient) -> None:
    (token, done) = events(client.post("/ask", json={"question": PASSWORDS, "stream": True}))
    assert token == ("token", {"text": NO_ANSWER})
    assert done[0] == "done" and (done[1]["answer"], done[1]["citations"]) == (NO_ANSWER, [])


def test_a_failure_after_the_stream_started_is_an_error_event(
    client: TestClient, generator: FakeGenerator, policies: dict
) -> None:
    def broken(messages: list, adapter: str | None) -> str:
        raise RuntimeError("CUDA out of memory")

    generator.reply = broken
    assert events(client.post("/ask", json={"question": PASSWORDS, "stream": True})) == [
        ("error", {"detail": "answering failed; see the server log"})
    ]
