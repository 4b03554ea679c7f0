"""API keys and collections in-process: who may read, write and see what, with 401/403 that say why."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.access import create_key
from app.components import Models
from app.config import Settings
from app.embedding.fake import FakeEmbedder
from app.generation.fake import FakeGenerator
from app.main import create_app
from tests.unit.app.api.conftest import index_queued, service_of

HR_LEAVE = b"# Parental Leave\n\nParents receive 20 weeks of paid parental leave.\n"
FINANCE_LEAVE = b"# Parental Leave\n\nContractors receive 2 weeks of unpaid parental leave.\n"
QUESTION = {"question": "How many weeks of parental leave do parents receive?"}


@pytest.fixture
def secured(tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings().with_data_dir(tmp_path)
    settings = settings.model_copy(update={"server": settings.server.model_copy(update={"require_keys": True})})
    app = create_app(settings, Models(embedder=FakeEmbedder(), generator=FakeGenerator(settings.generator)))
    with TestClient(app) as client:
        yield client


def key(client: TestClient, name: str, scope: str, collections: str) -> dict[str, str]:
    token = create_key(service_of(client).store, name, scope, collections.split(","))
    return {"Authorization": f"Bearer {token}"}


def upload(client: TestClient, headers: dict[str, str], name: str, content: bytes, collection: str) -> dict:
    response = client.post(
        "/documents", files={"files": (name, content)}, data={"collection": collection}, headers=headers
    )
    assert response.status_code == 202, response.text
    return response.json()["documents"][0]


def test_without_a_key_only_health_and_readiness_answer(secured: TestClient) -> None:
    assert secured.get("/health").status_code == 200 and secured.get("/ready").status_code == 200
    guarded = [("POST", "/ask"), ("GET", "/documents"), ("GET", "/adapters"), ("GET", "/v1/models"),
               ("POST", "/v1/chat/completions"), ("GET", "/metrics"), ("DELETE", "/documents/x")]  # fmt: skip
    for method, path in guarded:
        response = secured.request(method, path, json={})
        assert response.status_code == 401, (path, response.text)
        assert response.headers.get("www-authenticate") == "Bearer" or path.startswith("/v1")
    assert "Authorization: Bearer" in secured.get("/documents").json()["detail"]


def test_unknown_malformed_and_revoked_keys_are_401(secured: TestClient) -> None:
    assert secured.get("/documents", headers={"Authorization": "Bearer dq_nope"}).status_code == 401
    assert (
        secured.get("/documents", headers={"Authorization": "Basic abc"})
        .json()["detail"]
        .startswith("the Authorization header must be")
    )
    headers = key(secured, "ci", "read", "hr")
    assert secured.get("/documents", headers=headers).status_code == 200
    assert service_of(secured).store.revoke_key("ci")
    assert "revoked" in secured.get("/documents", headers=headers).json()["detail"]


def test_scopes_read_write_admin(secured: TestClient) -> None:
    reader, writer, admin = (
        key(secured, "r", "read", "hr"),
        key(secured, "w", "write", "hr"),
        key(secured, "a", "admin", "*"),
    )
    refused = secured.post("/documents", files={"files": ("a.md", HR_LEAVE)}, data={"collection": "hr"}, headers=reader)
    assert refused.status_code == 403 and "scope read; this needs write" in refused.json()["detail"]
    doc = upload(secured, writer, "leave.md", HR_LEAVE, "hr")
    assert secured.delete(f"/documents/{doc['id']}", headers=reader).status_code == 403
    assert secured.get("/metrics", headers=writer).status_code == 403
    assert secured.get("/metrics", headers=admin).status_code == 200
    assert secured.delete(f"/documents/{doc['id']}", headers=writer).status_code == 204


def test_a_key_sees_reads_and_writes_only_its_collections(secured: TestClient) -> None:
    hr, finance = key(secured, "hr", "write", "hr"), key(secured, "finance", "write", "finance")
    hr_doc = upload(secured, hr, "leave.md", HR_LEAVE, "hr")
    finance_doc = upload(secured, finance, "leave.md", FINANCE_LEAVE, "finance")  # same name: its own document
    assert hr_doc["id"] != finance_doc["id"] and not finance_doc["new_version"]
    legal = key(secured, "legal", "write", "legal")
    same_bytes = upload(secured, legal, "leave.md", HR_LEAVE, "legal")  # same bytes, other collection
    assert same_bytes["id"] != hr_doc["id"] and not same_bytes["duplicate"]
    index_queued(secured)

    listed = secured.get("/documents", headers=hr).json()["documents"]
    assert [(d["id"], d["collection"]) for d in listed] == [(hr_doc["id"], "hr")]
    assert secured.get(f"/documents/{finance_doc['id']}", headers=hr).status_code == 404  # not revealed
    put = secured.put(f"/documents/{finance_doc['id']}", files={"file": ("x.md", b"# X\n\nY.\n")}, headers=hr)
    assert put.status_code == 404
    assert secured.delete(f"/documents/{finance_doc['id']}", headers=hr).status_code == 404
    wrong = secured.post(
        "/documents", files={"files": ("a.md", b"# A\n\nB.\n")}, data={"collection": "finance"}, headers=hr
    )
    assert wrong.status_code == 403 and "no access to collection 'finance'" in wrong.json()["detail"]

    for headers, fact, own in [(hr, "20 weeks", hr_doc["id"]), (finance, "2 weeks", finance_doc["id"])]:
        body = secured.post("/ask", json=QUESTION, headers=headers).json()
        assert fact in body["answer"] and {c["document_id"] for c in body["citations"]} == {own}
        chat = {"model": "docqa", "messages": [{"role": "user", "content": QUESTION["question"]}]}
        completion = secured.post("/v1/chat/completions", json=chat, headers=headers).json()
        assert fact in completion["choices"][0]["message"]["content"]
    other = secured.post("/ask", json={**QUESTION, "collections": ["finance"]}, headers=hr).json()
    assert other["citations"] == []  # a collection the key does not see is searched as empty


def test_without_required_keys_everything_is_open_and_a_sent_key_still_scopes(client: TestClient) -> None:
    hr = key(client, "hr", "read", "hr")
    upload(client, {}, "leave.md", HR_LEAVE, "hr")
    upload(client, {}, "contract.md", FINANCE_LEAVE, "finance")
    index_queued(client)
    assert len(client.get("/documents").json()["documents"]) == 2
    assert [d["collection"] for d in client.get("/documents", headers=hr).json()["documents"]] == ["hr"]
    assert [d["collection"] for d in client.get("/documents?collection=finance").json()["documents"]] == ["finance"]
    assert client.post("/documents", files={"files": ("a.md", b"# A\n\nB.\n")}, headers=hr).status_code == 403
    placeholder = {"Authorization": "Bearer sk-anything"}  # what an OpenAI client sends when told any key
    assert len(client.get("/documents", headers=placeholder).json()["documents"]) == 2
