"""Regression guard: retrieval quality on the project's own eval set (retrieval only, no timing asserts)."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.config import Settings
from evaluation.datasets import load_eval_set
from evaluation.run import ModeResult, run_eval

POLICIES = Path(__file__).resolve().parents[2] / "evaluation" / "data" / "policies"
# Measured values minus a little slack (see README, "Evaluation"); raise them when retrieval improves.
HYBRID_FLOOR = {"hit@1": 0.84, "hit@5": 0.95, "mrr": 0.89}
ABSTENTION_F1_FLOOR = 0.40


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, ModeResult]:
    eval_set = load_eval_set(POLICIES)
    data_dir = tmp_path_factory.mktemp("eval-data")
    modes = ["dense", "bm25", "hybrid"]
    return {r.mode: r for r in run_eval(eval_set, data_dir, modes, retrieval_only=True, settings=Settings())}


def test_every_policy_document_is_indexed_and_hybrid_keeps_its_floor(results: dict[str, ModeResult]) -> None:
    hybrid = results["hybrid"].retrieval
    for metric, floor in HYBRID_FLOOR.items():
        assert hybrid[metric] >= floor, f"hybrid {metric} fell to {hybrid[metric]:.3f} (floor {floor})"


@pytest.mark.parametrize("other", ["dense", "bm25"])
def test_hybrid_beats_either_retriever_alone(results: dict[str, ModeResult], other: str) -> None:
    for metric in ("hit@5", "mrr"):
        assert results["hybrid"].retrieval[metric] > results[other].retrieval[metric], metric


def test_the_calibrated_threshold_separates_unanswerable_questions(results: dict[str, ModeResult]) -> None:
    calibration = results["hybrid"].calibration
    assert calibration["f1"] >= ABSTENTION_F1_FLOOR
    assert 0.0 < calibration["threshold"] < 1.0
