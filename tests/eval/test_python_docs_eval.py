"""The unseen corpus (Python 3.11 docs, questions written by people who did not write the documents),
answered through the real pipeline with the shipped defaults: no loops, no invented numbers under
`strict`, and quality floors (README, "Evaluation")."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from app.config import Settings
from app.prompt import NO_ANSWER
from evaluation.datasets import load_eval_set
from evaluation.run import ModeResult, run_eval

PYTHON_DOCS = Path(__file__).resolve().parents[2] / "evaluation" / "data" / "python_docs"
# Measured values minus a little slack; raise them when answers improve.
# Measured 0.543 / 0.800 / 0.750 on the 184 questions (one answerable question is 0.007, one unanswerable 0.023),
# and contains 0.514 on a CPU without AVX-512, where llama.cpp builds other kernels: its numerics differ between
# machines, so the floors leave 3 answerable questions below that, and 7 and 4 questions below the others.
FLOORS = {"contains": 0.49, "answered": 0.75, "declined_unanswerable": 0.66}
CITATION = re.compile(r"\[\d+\]")
DIGITS = re.compile(r"\d+")


@pytest.fixture(scope="module")
def result(tmp_path_factory: pytest.TempPathFactory) -> ModeResult:
    eval_set = load_eval_set(PYTHON_DOCS)
    (result,) = run_eval(eval_set, tmp_path_factory.mktemp("eval-data"), ["hybrid"], False, Settings())
    return result


def rows(result: ModeResult, verify: str) -> list[dict]:
    return [row for row in result.answer_log if row["verify"] == verify]


def test_under_strict_no_answer_holds_a_number_absent_from_its_cited_blocks(result: ModeResult) -> None:
    strict = rows(result, "strict")
    assert len(strict) == len(load_eval_set(PYTHON_DOCS).questions)
    for row in strict:
        if row["answer"] == NO_ANSWER:
            continue
        evidence = " ".join(row["cited_blocks"])
        for number in DIGITS.findall(CITATION.sub(" ", row["answer"])):
            assert re.search(rf"(?<!\d){number}(?!\d)", evidence), (row["question"], row["answer"])


def test_no_answer_repeats_a_sentence(result: ModeResult) -> None:
    for row in result.answer_log:
        sentences = [s.strip(" .!?").lower() for s in re.split(r"[.!?]\s", CITATION.sub("", row["answer"]))]
        sentences = [s for s in sentences if s]
        assert len(sentences) == len(set(sentences)), row["answer"]


def test_the_shipped_defaults_keep_their_floors(result: ModeResult) -> None:
    shipped = result.answers[Settings().answer.verify]
    for metric, floor in FLOORS.items():
        assert shipped[metric] >= floor, f"{metric} fell to {shipped[metric]:.3f} (floor {floor})"
