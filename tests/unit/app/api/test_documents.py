"""POST/GET/DELETE /documents in-process: statuses, duplicates, per-file rejections, limits, 404s."""

from __future__ import annotations

from collections.abc import Callable

from fastapi.testclient import TestClient

from tests.documents import docx_bomb, email_bytes
from tests.unit.app.api.conftest import index_queued

GIF = b"GIF89a" + b"\x00" * 64  # a picture format nothing reads
REFUNDS = b"# Refunds\n\nRefunds are accepted within 30 days of purchase.\n"


def test_an_upload_is_queued_then_indexed_and_listed(client: TestClient) -> None:
    response = client.post("/documents", files=[("files", ("refunds.md", REFUNDS))], data={"tags": "sales, 2026"})
    assert response.status_code == 202
    (uploaded,) = response.json()["documents"]
    assert uploaded["status"] == "queued" and not uploaded["duplicate"]
    index_queued(client)
    doc = client.get(f"/documents/{uploaded['id']}").json()
    assert (doc["filename"], doc["kind"], doc["status"], doc["chunk_count"]) == ("refunds.md", "md", "indexed", 1)
    assert doc["tags"] == ["2026", "sales"]
    assert [d["id"] for d in client.get("/documents").json()["documents"]] == [uploaded["id"]]


def test_the_same_bytes_again_are_the_same_document(client: TestClient, upload: Callable) -> None:
    first = upload({"refunds.md": REFUNDS})["refunds.md"]
    again = client.post("/documents", files=[("files", ("copy.md", REFUNDS))]).json()["documents"][0]
    assert again["id"] == first and again["duplicate"]
    assert len(client.get("/documents").json()["documents"]) == 1


def test_a_lone_bad_file_gets_its_own_status_and_message(client: TestClient) -> None:
    cases = [
        ("logo.gif", GIF, 415, "not a supported document type"),
        ("empty.md", b"", 422, "empty"),
        ("bomb.docx", docx_bomb(), 415, "looks like a zip bomb"),
    ]
    for filename, content, status, message in cases:
        response = client.post("/documents", files=[("files", (filename, content))])
        assert response.status_code == status, response.text
        assert message in response.json()["detail"]
    assert client.get("/documents").json()["documents"] == []


def test_a_bad_file_in_a_batch_does_not_fail_the_good_one(client: TestClient) -> None:
    files = [("files", ("logo.gif", GIF)), ("files", ("refunds.md", REFUNDS))]
    response = client.post("/documents", files=files)
    assert response.status_code == 202
    bad, good = response.json()["documents"]
    assert (bad["status"], bad["error_status"]) == ("rejected", 415) and bad["id"] is None
    assert good["status"] == "queued"


def test_an_emails_attachments_become_documents_of_their_own(client: TestClient) -> None:
    memo = email_bytes("Refunds", "The refund rules are attached.", {"refunds.md": REFUNDS, "logo.gif": GIF})
    response = client.post("/documents", files=[("files", ("memo.eml", memo))], data={"tags": "finance"})
    assert response.status_code == 202
    message, attached, refused = response.json()["documents"]
    assert (message["filename"], message["status"], message["attachment_of"]) == ("memo.eml", "queued", None)
    assert (attached["filename"], attached["status"]) == ("memo.eml - refunds.md", "queued")
    assert (refused["filename"], refused["status"], refused["error_status"]) == ("memo.eml - logo.gif", "rejected", 415)
    assert attached["attachment_of"] == refused["attachment_of"] == message["id"]
    listed = {d["filename"]: d for d in client.get("/documents").json()["documents"]}
    assert set(listed) == {"memo.eml", "memo.eml - refunds.md"}
    assert listed["memo.eml - refunds.md"]["kind"] == "md" and listed["memo.eml - refunds.md"]["tags"] == ["finance"]


def test_size_limits_answer_413(client: TestClient) -> None:
    limit = client.app.state.service.settings.server.max_file_bytes
    too_big = client.post("/documents", files=[("files", ("big.txt", b"a" * (limit + 1)))])
    assert too_big.status_code == 413 and str(limit) in too_big.json()["detail"]
    headers = {"content-length": str(client.app.state.service.settings.server.max_request_bytes + 1)}
    whole = client.post("/documents", content=b"x", headers={**headers, "content-type": "multipart/form-data"})
    assert whole.status_code == 413 and "larger than" in whole.json()["detail"]


def test_bad_tags_and_missing_files_are_refused_with_a_reason(client: TestClient) -> None:
    bad_tag = client.post("/documents", files=[("files", ("r.md", REFUNDS))], data={"tags": "ok, <script>"})
    assert bad_tag.status_code == 422 and "tag '<script>' is not allowed" in bad_tag.json()["detail"]
    no_files = client.post("/documents", data={"tags": "hr"})
    assert no_files.status_code == 422 and "files" in no_files.json()["detail"]
    assert client.get("/documents").json()["documents"] == []


def test_unknown_and_deleted_documents_are_404(client: TestClient, upload: Callable) -> None:
    doc_id = upload({"refunds.md": REFUNDS})["refunds.md"]
    assert client.get("/documents/nope").status_code == 404
    assert client.delete(f"/documents/{doc_id}").status_code == 204
    gone = client.get(f"/documents/{doc_id}")
    assert gone.status_code == 404 and doc_id in gone.json()["detail"]
    assert client.delete(f"/documents/{doc_id}").status_code == 404


REFUNDS_2026 = b"# Refunds\n\nRefunds are accepted within 45 days of purchase.\n"
REFUND_QUESTION = {"question": "Within how many days are refunds accepted?"}


def test_uploading_a_known_name_makes_a_new_version_that_replaces_the_old_once_indexed(
    client: TestClient, upload: Callable
) -> None:
    doc_id = upload({"refunds.md": REFUNDS})["refunds.md"]
    response = client.post("/documents", files=[("files", ("refunds.md", REFUNDS_2026))])
    (uploaded,) = response.json()["documents"]
    assert (uploaded["id"], uploaded["version"], uploaded["new_version"], uploaded["status"]) == (
        doc_id, 2, True, "queued"
    )  # fmt: skip
    answer = client.post("/ask", json=REFUND_QUESTION).json()
    assert "30 days" in answer["answer"]  # version 1 answers until version 2 is indexed
    index_queued(client)
    answer = client.post("/ask", json=REFUND_QUESTION).json()
    assert "45 days" in answer["answer"] and [c["document_id"] for c in answer["citations"]] == [doc_id]
    assert all("30 days" not in c["text"] for c in answer["citations"])
    doc = client.get(f"/documents/{doc_id}").json()
    assert (doc["version"], doc["indexed_version"], doc["status"]) == (2, 2, "indexed")
    assert [(v["version"], v["status"]) for v in doc["versions"]] == [(1, "replaced"), (2, "indexed")]
    assert len(client.get("/documents").json()["documents"]) == 1


def test_put_uploads_a_version_explicitly(client: TestClient, upload: Callable) -> None:
    ids = upload({"refunds.md": REFUNDS, "other.md": b"# Other\n\nSomething else entirely.\n"})
    doc_id = ids["refunds.md"]
    put = client.put(f"/documents/{doc_id}", files={"file": ("refunds-2026.md", REFUNDS_2026)})
    assert put.status_code == 202 and put.json()["new_version"] and put.json()["filename"] == "refunds-2026.md"
    same = client.put(f"/documents/{doc_id}", files={"file": ("refunds-2026.md", REFUNDS_2026)})
    assert same.status_code == 202 and same.json()["duplicate"] and same.json()["version"] == 2
    taken = client.put(f"/documents/{doc_id}", files={"file": ("x.md", b"# Other\n\nSomething else entirely.\n")})
    assert taken.status_code == 409 and ids["other.md"] in taken.json()["detail"]
    missing = client.put("/documents/nope", files={"file": ("x.md", b"# X\n\nNew text.\n")})
    assert missing.status_code == 404 and "nope" in missing.json()["detail"]
    bad = client.put(f"/documents/{doc_id}", files={"file": ("x.gif", GIF)})
    assert bad.status_code == 415
    index_queued(client)
    assert "45 days" in client.post("/ask", json=REFUND_QUESTION).json()["answer"]
