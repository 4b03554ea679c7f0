"""`make bench`: speed and memory figures, each next to what it is compared with, measured in one run.

    .venv-api/bin/python -m bench [--only generation,training,service,vectors,isolation,batches]
                                  [--backends llama-cpp,transformers] [--device cpu|cuda]

Writes bench/results/results.md and results.json (the README's table comes from them); with --only, the
sections run replace theirs and the others are kept."""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from app.config import Settings  # noqa: E402
from evaluation.metrics import markdown_table  # noqa: E402

SECTIONS = ["generation", "training", "service", "vectors", "isolation", "batches"]


def report(results: dict[str, Any]) -> str:
    parts = [f"# make bench ({results['machine']}, {results['date']})\n"]
    if "generation" in results:
        generation = results["generation"]
        parts.append(
            f"## Generation ({generation.get('device', 'cpu')}): first token for a 512-token prompt, decode speed "
            "against the ceiling\n\n"
            f"Memory bandwidth (one large copy): {generation['memory_bandwidth_gb_s']:.1f} GB/s; the ceiling is "
            "that over the bytes of weights each decoded token reads.\n"
        )
        rows = [{"backend": name, **values} for name, values in generation["backends"].items()]
        columns = ["backend", "first_token_s", "decoded_tokens", "decode_tokens_s", "ceiling_tokens_s"]
        parts.append(markdown_table(rows, [*columns, "decode_share_of_ceiling"]))
    if "training" in results:
        training = results["training"]
        parts.append(
            f"## LoRA training ({training['device']}): the reader's recipe, {training['steps']} steps of "
            f"{training['batch_size']} examples\n"
        )
        columns = ["seconds_per_step", "examples_per_s", "tokens_per_s", "reader_run_minutes"]
        parts.append(markdown_table([training], columns))
    if "service" in results:
        service = results["service"]
        parts.append(f"## /ask on the policy set ({service['questions']} questions, one at a time, ms)\n")
        rows = []
        for name, values in service["backends"].items():
            asked = values["ask_ms"]
            rows.append(
                {
                    "backend": name,
                    "total_p50": asked["total"]["p50"],
                    "total_p95": asked["total"]["p95"],
                    "generate_p50": asked.get("generate", {}).get("p50"),
                    "retrieval_p50": asked["retrieval"]["p50"],
                    "raw_retrieval_p50": values["raw_retrieval_p50_ms"],
                    "retrieval_over_raw": values["ask_retrieval_over_raw"],
                }
            )
        parts.append(markdown_table(rows, list(rows[0])))
        parts.append("## 32 questions at once\n")
        rows = [{"backend": name, **values["concurrency"]} for name, values in service["backends"].items()]
        parts.append(markdown_table(rows, ["backend", "questions", "seconds", "per_second", "errors"]))
        parts.append("## Ingestion (the Python docs manual, upload to indexed) against a raw encode of its chunks\n")
        rows = [{"runtime": runtime, **values} for runtime, values in service["ingest"].items()]
        parts.append(markdown_table(rows, list(rows[0])))
    if "vectors" in results:
        parts.append("## Vector search on synthetic 384-d vectors (one query at a time)\n")
        rows = [
            {"vectors": size, "index": name, **values}
            for size, indexes in results["vectors"].items()
            for name, values in indexes.items()
        ]
        parts.append(
            markdown_table(rows, ["vectors", "index", "build_s", "search_p50_ms", "memory_mb", "recall_at_10"])
        )
    if "isolation" in results:
        parts.append(
            "## Hostile files: three queued before a normal document (the worker's parse isolation)\n\n"
            "Seconds from the worker's first heartbeat (its models loaded); memory is resident, at its peak.\n"
        )
        rows = [
            {"files": name, **{k: v for k, v in values.items() if k not in ("outcomes", "hostile_file_bytes")}}
            for name, values in results["isolation"].items()
        ]
        parts.append(markdown_table(rows, list(rows[0])))
    if "batches" in results:
        parts.append(
            "## One batch (16 documents, 800 chunks) stored and indexed, as the corpus grows\n\n"
            "Seconds for the store writes and the new index generation (parsing and embedding excluded), over\n"
            "9 batches in a row at each size: the mean and the max include merging the segments they leave.\n"
        )
        rows = [{"corpus_chunks": size, **values} for size, values in results["batches"].items()]
        parts.append(markdown_table(rows, list(rows[0])))
    return "\n".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--only", type=lambda s: s.split(","), default=SECTIONS, help=",".join(SECTIONS))
    parser.add_argument("--backends", type=lambda s: s.split(","), default=["llama-cpp", "transformers"])
    parser.add_argument("--device", default="cpu", help="generation and training: cpu, or cuda (transformers)")
    parser.add_argument("--worker-python", default=".venv-worker/bin/python", help="the worker's environment")
    parser.add_argument("--vector-sizes", type=lambda s: [int(n) for n in s.split(",")], default=[100_000, 1_000_000])
    parser.add_argument(
        "--batch-corpus-sizes", type=lambda s: [int(n) for n in s.split(",")], default=[10_000, 100_000, 300_000]
    )
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    args = parser.parse_args()
    machine = f"{platform.machine()}, {os.cpu_count()} cores"
    results: dict[str, Any] = {"machine": machine, "date": time.strftime("%Y-%m-%d")}
    if "generation" in args.only:
        from bench import generation

        results["generation"] = generation.run(Settings(), args.backends, args.device)
    if "training" in args.only:
        from bench import training

        results["training"] = training.run(Settings(), args.device)
    if "service" in args.only:
        from bench import service

        with tempfile.TemporaryDirectory(prefix="bench-") as root:
            results["service"] = service.run(Path(root), args.worker_python, args.backends)
    if "vectors" in args.only:
        from bench import vectors

        results["vectors"] = vectors.run(args.vector_sizes)
    if "isolation" in args.only:
        from bench import isolation

        with tempfile.TemporaryDirectory(prefix="bench-") as root:
            results["isolation"] = isolation.run(Path(root), args.worker_python)
    if "batches" in args.only:
        from bench import batches

        with tempfile.TemporaryDirectory(prefix="bench-") as root:
            results["batches"] = batches.run(Path(root), args.batch_corpus_sizes)
    args.out.mkdir(parents=True, exist_ok=True)
    saved = args.out / "results.json"
    if set(args.only) != set(SECTIONS) and saved.exists():  # a partial run updates its sections only
        results = {**json.loads(saved.read_text()), **results}
    saved.write_text(json.dumps(results, indent=2) + "\n")
    markdown = report(results)
    (args.out / "results.md").write_text(markdown)
    print(markdown)


if __name__ == "__main__":
    main()
