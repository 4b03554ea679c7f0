"""`python -m evaluation` with generation: answers are scored and each question is retrieved once."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
POLICIES = REPO / "evaluation" / "data" / "policies"
QUESTIONS = 6


def test_the_full_eval_scores_generated_answers(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "evaluation", str(POLICIES), "--mode", "hybrid", "--limit", str(QUESTIONS)]
    done = subprocess.run([*command, "--report", str(tmp_path)], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "### Answers" in done.stdout
    (result,) = json.loads((tmp_path / "policies.json").read_text())
    assert set(result["answers"]) == {"off", "quote", "strict"}  # one generation, scored as each mode returns it
    assert result["answers"]["off"]["f1"] > 0  # the small generator gets some of the gold answers' words right
    assert result["answers"]["strict"]["unsupported_number"] == 0
    answers = (tmp_path / "policies-answers.jsonl").read_text().splitlines()
    assert len(answers) == 3 * QUESTIONS  # every answer, per mode, with its cited blocks
    latency = result["latency_ms"]
    assert latency["embed"]["n"] == QUESTIONS  # one retrieval per question serves the metrics and the answer
    assert 0 < latency["generate"]["n"] <= QUESTIONS  # questions below the threshold are answered without it
