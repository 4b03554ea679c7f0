"""Past one process: two workers and two API processes over one PostgreSQL store and one data dir. Documents
uploaded through both APIs are each indexed exactly once, even with a worker SIGKILLed in the middle of a
batch, and both APIs answer alike."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.documents import meeting_room
from tests.e2e.conftest import REPO, WORKER_PYTHON, RunningService, free_port, wait_until
from tests.postgres import new_database, postgres_cluster

DOCUMENTS = 40


@pytest.fixture(scope="module")
def database_url() -> Iterator[str]:
    with postgres_cluster() as server:
        yield new_database(server)


def test_two_workers_and_two_apis_index_every_document_exactly_once(tmp_path: Path, database_url: str) -> None:
    settings = {
        "RAG_STORAGE__BACKEND": "postgres",
        "RAG_STORAGE__DATABASE_URL": database_url,
        "RAG_INGEST__BATCH_SIZE": "4",
        "RAG_INGEST__BATCH_WAIT_SECONDS": "0.2",
        "RAG_INGEST__METRICS_PORT": "0",
    }
    base = RunningService(tmp_path, settings).env
    ports = [free_port(), free_port()]
    commands = {
        "api-1": ([sys.executable, "-m", "app", "serve"], {"RAG_SERVER__PORT": str(ports[0])}),
        "api-2": ([sys.executable, "-m", "app", "serve"], {"RAG_SERVER__PORT": str(ports[1])}),
        "worker-1": ([WORKER_PYTHON, "-m", "ingest"], {}),
        "worker-2": ([WORKER_PYTHON, "-m", "ingest"], {}),
    }
    processes: dict[str, subprocess.Popen[bytes]] = {}

    def start(name: str) -> None:
        command, env = commands[name]
        log = (tmp_path / f"{name}.log").open("ab")
        processes[name] = subprocess.Popen(command, cwd=REPO, env={**base, **env}, stdout=log, stderr=log)

    for name in commands:
        start(name)
    apis = [httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) for port in ports]
    try:
        for api in apis:
            wait_until(lambda api=api: ready(api), 300, "both APIs ready")
        wait_until(lambda: len(apis[0].get("/ready").json()["workers"]) == 2, 120, "both workers' heartbeats")
        uploaded = {}
        for n in range(DOCUMENTS):
            api = apis[n % 2]  # half through each API
            (doc,) = api.post("/documents", files={"files": (f"room_{n}.md", meeting_room(n))}).json()["documents"]
            uploaded[doc["filename"]] = doc["id"]
            if n == DOCUMENTS // 2:  # mid-way, one worker dies in the middle of whatever it holds
                wait_until(lambda: processing(apis[0]), 60, "a document being processed")
                processes["worker-1"].kill()
                processes["worker-1"].wait()

        def all_indexed() -> bool:
            return {d["status"] for d in apis[1].get("/documents").json()["documents"]} == {"indexed"}

        wait_until(all_indexed, 300, "every document indexed by the worker left")
        documents = apis[0].get("/documents").json()["documents"]
        assert {d["filename"]: d["id"] for d in documents} == uploaded
        chunks = sum(d["chunk_count"] for d in documents)
        for api in apis:  # exactly once: the index holds as many vectors as the store has chunks
            wait_until(lambda api=api: api.get("/ready").json()["indexed_chunks"] == chunks, 60, "the index")
        question = {"question": "How many people does meeting room 21 seat?"}
        answers = [api.post("/ask", json=question).json() for api in apis]
        assert answers[0]["answer"] == answers[1]["answer"] and "24" in answers[0]["answer"]
        assert {a["citations"][0]["document_id"] for a in answers} == {uploaded["room_21.md"]}
    finally:
        for api in apis:
            api.close()
        for process in processes.values():
            process.terminate()
        for process in processes.values():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


def ready(api: httpx.Client) -> bool:
    try:
        return api.get("/ready").status_code == 200
    except httpx.TransportError:
        time.sleep(0.5)
        return False


def processing(api: httpx.Client) -> bool:
    return any(d["status"] == "processing" for d in api.get("/documents").json()["documents"])
