"""The running service, one per generator backend (real API and worker processes, each over its own data dir):
/ask latency per stage on the project's policy set against raw in-process embed + search, 32 concurrent
questions; and ingestion speed per embedding runtime against a raw `encode` of the same chunks."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from app.components import build_retriever
from app.config import Settings
from app.embedding import build_embedder
from app.store import open_store
from evaluation.metrics import percentile

REPO = Path(__file__).resolve().parents[1]
POLICIES = REPO / "evaluation" / "data" / "policies"
MANUAL = REPO / "evaluation" / "data" / "python_docs"  # 17 HTML pages: the ingestion load
QUESTIONS = 24  # the policy set's first questions (answerable and not, as the file mixes them)
CONCURRENT = 32
RETRIEVAL_STAGES = ("embed", "search", "fuse", "rerank")
RUNTIMES = ("torch", "onnx-int8")  # embedding.runtime, for ingestion  # what /ask reports of the retrieval it did


class ServiceProcesses:
    """The API and the worker of one configuration, started like `make run` does, logs in the data dir."""

    def __init__(self, data_dir: Path, worker_python: str, env: dict[str, str]) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.data_dir = data_dir
        self.env = {
            **os.environ,
            "RAG_STORAGE__DATA_DIR": str(data_dir),
            "RAG_SERVER__PORT": str(self.port),
            "RAG_INGEST__POLL_SECONDS": "0.1",
            "RAG_INGEST__METRICS_PORT": "0",
            **env,
        }
        self.commands = {"worker": [worker_python, "-m", "ingest"], "api": [sys.executable, "-m", "app"]}
        self.processes: list[subprocess.Popen[bytes]] = []

    def __enter__(self) -> ServiceProcesses:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        for name, command in self.commands.items():
            with (self.data_dir / f"{name}.log").open("ab") as log:
                self.processes.append(
                    subprocess.Popen(command, cwd=REPO, env=self.env, stdout=log, stderr=subprocess.STDOUT)
                )
        deadline = time.monotonic() + 600
        while not self._ready():
            if time.monotonic() > deadline or any(p.poll() is not None for p in self.processes):
                raise RuntimeError(f"the service in {self.data_dir} did not start; see its logs there")
            time.sleep(0.5)
        return self

    def __exit__(self, *exc: object) -> None:
        for process in self.processes:
            process.send_signal(signal.SIGTERM)
        for process in self.processes:
            process.wait(timeout=60)

    def _ready(self) -> bool:
        try:
            return httpx.get(f"{self.url}/ready", timeout=2).status_code == 200
        except httpx.TransportError:
            return False


def upload_folder(client: httpx.Client, folder: Path) -> tuple[int, float]:
    """Upload every file of `folder`; (indexed chunks, seconds from upload to the last one indexed)."""
    files = [("files", (path.name, path.read_bytes())) for path in sorted(folder.iterdir())]
    started = time.perf_counter()
    before = client.get("/ready").json()["indexed_chunks"]
    documents = client.post("/documents", files=files).raise_for_status().json()["documents"]
    pending = {d["id"] for d in documents}
    while pending:
        for doc_id in list(pending):
            if client.get(f"/documents/{doc_id}").json()["status"] in ("indexed", "failed"):
                pending.discard(doc_id)
        time.sleep(0.05)
    while (chunks := client.get("/ready").json()["indexed_chunks"]) == before:  # the index generation lands last
        time.sleep(0.05)
    return chunks - before, time.perf_counter() - started


def policy_questions() -> list[str]:
    lines = (POLICIES / "questions.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line)["question"] for line in lines[:QUESTIONS]]


def ask_latency(clients: dict[str, httpx.Client], questions: list[str]) -> dict[str, dict[str, list[float]]]:
    """Each question to each service in turn (so both see the same machine state); ms per stage and in total."""
    samples: dict[str, dict[str, list[float]]] = {name: {"total": []} for name in clients}
    for question in questions:
        for name, client in clients.items():
            started = time.perf_counter()
            body = client.post("/ask", json={"question": question}).raise_for_status().json()
            samples[name]["total"].append((time.perf_counter() - started) * 1000)
            for stage, ms in body["timings_ms"].items():
                samples[name].setdefault(stage, []).append(ms)
            retrieval = sum(body["timings_ms"].get(stage, 0.0) for stage in RETRIEVAL_STAGES)
            samples[name].setdefault("retrieval", []).append(retrieval)
    return samples


def raw_retrieval_ms(settings: Settings, questions: list[str]) -> list[float]:
    """Embed + dense and BM25 search + fusion in this process, over the same data dir: what /ask adds to it is HTTP,
    JSON and the API's own work."""
    embedder = build_embedder(settings.embedding, settings.storage.model_cache_dir)
    retriever = build_retriever(settings, open_store(settings.storage), embedder)
    retriever.search(questions[0], settings.retrieval.top_k)  # loads the index generation
    times = []
    for question in questions:
        started = time.perf_counter()
        retriever.search(question, settings.retrieval.top_k)
        times.append((time.perf_counter() - started) * 1000)
    return times


def concurrency(client: httpx.Client, questions: list[str]) -> dict[str, float]:
    """CONCURRENT questions at once; answers per second and errors."""
    batch = [questions[i % len(questions)] for i in range(CONCURRENT)]

    def ask(question: str) -> int:
        return client.post("/ask", json={"question": question}).status_code

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=CONCURRENT) as pool:
        statuses = list(pool.map(ask, batch))
    elapsed = time.perf_counter() - started
    return {
        "questions": CONCURRENT,
        "seconds": elapsed,
        "per_second": CONCURRENT / elapsed,
        "errors": sum(status != 200 for status in statuses),
    }


def raw_encode_chunks_s(settings: Settings) -> float:
    """The embedder alone over the chunks the worker indexed, in chunks per second."""
    store = open_store(settings.storage)
    _, _, texts = store.chunk_contents(sorted(store.chunk_ids()))
    embedder = build_embedder(settings.embedding, settings.storage.model_cache_dir)
    embedder.embed(texts[:32])  # warm-up
    started = time.perf_counter()
    embedder.embed(texts)
    return len(texts) / (time.perf_counter() - started)


def run(root: Path, worker_python: str, backends: list[str]) -> dict[str, Any]:
    questions = policy_questions()
    results: dict[str, Any] = {"questions": len(questions), "backends": {}}
    with ThreadPoolExecutor() as starter:  # start the services side by side; they load their models meanwhile
        services = {
            backend: ServiceProcesses(root / backend, worker_python, {"RAG_GENERATOR__BACKEND": backend})
            for backend in backends
        }
        list(starter.map(lambda service: service.__enter__(), services.values()))
    try:
        clients = {name: httpx.Client(base_url=service.url, timeout=600) for name, service in services.items()}
        for client in clients.values():
            upload_folder(client, POLICIES / "documents")
        samples = ask_latency(clients, questions)
        for backend, service in services.items():
            settings = Settings().with_data_dir(service.data_dir)
            raw = raw_retrieval_ms(settings, questions)
            stages = samples[backend]
            results["backends"][backend] = {
                "ask_ms": {stage: {"p50": percentile(v, 50), "p95": percentile(v, 95)} for stage, v in stages.items()},
                "raw_retrieval_p50_ms": percentile(raw, 50),
                "ask_retrieval_over_raw": percentile(stages["retrieval"], 50) / percentile(raw, 50),
                "concurrency": concurrency(clients[backend], questions),
            }
    finally:
        for service in services.values():
            service.__exit__()
    results["ingest"] = {runtime: ingest(root / f"ingest-{runtime}", worker_python, runtime) for runtime in RUNTIMES}
    return results


def ingest(data_dir: Path, worker_python: str, runtime: str) -> dict[str, float]:
    """The manual uploaded to a fresh service embedding with `runtime`, until indexed; and a raw `encode`."""
    env = {"RAG_EMBEDDING__RUNTIME": runtime, "RAG_GENERATOR__BACKEND": "fake"}  # no generator: not asked
    with ServiceProcesses(data_dir, worker_python, env) as service, httpx.Client(base_url=service.url) as client:
        while not client.get("/ready").json()["workers"]:  # the worker's start is not ingestion
            time.sleep(0.1)
        chunks, seconds = upload_folder(client, MANUAL / "documents")
    settings = Settings().with_data_dir(data_dir)
    settings = settings.model_copy(update={"embedding": settings.embedding.model_copy(update={"runtime": runtime})})
    raw_rate = raw_encode_chunks_s(settings)
    return {
        "documents": len(list((MANUAL / "documents").iterdir())),
        "chunks": chunks,
        "seconds": seconds,
        "chunks_s": chunks / seconds,
        "raw_encode_chunks_s": raw_rate,
        "ingest_over_raw": chunks / seconds / raw_rate,
    }
