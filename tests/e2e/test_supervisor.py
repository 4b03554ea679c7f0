"""`make run`'s supervisor through real processes: a crashed worker comes back, and stopping leaves nothing behind."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import httpx

from tests.e2e.conftest import RunningService, wait_for_status, wait_until

STOP_SECONDS = 10


def test_a_crashed_worker_is_restarted_and_ingestion_goes_on(tmp_path: Path) -> None:
    service = RunningService(tmp_path)
    service.start_supervised()
    try:
        with httpx.Client(base_url=service.url, timeout=60) as client:
            # The worker says it is alive once it can parse (dedoc loaded), which may be after the API is ready.
            wait_until(lambda: client.get("/ready").json()["workers"], 120, "the worker's heartbeat in GET /ready")
            (worker,) = client.get("/ready").json()["workers"]
            worker_pid = int(worker["id"].rsplit(":", 1)[1])
            subprocess.run(["kill", "-KILL", str(worker_pid)], check=True)

            def new_worker() -> bool:
                workers = client.get("/ready").json()["workers"]
                return any(w["id"] != worker["id"] and w["seconds_since_heartbeat"] < 5 for w in workers)

            wait_until(new_worker, 120, "a new worker in GET /ready")
            policy = b"# Parking\n\nBicycles are parked in the basement garage on level minus two.\n"
            (doc,) = client.post("/documents", files={"files": ("parking.md", policy)}).json()["documents"]
            assert wait_for_status(client, doc["id"], {"indexed", "failed"})["status"] == "indexed"
            assert client.get("/ready").json()["queued_jobs"] == 0
        assert "the worker exited with code -9" in service.log("supervisor")
        assert "starting it again" in service.log("supervisor")
    finally:
        service.stop()


def test_stopping_ten_times_after_ingesting_leaves_no_process_behind(tmp_path: Path) -> None:
    service = RunningService(tmp_path)
    for round_ in range(10):
        supervisor = service.start_supervised()
        with httpx.Client(base_url=service.url, timeout=60) as client:
            text = f"# Room {round_}\n\nMeeting room {round_} seats {round_ + 4} people and has a projector.\n"
            files = {"files": (f"room_{round_}.md", text.encode())}
            (doc,) = client.post("/documents", files=files).json()["documents"]
            assert wait_for_status(client, doc["id"], {"indexed", "failed"})["status"] == "indexed"
        sessions = _sessions_under(supervisor.pid)
        assert len(sessions) == 2  # the API's and the worker's, each with whatever they started
        stop = signal.SIGINT if round_ % 2 else signal.SIGTERM  # Ctrl-C, or a service manager
        started = time.monotonic()
        supervisor.send_signal(stop)
        assert supervisor.wait(timeout=STOP_SECONDS) == 0
        assert time.monotonic() - started < STOP_SECONDS
        assert _live_processes_in(sessions) == [], service.log("supervisor")[-3000:]
    with httpx.Client(base_url=service.url, timeout=60) as client:
        service.start_supervised()
        try:
            documents = client.get("/documents").json()["documents"]
            assert sorted(d["filename"] for d in documents) == sorted(f"room_{i}.md" for i in range(10))
            assert {d["status"] for d in documents} == {"indexed"}
        finally:
            service.stop()


def _stat(pid: str) -> list[str] | None:
    """/proc/PID/stat's fields after the command name (state, ppid, pgrp, session, ...); None once gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None


def _sessions_under(parent: int) -> set[int]:
    sessions = set()
    for entry in Path("/proc").iterdir():
        fields = _stat(entry.name) if entry.name.isdigit() else None
        if fields and int(fields[1]) == parent:
            sessions.add(int(fields[3]))
    return sessions


def _live_processes_in(sessions: set[int]) -> list[str]:
    live = []
    for entry in Path("/proc").iterdir():
        fields = _stat(entry.name) if entry.name.isdigit() else None
        if fields and int(fields[3]) in sessions and fields[0] != "Z":  # a zombie has stopped; its parent reaps it
            live.append(f"{entry.name} {Path(f'/proc/{entry.name}/cmdline').read_bytes()[:80]!r}")
    return live
