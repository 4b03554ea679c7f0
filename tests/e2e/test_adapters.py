"""Named adapters through real processes: GET /adapters, "adapter" in POST /ask, adapters as OpenAI models."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.config import StorageSettings
from app.generation import ADAPTER_CARD
from app.verification import drop_repeated_sentences
from tests.e2e.conftest import REPO, RunningService, wait_for_status
from tests.lora import random_lora

QUESTION = "How many days do customers have to request a refund?"
REFUND_POLICY_MD = b"""# Refund Policy

## Eligibility

Customers can request a full refund within 30 days of purchase.
"""
CARD = {"base_model": "packaged:SmolLM2-135M-Instruct", "data_sha256": "test", "metrics": {"f1": 0.5}}


@pytest.fixture(scope="module")
def adapter(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A LoRA adapter with random B weights (peft starts B at zero, which would change nothing), and its card."""
    folder = random_lora(REPO / StorageSettings().model_cache_dir, tmp_path_factory.mktemp("adapters") / "policies")
    (folder / ADAPTER_CARD).write_text(json.dumps(CARD))
    return folder


@pytest.fixture(scope="module")
def adapter_client(adapter: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    """A service of its own, started with the adapter configured, and the refund policy indexed."""
    extra_env = {
        "RAG_GENERATOR__ADAPTERS": json.dumps({"policies": str(adapter)}),
        "RAG_GENERATOR__MAX_NEW_TOKENS": "24",  # enough to tell the answers apart
        "RAG_ANSWER__VERIFY": "off",  # the random adapter's words are in no block: keep them, to compare
    }
    running = RunningService(tmp_path_factory.mktemp("adapter-data"), extra_env=extra_env)
    running.start()
    try:
        with httpx.Client(base_url=running.url, timeout=120) as client:
            uploaded = client.post("/documents", files=[("files", ("refund_policy.md", REFUND_POLICY_MD))])
            assert uploaded.status_code == 202, uploaded.text
            doc_id = uploaded.json()["documents"][0]["id"]
            assert wait_for_status(client, doc_id, {"indexed", "failed"})["status"] == "indexed"
            yield client
    finally:
        running.stop()


def ask(client: httpx.Client, **extra: object) -> dict:
    response = client.post("/ask", json={"question": QUESTION, **extra})
    assert response.status_code == 200, response.text
    return response.json()


def test_adapters_are_listed_with_their_cards(adapter_client: httpx.Client, adapter: Path) -> None:
    listed = {item["name"]: item for item in adapter_client.get("/adapters").json()["adapters"]}
    assert listed["policies"] == {
        "name": "policies",
        "path": str(adapter),
        "card": CARD,
        "default": False,
        "served_as": None,  # in-process
    }
    shipped = listed["reader"]  # the adapter this project trains and ships, with its card
    assert shipped["path"] == str(REPO / "adapters" / "reader")  # resolved against configs/default.yaml's folder
    assert shipped["card"]["base_model"] == "packaged:SmolLM2-135M-Instruct"
    assert shipped["card"]["steps"] > 0 and len(shipped["card"]["data_sha256"]) == 64
    models = [model["id"] for model in adapter_client.get("/v1/models").json()["data"]]
    assert models == ["docqa", "reader", "policies"]


def test_the_shipped_reader_adapter_answers_with_the_fact_and_its_quote(adapter_client: httpx.Client) -> None:
    answer = ask(adapter_client, adapter="reader")
    assert "30 days" in answer["answer"] and answer["verified"] is True
    cited = answer["citations"][0]
    assert cited["filename"] == "refund_policy.md"
    assert cited["text"][cited["quote"]["start"] : cited["quote"]["end"]] == cited["quote"]["text"]
    assert "30 days" in cited["quote"]["text"]


def test_the_adapter_named_in_a_request_changes_its_answer(adapter_client: httpx.Client) -> None:
    base, tuned = ask(adapter_client), ask(adapter_client, adapter="policies")
    assert "30" in base["answer"]
    assert tuned["answer"] != base["answer"]
    assert ask(adapter_client)["answer"] == base["answer"]  # the base model again, after the adapter ran

    with adapter_client.stream("POST", "/ask", json={"question": QUESTION, "adapter": "policies", "stream": True}) as r:
        assert r.status_code == 200
        lines = list(r.iter_lines())
    events = [line.removeprefix("event: ") for line in lines if line.startswith("event: ")]
    data = [json.loads(line.removeprefix("data: ")) for line in lines if line.startswith("data: ")]
    assert events[-1] == "done" and data[-1]["answer"] == tuned["answer"]
    # Pieces stream as generated; the answer drops a sentence the random adapter repeats ("1\n1\n...").
    assert drop_repeated_sentences("".join(piece["text"] for piece in data[:-1])) == tuned["answer"]


def test_an_openai_model_named_after_an_adapter_answers_with_it(adapter_client: httpx.Client) -> None:
    def chat(model: str) -> dict:
        body = {"model": model, "messages": [{"role": "user", "content": QUESTION}]}
        response = adapter_client.post("/v1/chat/completions", json=body)
        assert response.status_code == 200, response.text
        return response.json()

    tuned, base = chat("policies"), chat("docqa")
    assert tuned["model"] == "policies" and base["model"] == "docqa"
    assert tuned["choices"][0]["message"]["content"].startswith(ask(adapter_client, adapter="policies")["answer"])
    assert base["choices"][0]["message"]["content"].startswith(ask(adapter_client)["answer"])


def test_an_unknown_adapter_is_refused(adapter_client: httpx.Client) -> None:
    for stream in (False, True):
        response = adapter_client.post("/ask", json={"question": QUESTION, "adapter": "nope", "stream": stream})
        assert response.status_code == 404
        assert response.json() == {
            "detail": "unknown adapter 'nope'; the adapters are: reader, policies (GET /adapters)"
        }
