"""Measures a running service: ingestion time of a few policy documents, then /ask latency per stage.

Usage: start the service (`make run`), then
    .venv-api/bin/python bench/ask_latency.py --url http://127.0.0.1:8000 --rounds 3
With `--baseline URL` a second service (another configuration, its own data dir) gets the same documents
and each question goes to both in turn, so the ratio of their latencies is measured in one run.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from evaluation.metrics import latency_report, markdown_table, percentile  # noqa: E402
from tests.documents import (  # noqa: E402 - the same sample policies the tests use
    HOLIDAY_POLICY_TXT,
    SECURITY_POLICY_MD,
    TRAVEL_POLICY_HTML,
    expense_policy_pdf,
    refund_policy_docx,
)

QUESTIONS = [
    "How many days do customers have to request a refund?",
    "What is the most a hotel room may cost per night?",
    "How long must passwords be?",
    "How many days of paid vacation does an employee get per year?",
    "How much is the daily meal allowance on business trips?",
    "Which planet has the most moons?",
]


def ask_rounds(client: httpx.Client, question: str, totals: list[float], stages: dict[str, list[float]]) -> None:
    started = time.perf_counter()
    body = client.post("/ask", json={"question": question}).raise_for_status().json()
    totals.append((time.perf_counter() - started) * 1000)
    for stage, ms in body["timings_ms"].items():
        stages.setdefault(stage, []).append(ms)


def print_report(name: str, totals: list[float], stages: dict[str, list[float]]) -> None:
    print(f"ask ({name}): {len(totals)} requests, one at a time (ms)")
    report = latency_report({"total": totals, **stages})
    print(
        markdown_table([{"stage": stage, **values} for stage, values in report.items()], ["stage", "p50", "p95", "n"])
    )


def upload_and_wait(client: httpx.Client) -> None:
    files = [
        ("files", ("bench_refund_policy.docx", refund_policy_docx())),
        ("files", ("bench_travel_policy.html", TRAVEL_POLICY_HTML)),
        ("files", ("bench_security_policy.md", SECURITY_POLICY_MD)),
        ("files", ("bench_holiday_policy.txt", HOLIDAY_POLICY_TXT)),
        ("files", ("bench_expense_policy.pdf", expense_policy_pdf())),
    ]
    started = time.perf_counter()
    documents = client.post("/documents", files=files).raise_for_status().json()["documents"]
    pending = {d["id"] for d in documents}
    while pending:
        for doc_id in list(pending):
            if client.get(f"/documents/{doc_id}").json()["status"] in ("indexed", "failed"):
                pending.discard(doc_id)
        time.sleep(0.1)
    print(f"ingest: {len(documents)} documents indexed in {time.perf_counter() - started:.2f}s (upload to indexed)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--baseline", help="a second service to compare with, asked the same questions in turn")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    urls = {"service": args.url, **({"baseline": args.baseline} if args.baseline else {})}
    clients = {name: httpx.Client(base_url=url, timeout=300) for name, url in urls.items()}
    totals: dict[str, list[float]] = {name: [] for name in clients}
    stages: dict[str, dict[str, list[float]]] = {name: {} for name in clients}
    for client in clients.values():
        upload_and_wait(client)
    for _ in range(args.rounds):
        for question in QUESTIONS:
            for name, client in clients.items():
                ask_rounds(client, question, totals[name], stages[name])
    for name in clients:
        print_report(name, totals[name], stages[name])
    if args.baseline:
        ratio = percentile(totals["service"], 50) / percentile(totals["baseline"], 50)
        print(f"p50 total: service / baseline = {ratio:.2f}")


if __name__ == "__main__":
    main()
