"""API keys through the real processes: the API refuses to start without one when keys are required, the
command line creates and revokes them, and a key reaches only its collections."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx

from tests.e2e.conftest import REPO, RunningService, wait_for_status


def keys(service: RunningService, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "app", "keys", *args]
    return subprocess.run(command, cwd=REPO, env=service.env, capture_output=True, text=True, timeout=60)


def test_keys_from_the_command_line_guard_a_service_on_the_network(tmp_path: Path) -> None:
    service = RunningService(tmp_path, {"RAG_SERVER__REQUIRE_KEYS": "true"})
    refused = subprocess.run(
        [sys.executable, "-m", "app", "serve"], cwd=REPO, env=service.env, capture_output=True, text=True, timeout=60
    )
    assert refused.returncode == 1 and "python -m app keys create" in refused.stderr

    created = keys(service, "create", "--name", "hr-bot", "--scope", "write", "--collections", "hr")
    assert created.returncode == 0 and created.stdout.startswith("dq_")
    hr = {"Authorization": f"Bearer {created.stdout.strip()}"}
    assert keys(service, "create", "--name", "hr-bot").returncode == 1  # names are unique
    service.start()
    try:
        with httpx.Client(base_url=service.url, timeout=120) as client:
            assert client.get("/documents").status_code == 401
            client.headers.update(hr)
            policy = b"# Parental Leave\n\nParents receive 20 weeks of paid parental leave.\n"
            upload = client.post("/documents", files={"files": ("leave.md", policy)}, data={"collection": "hr"})
            (doc,) = upload.json()["documents"]
            assert wait_for_status(client, doc["id"], {"indexed", "failed"})["status"] == "indexed"
            body = client.post("/ask", json={"question": "How many weeks of parental leave?"}).json()
            assert "20" in body["answer"] and body["citations"][0]["document_id"] == doc["id"]
            assert "hr-bot\twrite\thr\tactive" in keys(service, "list").stdout
            assert keys(service, "revoke", "--name", "hr-bot").returncode == 0
            assert client.get("/documents").status_code == 401
    finally:
        service.stop()
