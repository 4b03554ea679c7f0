"""Starts the real API and worker processes on a free port with a temporary data dir."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]
WORKER_PYTHON = os.environ.get("RAG_TEST_WORKER_PYTHON", str(REPO / ".venv-worker" / "bin" / "python"))
MAX_FILE_BYTES = 600_000  # LibreOffice writes a one-slide PPT of 460 kB
MAX_REQUEST_BYTES = 1_000_000


def wait_until(condition: Callable[[], object], timeout: float, what: str) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RunningService:
    """The API and the worker as real processes, with their logs in the data dir; `extra_env` adds settings."""

    def __init__(self, data_dir: Path, extra_env: dict[str, str] | None = None) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.worker_metrics_url = f"http://127.0.0.1:{free_port()}/metrics"
        self.env = {
            **os.environ,
            "RAG_STORAGE__DATA_DIR": str(data_dir),
            "RAG_SERVER__PORT": str(self.port),
            "RAG_SERVER__MAX_FILE_BYTES": str(MAX_FILE_BYTES),
            "RAG_SERVER__MAX_REQUEST_BYTES": str(MAX_REQUEST_BYTES),
            "RAG_INGEST__POLL_SECONDS": "0.2",
            "RAG_INGEST__METRICS_PORT": self.worker_metrics_url.split(":")[2].split("/")[0],
            "RAG_INGEST__LEASE_SECONDS": "3",  # a killed worker's job is taken again within seconds
            "HF_HUB_OFFLINE": "1",  # proves nothing needs a model hub
            # These tests check the service's plumbing against answers of the base generator on tiny documents,
            # with the block margin it was tuned for. The shipped reader adapter (the default) is tested by name
            # in test_adapters.py and with every shipped default on the unseen corpus (tests/eval).
            "RAG_GENERATOR__DEFAULT_ADAPTER": "",
            "RAG_RETRIEVAL__RELATIVE_MARGIN": "0.1",
            "RAG_GENERATOR__ANSWER_CANDIDATES": "1",  # the greedy answer, streamed token by token
            **(extra_env or {}),
        }
        self.processes: dict[str, subprocess.Popen] = {}

    def start(self, *names: str) -> None:
        commands = {"worker": (WORKER_PYTHON, "ingest"), "api": (sys.executable, "app")}
        for name in names or commands:
            python, module = commands[name]
            log = (self.data_dir / f"{name}.log").open("ab")
            self.processes[name] = subprocess.Popen(
                [python, "-m", module], cwd=REPO, env=self.env, stdout=log, stderr=subprocess.STDOUT
            )
        wait_until(self._ready, 300, "GET /ready")

    def start_supervised(self) -> subprocess.Popen:
        """`make run`'s way: one supervisor process that runs both (its log is supervisor.log)."""
        log = (self.data_dir / "supervisor.log").open("ab")
        command = [sys.executable, "-m", "app", "run", "--worker-python", WORKER_PYTHON]
        supervisor = subprocess.Popen(command, cwd=REPO, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        self.processes["supervisor"] = supervisor
        wait_until(self._ready, 300, "GET /ready")
        return supervisor

    def kill(self, name: str) -> None:
        """SIGKILL: no clean-up, as in a crash or an OOM kill."""
        self.processes[name].kill()
        self.processes[name].wait()

    def _ready(self) -> bool:
        for name, process in self.processes.items():
            if process.poll() is not None:
                raise AssertionError(f"{name} exited with {process.returncode}:\n{self.log(name)[-3000:]}")
        try:
            return httpx.get(f"{self.url}/ready", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    def stop(self) -> None:
        for process in self.processes.values():
            process.send_signal(signal.SIGTERM)
        for name, process in self.processes.items():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                raise AssertionError(f"{name} did not stop on SIGTERM") from None

    def log(self, name: str) -> str:
        return (self.data_dir / f"{name}.log").read_text(errors="replace")


@pytest.fixture(scope="session")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningService]:
    running = RunningService(tmp_path_factory.mktemp("data"))
    running.start()
    yield running
    running.stop()


@pytest.fixture(scope="session")
def client(service: RunningService) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=service.url, timeout=120) as http:
        yield http


def wait_for_status(client: httpx.Client, doc_id: str, statuses: set[str], timeout: float = 120) -> dict:
    def current() -> dict | None:
        doc = client.get(f"/documents/{doc_id}").json()
        return doc if doc["status"] in statuses else None

    return wait_until(current, timeout, f"document {doc_id} to reach {statuses}")
