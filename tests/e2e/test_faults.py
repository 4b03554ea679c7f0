"""Fault injection through the real processes: the worker SIGKILLed at random points of at least ten batches,
and the API SIGKILLed during uploads. Nothing acknowledged is lost, nothing is indexed twice."""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path

import httpx

from tests.documents import meeting_room
from tests.e2e.conftest import RunningService, wait_until

KILLS = 10


def test_kills_lose_nothing_acknowledged_and_index_nothing_twice(tmp_path: Path) -> None:
    service = RunningService(
        tmp_path,
        {
            "RAG_INGEST__BATCH_SIZE": "2",  # many small batches to kill in the middle of
            "RAG_INGEST__BATCH_WAIT_SECONDS": "0.2",
            "RAG_INGEST__MAX_ATTEMPTS": "100",  # the kills are ours: no document may give up because of them
        },
    )
    service.start()
    rng = random.Random(12)
    acknowledged: dict[str, str] = {}  # filename -> document id, once a 202 said so
    try:
        with httpx.Client(base_url=service.url, timeout=30) as client:
            # The API killed in the middle of uploads: each file is sent until it is acknowledged, as a client would.
            uploading = threading.Thread(target=upload_all, args=(client, range(0, 12), acknowledged))
            uploading.start()
            for _ in range(2):
                time.sleep(rng.uniform(0.2, 1.0))
                service.kill("api")
                service.start("api")
            uploading.join(300)
            assert not uploading.is_alive()

            kills, batch = 0, 12
            while kills < KILLS:
                assert batch < 12 + 3 * 4 * KILLS, "the worker was never caught holding a batch"
                upload_all(client, range(batch, batch + 3), acknowledged)
                batch += 3
                # Kill the worker at a random moment while it holds a batch: parsing, embedding, indexing,
                # finishing. A batch done before it was seen is not a kill: more documents come next round.
                if wait_for_processing(client, 30):
                    time.sleep(rng.uniform(0.0, 0.5))
                    service.kill("worker")
                    kills += 1
                    service.start("worker")

            def all_indexed() -> bool:
                return {d["status"] for d in client.get("/documents").json()["documents"]} == {"indexed"}

            wait_until(all_indexed, 300, "every document indexed")
            documents = {d["filename"]: d for d in client.get("/documents").json()["documents"]}
            assert {name: doc["id"] for name, doc in documents.items()} == acknowledged  # none lost, none doubled
            chunks = sum(doc["chunk_count"] for doc in documents.values())
            wait_until(lambda: client.get("/ready").json()["indexed_chunks"] == chunks, 60, "the index to catch up")
            body = client.post("/ask", json={"question": "How many people does meeting room 7 seat?"}).json()
            assert "10" in body["answer"] and body["citations"][0]["document_id"] == acknowledged["room_7.md"]
    finally:
        service.stop()


def upload_all(client: httpx.Client, numbers: range, acknowledged: dict[str, str]) -> None:
    for n in numbers:
        while True:
            try:
                response = client.post("/documents", files={"files": (f"room_{n}.md", meeting_room(n))})
            except httpx.TransportError:  # the API is down: try again, as a client would
                time.sleep(0.3)
                continue
            if response.status_code == 202:
                acknowledged[f"room_{n}.md"] = response.json()["documents"][0]["id"]
                break
            time.sleep(0.3)


def wait_for_processing(client: httpx.Client, timeout: float) -> bool:
    """True once a document is being processed; False if every one is done first, or after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        statuses = {d["status"] for d in client.get("/documents").json()["documents"]}
        if "processing" in statuses:
            return True
        if statuses <= {"indexed", "failed"}:
            return False
        time.sleep(0.05)
    return False
