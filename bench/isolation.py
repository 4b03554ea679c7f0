"""Hostile files against the ingestion worker (issue 12's goal): with three of them queued first, how soon is a
normal document queued after them indexed, and how much memory do the parse children reach against
ingest.parse_memory_bytes?

Two kinds, each run with the real worker process (`python -m ingest`) over its own data dir:
- inflation bombs (300 KB that unpack to 300 MB): refused at upload (415), so the worker never sees them;
- about the heaviest DOCX files the upload checks accept (180 MB of paragraphs, 90% of
  server.max_unpacked_bytes, compressed 20 times into 9 MB): queued, parsed in isolated children, stopped by
  their time or memory limit."""

from __future__ import annotations

import io
import os
import random
import subprocess
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from app.config import Settings
from app.errors import RagError
from app.store import open_store
from app.uploads import accept_upload
from tests.documents import docx_bomb, refund_policy_docx

REPO = Path(__file__).resolve().parents[1]
NORMAL = b"# Parking\n\nBicycles are parked in the basement garage on level minus two.\n"
GOAL_SECONDS = 20


def heavy_docx(unpacked_bytes: int, seed: int = 0) -> bytes:
    """A real DOCX whose document.xml holds `unpacked_bytes` of paragraphs (compressing about 20 times)."""
    rng = random.Random(seed)
    paragraph = "<w:p><w:r><w:t>Employees must follow the policy in every case {}.</w:t></w:r></w:p>"
    parts, size = [], 0
    while size < unpacked_bytes:
        part = paragraph.format("".join(rng.choices("abcdefghij", k=8)))
        parts.append(part)
        size += len(part)
    body = "".join(parts).encode()
    source = zipfile.ZipFile(io.BytesIO(refund_policy_docx()))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for member in source.infolist():
            data = source.read(member)
            if member.filename == "word/document.xml":
                head, _, _ = data.partition(b"<w:body>")
                data = head + b"<w:body>" + body + b"</w:body></w:document>"
            archive.writestr(member.filename, data)
    return buffer.getvalue()


def run(root: Path, worker_python: str) -> dict[str, Any]:
    settings = Settings()
    heavy_bytes = int(settings.server.max_unpacked_bytes * 0.9)
    return {
        "bombs_at_upload": _scenario(
            settings.with_data_dir(root / "bombs"), worker_python, lambda n: docx_bomb(300_000_000 + n)
        ),
        "heaviest_accepted": _scenario(
            settings.with_data_dir(root / "accepted"), worker_python, lambda n: heavy_docx(heavy_bytes, seed=n)
        ),
    }


def _scenario(settings: Settings, worker_python: str, hostile: Callable[[int], bytes]) -> dict[str, Any]:
    """Three hostile files, then a normal one, uploaded before the worker starts; then the worker runs."""
    store = open_store(settings.storage)
    refused, sizes = 0, []
    for n in range(3):
        content = hostile(n)
        sizes.append(len(content))
        try:
            accept_upload(store, settings, f"hostile_{n}.docx", content)
        except RagError:
            refused += 1
    normal, _ = accept_upload(store, settings, "parking.md", NORMAL)
    env = {**os.environ, "RAG_STORAGE__DATA_DIR": str(settings.storage.data_dir), "RAG_INGEST__METRICS_PORT": "0"}
    log = (settings.storage.data_dir / "worker.log").open("wb")
    started = time.monotonic()
    worker = subprocess.Popen([worker_python, "-m", "ingest"], cwd=REPO, env=env, stdout=log, stderr=log)
    ready_s = normal_s = None
    peak_child, peak_worker = 0, 0
    try:
        while time.monotonic() - started < 900:
            worker_rss, children = _tree_rss(worker.pid)
            peak_worker, peak_child = max(peak_worker, worker_rss), max([peak_child, *children])
            now = time.monotonic() - started
            if ready_s is None and store.workers():  # the first heartbeat: the models are loaded
                ready_s = now
            if normal_s is None and store.get_document(normal.id).status == "indexed":  # type: ignore[union-attr]
                normal_s = now
            if all(doc.status in ("indexed", "failed") for doc in store.list_documents()):
                break
            time.sleep(0.2)
    finally:
        worker.terminate()
        worker.wait()
    documents = store.list_documents()
    store.close()
    return {
        "hostile_file_bytes": sizes,
        "refused_at_upload": refused,
        "worker_ready_s": _rounded(ready_s),
        "normal_indexed_after_ready_s": _rounded(normal_s - ready_s if normal_s and ready_s else None),
        "all_done_after_ready_s": _rounded(time.monotonic() - started - (ready_s or 0)),
        "goal_s": GOAL_SECONDS,
        "peak_parse_child_mb": round(peak_child / 1e6),
        "parse_memory_limit_mb": round(settings.ingest.parse_memory_bytes / 1e6),
        "peak_worker_mb": round(peak_worker / 1e6),
        "outcomes": sorted(f"{d.filename}: {d.status}" + (f" ({d.error})" if d.error else "") for d in documents),
    }


def _rounded(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds, 1)


def _tree_rss(pid: int) -> tuple[int, list[int]]:
    """Resident bytes of `pid` and of each of its descendants (the forkserver and the parse children)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError):
                continue
    descendants, frontier = [], [pid]
    while frontier:
        children = [child for child, parent in parents.items() if parent in frontier]
        descendants += children
        frontier = children
    return _rss(pid), [_rss(child) for child in descendants]


def _rss(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return 0
