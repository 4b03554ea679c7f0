"""`python -m evaluation` on a SQuAD v2.0 file, as `make eval DATA=... ARGS=--retrieval-only` runs it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "evaluation" / "data" / "squad_sample.json"


def test_the_eval_command_reports_retrieval_and_abstention_on_squad(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "evaluation", str(SAMPLE), "--retrieval-only", "--mode", "hybrid"]
    done = subprocess.run([*command, "--report", str(tmp_path)], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "| hybrid |" in done.stdout and "hit@5" in done.stdout
    (result,) = json.loads((tmp_path / "squad_sample-retrieval.json").read_text())
    assert result["mode"] == "hybrid"
    assert result["retrieval"]["hit@5"] >= 0.8  # a chunk holding a gold answer among the first five
    # Measured: 4 of the 11 impossible questions abstained on (0.364), ROC AUC of the cosine 0.665.
    assert result["abstention"]["recall"] >= 0.27 and result["calibration"]["roc_auc"] >= 0.6
    assert set(result["latency_ms"]) == {"embed", "search", "fuse"}
    assert (tmp_path / "squad_sample-retrieval.md").read_text().startswith("## Eval: squad_sample (56 questions)")


def test_a_missing_dataset_is_a_clear_error(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "evaluation", str(tmp_path / "nope.json")], cwd=REPO, capture_output=True, text=True
    )
    assert done.returncode != 0
    assert "nope.json" in done.stderr
