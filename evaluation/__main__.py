"""`python -m evaluation DATA`: evaluate retrieval (and answers) on a SQuAD file or a JSONL set."""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
from dataclasses import asdict
from pathlib import Path

from app.logs import configure_logging
from evaluation.datasets import load_eval_set
from evaluation.metrics import markdown_table
from evaluation.run import ModeResult, run_eval

MODES = ["dense", "bm25", "hybrid"]
ANSWER_COLUMNS = [
    "contains",
    "f1",
    "exact_match",
    "answered",
    "cited_right",
    "declined_unanswerable",
    "looped",
    "unsupported_number",
    "verified",
]


def report_markdown(name: str, results: list[ModeResult], questions: int) -> str:
    retrieval = [{"mode": r.mode, **r.retrieval} for r in results]
    abstention = [{"mode": r.mode, **r.abstention} for r in results]
    calibration = [{"mode": r.mode, **r.calibration} for r in results if r.calibration]
    latency = [{"mode": r.mode, "stage": stage, **values} for r in results for stage, values in r.latency_ms.items()]
    parts = [
        f"## Eval: {name} ({questions} questions)",
        "### Retrieval (answerable questions)",
        markdown_table(retrieval, ["mode", "hit@1", "hit@3", "hit@5", "hit@10", "mrr"]),
        "### Abstention on unanswerable questions (at the configured threshold)",
        markdown_table(abstention, ["mode", "precision", "recall", "f1", "accuracy"]),
    ]
    if calibration:
        parts += [
            "### Calibrated threshold (best similarity below it: abstain)",
            markdown_table(
                calibration, ["mode", "threshold", "precision", "recall", "f1", "accuracy", "roc_auc", "roc_auc_cosine"]
            ),
        ]
    answers = [{"mode": r.mode, "verify": verify, **metrics} for r in results for verify, metrics in r.answers.items()]
    if answers:
        parts += [
            "### Answers (contains: a gold answer in the answer; over answerable questions unless said)",
            markdown_table(answers, ["mode", "verify", *ANSWER_COLUMNS]),
        ]
    parts += ["### Latency (ms)", markdown_table(latency, ["mode", "stage", "p50", "p95", "n"])]
    return "\n\n".join(parts) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m evaluation", description=__doc__)
    parser.add_argument("data", type=Path, help="SQuAD v1.1/v2.0 JSON, or a folder with questions.jsonl and documents/")
    parser.add_argument("--retrieval-only", action="store_true", help="skip generation: retrieval numbers in seconds")
    parser.add_argument("--mode", choices=[*MODES, "all"], default="all", help="retrieval mode(s) to evaluate")
    parser.add_argument("--limit", type=int, help="first N SQuAD articles, or first N JSONL questions")
    parser.add_argument("--report", type=Path, default=Path("eval-reports"), help="folder for the JSON and Markdown")
    args = parser.parse_args()
    configure_logging(logging.WARNING)

    try:
        eval_set = load_eval_set(args.data, limit=args.limit)
    except ValueError as exc:
        parser.error(str(exc))
    modes = MODES if args.mode == "all" else [args.mode]
    with tempfile.TemporaryDirectory(prefix="docqa-eval-") as data_dir:
        results = run_eval(eval_set, Path(data_dir), modes, args.retrieval_only)
    markdown = report_markdown(eval_set.name, results, len(eval_set.questions))
    args.report.mkdir(parents=True, exist_ok=True)
    stem = f"{eval_set.name}{'-retrieval' if args.retrieval_only else ''}"
    (args.report / f"{stem}.md").write_text(markdown)
    summaries = [{k: v for k, v in asdict(r).items() if k != "answer_log"} for r in results]
    (args.report / f"{stem}.json").write_text(json.dumps(summaries, indent=2))
    with (args.report / f"{stem}-answers.jsonl").open("w", encoding="utf-8") as f:
        for result in results:
            f.writelines(
                json.dumps({"mode": result.mode, **row}, ensure_ascii=False) + "\n" for row in result.answer_log
            )
    print(markdown)
    print(f"Written to {args.report / stem}.md, .json and -answers.jsonl")


if __name__ == "__main__":
    main()
