"""The whole path through real processes: upload, parse, chunk, embed, index, ask, delete, restart."""

from __future__ import annotations

import httpx
import pytest

from tests.documents import (
    HOLIDAY_POLICY_TXT,
    SECURITY_POLICY_MD,
    TRAVEL_POLICY_HTML,
    corrupt_docx,
    expense_policy_pdf,
    refund_policy_docx,
)
from tests.e2e.conftest import MAX_FILE_BYTES, RunningService, wait_for_status

NO_ANSWER = "The documents do not contain the answer."

# question, file that holds the answer, its section, a fact the answer must contain
QUESTIONS = [
    ("How many days do customers have to request a refund?", "refund_policy.docx",
     "Refund Policy > Eligibility", "30"),
    ("What is the most a hotel room may cost per night?", "travel_policy.html", "Travel Policy > Hotels", "180"),
    ("How long must passwords be?", "security_policy.md", "Security Policy > Passwords", "14"),
    ("How many days of paid vacation does an employee get per year?", "holiday_policy.txt", "Holiday Policy", "25"),
    ("How much is the daily meal allowance on business trips?", "expense_policy.pdf", "Expense Policy", "40"),
]  # fmt: skip


@pytest.fixture(scope="module")
def documents(client: httpx.Client) -> dict[str, str]:
    """Upload one policy per format in one request and wait until each is indexed."""
    files = [
        ("files", ("refund_policy.docx", refund_policy_docx())),
        ("files", ("travel_policy.html", TRAVEL_POLICY_HTML)),
        ("files", ("security_policy.md", SECURITY_POLICY_MD)),
        ("files", ("holiday_policy.txt", HOLIDAY_POLICY_TXT)),
        ("files", ("expense_policy.pdf", expense_policy_pdf())),
    ]
    response = client.post("/documents", files=files)
    assert response.status_code == 202, response.text
    uploaded = response.json()["documents"]
    assert [d["status"] for d in uploaded] == ["queued"] * 5
    for doc in uploaded:
        indexed = wait_for_status(client, doc["id"], {"indexed", "failed"})
        assert indexed["status"] == "indexed", indexed
        assert indexed["chunk_count"] > 0
    return {d["filename"]: d["id"] for d in uploaded}


def ask(client: httpx.Client, question: str, **extra: object) -> dict:
    response = client.post("/ask", json={"question": question, **extra})
    assert response.status_code == 200, response.text
    return response.json()


def test_health_and_openapi(client: httpx.Client) -> None:
    assert client.get("/health").json() == {"status": "ok"}
    assert client.get("/ready").json()["ready"] is True
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/documents", "/documents/{document_id}", "/ask", "/health", "/ready"} <= set(paths)


@pytest.mark.parametrize(("question", "filename", "section", "fact"), QUESTIONS)
def test_answer_cites_the_right_document_and_holds_the_fact(
    client: httpx.Client, documents: dict[str, str], question: str, filename: str, section: str, fact: str
) -> None:
    body = ask(client, question)
    first = body["citations"][0]
    assert (first["filename"], first["document_id"]) == (filename, documents[filename])
    assert first["section"] == section
    assert fact in first["text"]
    assert fact in body["answer"], body["answer"]
    assert body["timings_ms"]["generate"] > 0


def test_unrelated_question_is_declined_without_citations(client: httpx.Client, documents: dict[str, str]) -> None:
    body = ask(client, "Which planet in the solar system has the most moons?")
    assert body["answer"] == NO_ANSWER
    assert body["citations"] == []


def test_listing_shows_every_document(client: httpx.Client, documents: dict[str, str]) -> None:
    listed = {d["id"]: d for d in client.get("/documents").json()["documents"]}
    assert set(documents.values()) <= set(listed)
    pdf = listed[documents["expense_policy.pdf"]]
    assert (pdf["kind"], pdf["status"], pdf["error"]) == ("pdf", "indexed", None)
    assert pdf["indexed_at"] >= pdf["created_at"]


def test_both_processes_export_prometheus_metrics(service: RunningService, documents: dict[str, str]) -> None:
    worker = httpx.get(service.worker_metrics_url, timeout=10).text
    assert 'docqa_worker_documents_total{outcome="indexed"} ' in worker
    assert 'docqa_worker_stage_duration_seconds_count{stage="parse"} ' in worker
    api = httpx.get(f"{service.url}/metrics", timeout=10).text
    assert 'docqa_documents{status="indexed"} ' in api and "docqa_worker_heartbeat_age_seconds " in api


def test_same_bytes_again_are_the_same_document(client: httpx.Client, documents: dict[str, str]) -> None:
    response = client.post("/documents", files={"files": ("copy.md", SECURITY_POLICY_MD)})
    assert response.status_code == 202
    (again,) = response.json()["documents"]
    assert again == {
        "id": documents["security_policy.md"],
        "filename": "security_policy.md",
        "collection": "default",
        "status": "indexed",
        "duplicate": True,
        "version": 1,
        "new_version": False,
        "error": None,
        "error_status": None,
        "attachment_of": None,
    }


@pytest.mark.parametrize(
    ("filename", "content", "status", "message"),
    [
        ("picture.gif", b"GIF89a" + bytes(200), 415, "not a supported document type"),
        ("archive.zip", b"", 422, "is empty"),
        ("huge.txt", b"a" * (MAX_FILE_BYTES + 1), 413, "larger than"),
    ],
)
def test_bad_single_upload_gets_a_clear_error(
    client: httpx.Client, filename: str, content: bytes, status: int, message: str
) -> None:
    before = client.get("/documents").json()["documents"]
    response = client.post("/documents", files={"files": (filename, content)})
    assert response.status_code == status
    assert message in response.json()["detail"]
    assert client.get("/documents").json()["documents"] == before


def test_an_oversized_request_is_refused_before_it_is_read(client: httpx.Client) -> None:
    files = [("files", (f"part{i}.txt", b"b" * 250_000)) for i in range(5)]
    response = client.post("/documents", files=files)
    assert response.status_code == 413
    assert "larger than" in response.json()["detail"]
    assert not any(d["filename"].startswith("part") for d in client.get("/documents").json()["documents"])


def test_bad_file_in_a_batch_does_not_fail_the_good_one(client: httpx.Client) -> None:
    files = [
        ("files", ("notes.txt", b"Parking spaces are assigned by the facilities team.")),
        ("files", ("binary.bin", bytes(range(256)))),
    ]
    response = client.post("/documents", files=files)
    assert response.status_code == 202
    good, bad = response.json()["documents"]
    assert good["status"] == "queued" and good["id"]
    assert (bad["status"], bad["error_status"], bad["id"]) == ("rejected", 415, None)
    assert wait_for_status(client, good["id"], {"indexed", "failed"})["status"] == "indexed"


def test_ask_can_be_restricted_to_documents_and_tags(client: httpx.Client, documents: dict[str, str]) -> None:
    memo = b"# Board Memo\n\n## Budget\n\nThe marketing budget for next year is 2 million euros.\n"
    response = client.post("/documents", files={"files": ("memo.md", memo)}, data={"tags": "board, finance"})
    (uploaded,) = response.json()["documents"]
    indexed = wait_for_status(client, uploaded["id"], {"indexed", "failed"})
    assert indexed["tags"] == ["board", "finance"]
    body = ask(client, "What is the marketing budget?", tags=["finance"])
    assert {c["document_id"] for c in body["citations"]} == {uploaded["id"]}
    body = ask(client, "What is the marketing budget?", document_ids=[documents["security_policy.md"]])
    assert uploaded["id"] not in {c["document_id"] for c in body["citations"]}
    bad = client.post("/documents", files={"files": ("x.md", b"# X\n\ny\n")}, data={"tags": "no/slashes"})
    assert bad.status_code == 422 and "tag" in bad.json()["detail"]


def test_corrupt_file_fails_with_an_error_while_others_index(client: httpx.Client, documents: dict[str, str]) -> None:
    response = client.post("/documents", files={"files": ("broken.docx", corrupt_docx())})
    assert response.status_code == 202
    (broken,) = response.json()["documents"]
    failed = wait_for_status(client, broken["id"], {"indexed", "failed"})
    assert failed["status"] == "failed"
    assert "broken.docx" in failed["error"] or "docx" in failed["error"].lower()
    statuses = {d["id"]: d["status"] for d in client.get("/documents").json()["documents"]}
    assert all(statuses[doc_id] == "indexed" for doc_id in documents.values())


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"question": "   "}, "empty"),
        ({"question": "x" * 2001}, "longer than"),
        ({"question": "refunds?", "top_k": 0}, "top_k"),
        ({"question": "refunds?", "top_k": 21}, "top_k"),
        ({}, "question"),
    ],
)
def test_invalid_question_gets_422(client: httpx.Client, payload: dict, message: str) -> None:
    response = client.post("/ask", json=payload)
    assert response.status_code == 422
    assert message in response.json()["detail"]


def test_unknown_document_is_404(client: httpx.Client) -> None:
    assert client.get("/documents/nope").status_code == 404
    assert client.delete("/documents/nope").status_code == 404


def test_deleted_document_is_never_cited_again(client: httpx.Client, documents: dict[str, str]) -> None:
    travel_id = documents["travel_policy.html"]
    assert client.delete(f"/documents/{travel_id}").status_code == 204
    assert client.get(f"/documents/{travel_id}").status_code == 404
    body = ask(client, "What is the most a hotel room may cost per night?")
    assert travel_id not in {c["document_id"] for c in body["citations"]}
    assert "180" not in body["answer"]


def test_a_new_version_replaces_the_old_one_and_exactly_one_is_cited_throughout(client: httpx.Client) -> None:
    def desks(days: int) -> bytes:
        return f"# Desk Booking\n\nDesks can be booked up to {days} days ahead in the office app.\n".encode()

    question = "How many days ahead can desks be booked?"
    (v1,) = client.post("/documents", files={"files": ("desks.md", desks(7))}).json()["documents"]
    assert wait_for_status(client, v1["id"], {"indexed", "failed"})["status"] == "indexed"
    (v2,) = client.post("/documents", files={"files": ("desks.md", desks(14))}).json()["documents"]
    assert (v2["id"], v2["version"], v2["new_version"]) == (v1["id"], 2, True)
    while client.get(f"/documents/{v1['id']}").json()["status"] not in {"indexed", "failed"}:
        cited = [c["text"] for c in ask(client, question)["citations"] if c["document_id"] == v1["id"]]
        assert cited, "the document must stay citable while its new version is processed"
        versions = {days for days in ("7 days", "14 days") for text in cited if days in text}
        assert len(versions) == 1, cited
    body = ask(client, question)
    assert "14" in body["answer"] and body["citations"][0]["document_id"] == v1["id"]
    assert all("7 days" not in c["text"] for c in body["citations"])
    history = client.get(f"/documents/{v1['id']}").json()["versions"]
    assert [(v["version"], v["status"]) for v in history] == [(1, "replaced"), (2, "indexed")]


def test_a_killed_worker_leaves_everything_usable(service: RunningService, client: httpx.Client) -> None:
    policy = b"# Parking Policy\n\n## Bicycles\n\nBicycles are parked in the basement garage on level minus two.\n"
    response = client.post("/documents", files={"files": ("parking.md", policy)})
    (doc,) = response.json()["documents"]
    service.kill("worker")  # whatever it was doing: waiting, parsing, writing the index
    service.start("worker")
    assert wait_for_status(client, doc["id"], {"indexed", "failed"})["status"] == "indexed"
    body = ask(client, "Where are bicycles parked?")
    assert body["citations"][0]["document_id"] == doc["id"]


def test_everything_survives_a_restart(
    service: RunningService, client: httpx.Client, documents: dict[str, str]
) -> None:
    before = client.get("/documents").json()["documents"]
    service.stop()
    service.start()
    assert client.get("/documents").json()["documents"] == before
    body = ask(client, "How long must passwords be?")
    assert body["citations"][0]["document_id"] == documents["security_policy.md"]
    assert "14" in body["answer"]
    travel_id = documents["travel_policy.html"]
    body = ask(client, "What is the most a hotel room may cost per night?")
    assert travel_id not in {c["document_id"] for c in body["citations"]}
