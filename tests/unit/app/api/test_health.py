"""/health, /ready, /adapters, the chat page and the OpenAPI schema, in-process."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from fastapi.testclient import TestClient

from app.config import Settings
from app.errors import GeneratorBusy
from app.generation.fake import FakeGenerator
from app.main import create_app
from app.store import open_store
from tests.unit.app.api.conftest import service_of


def test_health_ready_and_the_index_it_serves(client: TestClient, policies: dict) -> None:
    assert client.get("/health").json() == {"status": "ok"}
    ready = client.get("/ready").json()
    assert ready["ready"] and ready["generator"] == "fake+reader"
    assert ready["index_generation"] == 1 and ready["indexed_chunks"] > 0


def test_models_that_fail_to_load_make_ready_and_ask_503_with_the_reason(tmp_path: Path) -> None:
    settings = Settings().with_data_dir(tmp_path)
    broken = settings.model_copy(
        update={
            "embedding": settings.embedding.model_copy(update={"backend": "fake"}),
            "generator": settings.generator.model_copy(
                update={"backend": "fake", "prompt_template": tmp_path / "missing.txt"}
            ),
        }
    )
    with TestClient(create_app(broken)) as client:
        service = client.app.state.service
        service._loader.join(timeout=30)
        ready = client.get("/ready")
        assert ready.status_code == 503 and "missing.txt" in ready.json()["error"]
        ask = client.post("/ask", json={"question": "Anything?"})
        assert ask.status_code == 503 and "failed to load" in ask.json()["detail"]
        assert client.get("/health").status_code == 200


def test_adapters_are_listed_with_their_cards(client: TestClient) -> None:
    (reader,) = client.get("/adapters").json()["adapters"]
    assert reader["name"] == "reader" and reader["default"]
    assert reader["card"]["base_model"]


def test_the_chat_page_and_the_api_schema_are_served(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and "<html" in page.text.lower()
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/ask", "/documents", "/v1/chat/completions", "/adapters", "/ready"} <= paths.keys()


def test_liveness_answers_while_every_pool_thread_waits_on_a_question(
    client: TestClient, generator: FakeGenerator, policies: dict
) -> None:
    release = threading.Event()

    def slow(messages: list, adapter: str | None) -> str:
        release.wait(30)
        return "Passwords must be at least 14 characters long [1]."

    generator.reply = slow
    # More blocked synchronous /ask calls than the thread pool has threads (40).
    with ThreadPoolExecutor(max_workers=45) as pool:
        asks = [pool.submit(client.post, "/ask", json={"question": "How long must passwords be?"}) for _ in range(45)]
        try:
            started = time.monotonic()
            assert client.get("/health").status_code == 200
            assert client.get("/ready").json()["ready"]
            assert time.monotonic() - started < 5
        finally:
            release.set()
        assert {ask.result().status_code for ask in asks} == {200}


def test_a_busy_generator_is_a_503_with_advice(client: TestClient, generator: FakeGenerator, policies: dict) -> None:
    def busy(messages: list, adapter: str | None) -> str:
        raise GeneratorBusy("the generator stayed busy with other questions for 120 s; retry later")

    generator.reply = busy
    response = client.post("/ask", json={"question": "How long must passwords be?"})
    assert response.status_code == 503 and "retry later" in response.json()["detail"]


def test_a_data_dir_embedded_by_another_model_is_refused_with_what_to_do(tmp_path: Path) -> None:
    settings = Settings().with_data_dir(tmp_path)
    settings = settings.model_copy(
        update={
            "embedding": settings.embedding.model_copy(update={"backend": "fake"}),
            "generator": settings.generator.model_copy(update={"backend": "fake"}),
        }
    )
    open_store(settings.storage).claim_embedder("sentence-transformers:packaged:all-MiniLM-L6-v2")
    with TestClient(create_app(settings)) as client:
        client.app.state.service._loader.join(timeout=30)
        ready = client.get("/ready")
        assert ready.status_code == 503
        assert "were made by sentence-transformers:packaged:all-MiniLM-L6-v2" in ready.json()["error"]
        assert "the configured embedder is fake:256" in ready.json()["error"]
        assert client.post("/ask", json={"question": "Anything?"}).status_code == 503


def test_ready_lists_live_workers_and_the_queue_depth(client: TestClient, settings: Settings) -> None:
    store = service_of(client).store
    ready = client.get("/ready").json()
    assert ready["workers"] == [] and ready["seconds_since_worker_heartbeat"] is None
    upload = client.post("/documents", files={"files": ("a.md", b"# A\n\nSome text about apples.\n")})
    assert upload.status_code == 202
    assert client.get("/ready").json()["queued_jobs"] == 1
    silent_for = 4 * settings.ingest.heartbeat_seconds
    store.record_heartbeat("host:1", started_at=time.time() - 100)
    ready = client.get("/ready").json()
    assert [w["id"] for w in ready["workers"]] == ["host:1"] and ready["seconds_since_worker_heartbeat"] < 1
    open_store(settings.storage, clock=lambda: time.time() - silent_for).record_heartbeat("host:1", time.time() - 100)
    ready = client.get("/ready").json()
    assert ready["workers"] == []  # silent for longer than three heartbeats: not counted as alive
    assert ready["seconds_since_worker_heartbeat"] >= silent_for - 1


def _samples(client: TestClient) -> dict[str, float]:
    """GET /metrics as {'name{labels}': value}."""
    response = client.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    samples = {}
    for line in response.text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
    return samples


def test_metrics_count_requests_answers_stages_tokens_and_the_store(client: TestClient, policies: dict) -> None:
    client.post("/ask", json={"question": "How long must passwords be?"})
    client.post("/ask", json={"question": "Which stock exchange lists the company's shares?"})
    client.get(f"/documents/{policies['security.md']}")
    client.get("/documents/nope")
    client.post("/documents", files={"files": ("later.md", b"# Later\n\nQueued, not indexed yet.\n")})
    samples = _samples(client)
    assert samples['docqa_http_requests_total{method="POST",route="/ask",status="200"}'] == 2
    # one series per route, not per document id
    assert samples['docqa_http_requests_total{method="GET",route="/documents/{document_id}",status="200"}'] == 1
    assert samples['docqa_http_requests_total{method="GET",route="/documents/{document_id}",status="404"}'] == 1
    assert samples['docqa_answers_total{outcome="answered"}'] == 1
    assert samples['docqa_answers_total{outcome="declined"}'] == 1
    assert samples['docqa_answer_stage_duration_seconds_count{stage="generate"}'] == 1
    assert samples['docqa_answer_stage_duration_seconds_count{stage="embed"}'] == 2
    assert samples["docqa_generated_tokens_total"] > 3 and samples["docqa_generation_seconds_total"] > 0
    assert samples['docqa_documents{status="indexed"}'] == len(policies)
    assert samples['docqa_documents{status="queued"}'] == 1 and samples["docqa_queue_jobs"] == 1
    assert samples["docqa_index_chunks"] == client.get("/ready").json()["indexed_chunks"] > 0
    assert samples["docqa_index_generation"] == 1
